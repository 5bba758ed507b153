"""The compiled ELBOs (``JitTrace_ELBO`` and friends): the same gradients as the eager ones, the
engine's own errors, reproducible runs, and a working fallback when the compiler fails.

Most tests compile with ``backend="aot_eager"`` (seconds); one slow test uses the default
inductor backend, which is what the benchmarks time.
"""

import math
import warnings

import pytest
import torch
from torch._dynamo.utils import counters

import engine as pyro
import engine.distributions as dist
from engine.errors import NonFiniteError, ShapeError
from engine.infer import SVI, JitTrace_ELBO, JitTraceGraph_ELBO, JitTraceMeanField_ELBO, Trace_ELBO
from engine.infer.autoguide import AutoNormal
from engine.optim import Adam
from tests.engine.test_elbo_gradients import (
    ScoreNormal,
    assert_unbiased,
    exact_gradient,
    make_guide,
    model,
)

FAST = {"backend": "aot_eager"}


@pytest.fixture(autouse=True)
def fresh_compiler():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def compiled_graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize(
    "elbo_class, family",
    [
        (JitTrace_ELBO, dist.Normal),
        (JitTrace_ELBO, ScoreNormal),
        (JitTraceMeanField_ELBO, dist.Normal),
        (JitTraceGraph_ELBO, ScoreNormal),
    ],
)
def test_compiled_gradient_is_unbiased(elbo_class, family):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    elbo = elbo_class(num_particles=400, vectorize_particles=True, jit_options=FAST)
    guide = make_guide(family)
    estimates = []
    for _ in range(61):
        elbo.loss_and_grads(model, guide)
        elbo.commit_step()
        leaves = dict(pyro.get_param_store().named_parameters())
        estimates.append(torch.stack([leaves["m"].grad.clone(), leaves["s"].grad.clone()]))
        for leaf in leaves.values():
            leaf.grad = None
    assert compiled_graphs() >= 1  # the estimates after the first came from compiled code
    assert_unbiased(torch.stack(estimates[1:]), exact_gradient())


def linreg_model(x, y):
    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ w + b, sigma), obs=y)


def linreg_data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=generator)
    y = x @ torch.tensor([1.0, -0.5, 0.3]) + 0.5 + 0.5 * torch.randn(100, generator=generator)
    return x, y


def run_svi(elbo, steps, seed=0):
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = AutoNormal(linreg_model, init_scale=0.1)
    svi = SVI(linreg_model, guide, Adam({"lr": 0.02}), elbo)
    x, y = linreg_data()
    losses = svi.run(steps, x, y)
    return losses, guide.median(x, y)


def test_svi_with_compiled_elbo_optimises_the_same_objective():
    compiled_losses, compiled_median = run_svi(JitTrace_ELBO(jit_options=FAST), 600)
    eager_losses, eager_median = run_svi(Trace_ELBO(), 600)
    assert compiled_graphs() == 1  # compiled once, never again
    # The last 100 losses of both runs estimate the same converged -ELBO: their means agree
    # within the Monte Carlo error of two means of 100 noisy values.
    last_c, last_e = torch.tensor(compiled_losses[-100:]), torch.tensor(eager_losses[-100:])
    standard_error = math.sqrt((last_c.var() + last_e.var()).item() / 100)
    assert abs(last_c.mean().item() - last_e.mean().item()) < 4 * standard_error
    for name in ("w", "b"):
        # The guide's scales settle near the posterior sd (~0.05); the two medians differ by
        # optimiser noise well within a few of those.
        assert torch.allclose(compiled_median[name], eager_median[name], atol=0.15)


def test_compiled_runs_are_reproducible():
    first, _ = run_svi(JitTrace_ELBO(jit_options=FAST), 20, seed=3)
    second, _ = run_svi(JitTrace_ELBO(jit_options=FAST), 20, seed=3)
    assert first == second


