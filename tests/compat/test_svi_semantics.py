"""SVI as Pyro's tutorials use it: ``svi.loss(...)`` called directly, custom objectives,
``loss_and_grads`` and an ELBO bound to a model and guide as a torch module."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.distributions import constraints
from engine.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from engine.infer.autoguide import AutoDelta, AutoNormal
from engine.optim import Adam

# Beta(2, 2) prior, 6 heads in 8 flips: the posterior is Beta(8, 4), mean 2/3.
FLIPS = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
POSTERIOR_MEAN = 8 / 12


def coin(flips):
    p = pyro.sample("p", dist.Beta(2.0, 2.0))
    with pyro.plate("flips", len(flips)):
        pyro.sample("obs", dist.Bernoulli(p), obs=flips)


def beta_guide(flips):
    a = pyro.param("a", torch.tensor(2.0), constraint=constraints.positive)
    b = pyro.param("b", torch.tensor(2.0), constraint=constraints.positive)
    pyro.sample("p", dist.Beta(a, b))


def fitted_mean() -> float:
    a, b = pyro.param("a").item(), pyro.param("b").item()
    return a / (a + b)


def test_svi_loss_is_the_elbos_loss_called_with_model_and_guide():
    svi = SVI(coin, beta_guide, Adam({"lr": 0.05}), Trace_ELBO(num_particles=50))
    pyro.set_rng_seed(0)
    direct = svi.loss(coin, beta_guide, FLIPS)
    pyro.set_rng_seed(0)
    assert direct == Trace_ELBO(num_particles=50).loss(coin, beta_guide, FLIPS)
    assert isinstance(direct, float) and math.isfinite(direct)


def test_svi_loss_of_an_enumerated_mixture_as_in_the_gmm_tutorial():
    data = torch.tensor([-3.0, -2.5, 2.8, 3.1, 3.3])

    @config_enumerate
    def mixture(data):
        weights = pyro.sample("weights", dist.Dirichlet(torch.ones(2)))
        with pyro.plate("components", 2):
            locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(data)):
            z = pyro.sample("z", dist.Categorical(weights))
            pyro.sample("x", dist.Normal(locs[z], 1.0), obs=data)

    guide = AutoDelta(poutine.block(mixture, expose=["weights", "locs"]))
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    svi = SVI(mixture, guide, Adam({"lr": 0.1}), elbo)
    before = svi.loss(mixture, guide, data)
    for _ in range(200):
        svi.step(data)
    assert svi.loss(mixture, guide, data) < before


def simple_elbo(model, guide, *args, **kwargs):
    """A custom objective written the way Pyro's custom-objectives tutorial teaches."""
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    return -(model_trace.log_prob_sum() - guide_trace.log_prob_sum())


def test_svi_takes_a_custom_loss_function_and_fits_the_exact_posterior():
    pyro.set_rng_seed(1)
    svi = SVI(coin, beta_guide, Adam({"lr": 0.05}), loss=simple_elbo)
    assert svi.elbo is None
    losses = [svi.step(FLIPS) for _ in range(600)]
    assert all(isinstance(loss, float) for loss in losses)
    # The fitted Beta is the exact posterior up to SGD noise; its mean's posterior sd is 0.13,
    # and 0.05 is well below it yet far above the noise of 600 steps at this learning rate.
    assert abs(fitted_mean() - POSTERIOR_MEAN) < 0.05
    assert math.isfinite(svi.evaluate_loss(FLIPS))


def test_svi_takes_a_custom_loss_and_grads():
    calls = []

    def loss_and_grads(model, guide, *args, **kwargs):
        calls.append(1)
        loss = Trace_ELBO().differentiable_loss(model, guide, *args, **kwargs)
        (2 * loss).backward()  # a scaled objective: same optimum
        return loss.item()

    pyro.set_rng_seed(2)
    svi = SVI(coin, beta_guide, Adam({"lr": 0.03}), Trace_ELBO(), loss_and_grads=loss_and_grads)
    for _ in range(600):
        svi.step(FLIPS)
    assert len(calls) == 600
    assert abs(fitted_mean() - POSTERIOR_MEAN) < 0.05


def test_a_custom_loss_that_is_not_callable_is_refused():
    with pytest.raises(TypeError, match="loss must be an ELBO"):
        SVI(coin, beta_guide, Adam({"lr": 0.01}), loss="ELBO")


def test_a_custom_loss_survives_save_and_load(tmp_path):
    svi = SVI(coin, beta_guide, Adam({"lr": 0.02}), loss=simple_elbo)
    for _ in range(5):
        svi.step(FLIPS)
    svi.save(tmp_path / "state.pt")
    saved = fitted_mean()
    svi.step(FLIPS)
    svi.load(tmp_path / "state.pt")
    assert fitted_mean() == saved and svi.step_count == 5


def test_an_elbo_bound_to_model_and_guide_trains_with_a_torch_optimizer():
    def model(x):
        loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    # Normal prior (0, 10) and 50 points of mean 1.5 and known scale 1: the posterior mean is
    # 50 * 1.5 / (50 + 1/100) and its sd 1/sqrt(50.01) = 0.141.
    data = 1.5 + torch.randn(50, generator=torch.Generator().manual_seed(3))
    data = data - data.mean() + 1.5
    guide = AutoNormal(model)
    loss_fn = Trace_ELBO()(model, guide)
    assert isinstance(loss_fn, torch.nn.Module) and loss_fn.guide is guide
    loss_fn(data)
    names = [name for name, _ in loss_fn.named_parameters()]
    assert names == ["guide.locs.loc_unconstrained", "guide.scales.loc_unconstrained"]
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=0.05)
    pyro.set_rng_seed(4)
    for _ in range(1500):
        optimizer.zero_grad()
        loss = loss_fn(data)
        assert loss.requires_grad
        loss.backward()
        optimizer.step()
    exact_mean = 50 * 1.5 / (50 + 0.01)
    assert abs(guide.median()["loc"].item() - exact_mean) < 0.03
    scale = pyro.get_param_store()["AutoNormal.scales.loc"].item()
    assert abs(scale - 1 / math.sqrt(50.01)) < 0.03