def test_loss_without_gradients_runs_eagerly():
    pyro.clear_param_store()
    elbo = JitTrace_ELBO(jit_options=FAST)
    guide = make_guide(dist.Normal)
    for _ in range(3):
        elbo.loss(model, guide)
    assert elbo._compiled is None
    assert compiled_graphs() == 0


def test_shape_error_after_compiling_is_the_engines_own_and_changes_nothing():
    pyro.clear_param_store()
    guide = AutoNormal(linreg_model)
    svi = SVI(linreg_model, guide, Adam({"lr": 0.02}), JitTrace_ELBO(jit_options=FAST))
    x, y = linreg_data()
    svi.run(3, x, y)
    before = {name: value.detach().clone() for name, value in pyro.get_param_store().items()}
    with pytest.raises(ShapeError, match=r"'y'.*\(100, 1\)"):
        svi.step(x, y[:, None])
    after = dict(pyro.get_param_store().items())
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert svi.step_count == 3
    assert not svi.elbo._eager_only  # the model was at fault, not the compiler
    svi.step(x, y)


def test_nan_in_compiled_step_names_the_site():
    def nan_model(x, y):
        sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
        # Compiled code skips the value checks of distributions: a negative scale becomes a
        # NaN log-density, which SVI catches and traces back to its site.
        scale = torch.where(x.sum() > 0, -sigma, sigma)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(0.0, scale), obs=y)

    pyro.clear_param_store()
    svi = SVI(nan_model, AutoNormal(nan_model), Adam({"lr": 0.02}), JitTrace_ELBO(jit_options=FAST))
    x, y = linreg_data()
    svi.run(2, -x.abs(), y)
    with pytest.raises(NonFiniteError, match="No parameter was changed"):
        svi.step(x.abs(), y)
    assert svi.step_count == 2


def test_compiler_failure_warns_and_goes_on_eagerly():
    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no compiler here")

    pyro.clear_param_store()
    elbo = JitTrace_ELBO(jit_options={"backend": broken_backend})
    svi = SVI(linreg_model, AutoNormal(linreg_model), Adam({"lr": 0.02}), elbo)
    x, y = linreg_data()
    svi.step(x, y)  # eager: sets up the guide
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        svi.step(x, y)
    assert elbo._eager_only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svi.run(3, x, y)  # no further attempts, no further warnings
    assert svi.step_count == 5


def test_compiles_where_warnings_are_errors_and_the_model_reads_a_non_leaf_tensor():
    # torch.compile reads ``.grad`` of every tensor it wraps, and a non-leaf one warns; torch
    # hides that warning only from display, so under an "error" filter (Pyro's test setup) the
    # compiler used to give up and the engine's fallback warning was itself an error.
    weights = torch.ones(3, requires_grad=True)
    shift = weights * 0.5  # a non-leaf tensor the model reads

    def shifted_model():
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3):
            pyro.sample("y", dist.Normal(loc + shift.detach(), 1.0), obs=torch.zeros(3))

    def guide():
        pyro.sample("loc", dist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))

    pyro.clear_param_store()
    elbo = JitTrace_ELBO(jit_options=FAST)
    svi = SVI(shifted_model, guide, Adam({"lr": 0.02}), elbo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svi.run(3)
    assert not elbo._eager_only and compiled_graphs() > 0


@pytest.mark.slow
def test_inductor_backend_converges_like_eager():
    compiled_losses, compiled_median = run_svi(JitTrace_ELBO(), 600)
    eager_losses, eager_median = run_svi(Trace_ELBO(), 600)
    last_c, last_e = torch.tensor(compiled_losses[-100:]), torch.tensor(eager_losses[-100:])
    standard_error = math.sqrt((last_c.var() + last_e.var()).item() / 100)
    assert abs(last_c.mean().item() - last_e.mean().item()) < 4 * standard_error
    for name in ("w", "b"):
        assert torch.allclose(compiled_median[name], eager_median[name], atol=0.15)
