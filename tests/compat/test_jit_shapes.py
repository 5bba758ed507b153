"""Compiled ELBOs over arguments of several lengths, the way Pyro's JIT tutorial passes them:
tensors as positional arguments, the length as a keyword argument that sets the model's
structure. Each length compiles once, a bounded number of lengths compile at all (then one
warning, and eager steps), and the compiled objective is the eager one.

Most tests compile with ``backend="eager"`` or ``"aot_eager"`` (seconds): what is counted (graphs
built, shapes refused) does not depend on the backend.
"""

import math
import warnings

import pytest
import torch
from torch._dynamo.utils import counters

import engine as pyro
import engine.distributions as dist
from engine.distributions import constraints
from engine.errors import ArgumentError, ShapeError
from engine.infer import SVI, JitTrace_ELBO, JitTraceEnum_ELBO, Trace_ELBO, TraceEnum_ELBO
from engine.infer.autoguide import AutoDiagonalNormal
from engine.optim import Adam

AOT = {"backend": "aot_eager"}


@pytest.fixture(autouse=True)
def fresh_compiler():
    torch._dynamo.reset()
    counters.clear()
    pyro.clear_param_store()
    yield
    torch._dynamo.reset()


def compiled_graphs() -> int:
    return counters["stats"]["unique_graphs"]


class CountingBackend:
    """The "eager" backend (each graph runs as traced), counting graphs built and run, and
    noting for each graph whether it is generic in some size (takes a symbolic int)."""

    def __init__(self):
        self.runs = 0
        self.generic = []

    @property
    def built(self):
        return len(self.generic)

    def __call__(self, graph_module, example_inputs):
        self.generic.append(any(isinstance(x, torch.SymInt) for x in example_inputs))

        def run(*args):
            self.runs += 1
            return graph_module.forward(*args)

        return run


def chain_model(data, length):
    # One observed site per time step: every length is a model of its own structure.
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    for t in range(length):
        pyro.sample(f"y_{t}", dist.Normal(loc, 1.0), obs=data[t])


def chain_guide(data, length):
    m = pyro.param("m", torch.tensor(0.3))
    s = pyro.param("s", torch.tensor(0.8), constraint=constraints.positive)
    pyro.sample("loc", dist.Normal(m, s))


def exact_chain_loss(data, m=0.3, s=0.8):
    """-ELBO of chain_model/chain_guide in closed form: with q = N(m, s^2),
    E_q log N(loc | 0, 1) = -log(2 pi)/2 - (m^2 + s^2)/2,
    E_q log N(y | loc, 1) = -log(2 pi)/2 - ((y - m)^2 + s^2)/2, and H(q) = log(2 pi e s^2)/2."""
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    expected = -half_log_2pi - 0.5 * (m**2 + s**2)
    for y in data.tolist():
        expected += -half_log_2pi - 0.5 * ((y - m) ** 2 + s**2)
    entropy = 0.5 * math.log(2 * math.pi * math.e * s**2)
    return -(expected + entropy)


def data_of_length(length):
    return torch.linspace(-1.0, 2.0, length)


def step_losses(elbo, lengths):
    """One loss_and_grads per length (gradients on, so compiled code runs), gradients cleared."""
    losses = []
    for length in lengths:
        losses.append(
            elbo.loss_and_grads(chain_model, chain_guide, data_of_length(length), length=length)
        )
        for _, leaf in pyro.get_param_store().named_parameters():
            leaf.grad = None
    return losses


def test_each_length_compiles_once_and_is_reused():
    backend = CountingBackend()
    elbo = JitTrace_ELBO(jit_options={"backend": backend})
    step_losses(elbo, [2, 2, 3, 3, 4, 4])  # each length: one eager step, then one compiled
    assert compiled_graphs() == backend.built == 3
    runs = backend.runs
    step_losses(elbo, [2, 3, 4, 3, 2])  # alternating lengths reuse their variants
    assert compiled_graphs() == 3
    assert backend.runs == runs + 5


def test_a_plate_of_varying_size_compiles_twice_for_any_number_of_sizes():
    # The JIT tutorial's first model, given data sets of several sizes: the sites are the same
    # at every size, so the second size compiles a variant generic in the size, which then
    # serves every other size.
    def model(data, size):
        loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
        scale = pyro.sample("scale", dist.LogNormal(0.0, 3.0))
        with pyro.plate("data", size):
            pyro.sample("obs", dist.Normal(loc, scale), obs=data)

    guide = AutoDiagonalNormal(model)
    sizes = [50, 60, 70, 80, 90, 50, 70]
    data = {
        n: 0.5 + 2.0 * torch.randn(n, generator=torch.Generator().manual_seed(n)) for n in sizes
    }
    guide(data[50], size=50)
    backend = CountingBackend()
    svi = SVI(model, guide, Adam({"lr": 0.01}), JitTrace_ELBO(jit_options={"backend": backend}))
    for n in sizes:
        for _ in range(2):  # each new size: one eager step, then compiled
            svi.step(data[n], size=n)
    assert backend.built == compiled_graphs() == 2
    assert backend.generic == [False, True]
    assert backend.runs == len(sizes) * 2 - 5


def test_past_the_bound_new_lengths_run_eagerly_with_one_warning():
    backend = CountingBackend()
    elbo = JitTrace_ELBO(jit_options={"backend": backend}, max_compiled_shapes=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step_losses(elbo, [1, 1, 2, 2])
        assert not caught
        step_losses(elbo, [3, 3, 4, 4, 5, 5, 3])
    assert compiled_graphs() == backend.built == 2
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert messages[0].startswith("JitTrace_ELBO: 2 different argument shapes compiled")
    assert "max_compiled_shapes" in messages[0]
    assert caught[0].category is RuntimeWarning
    # The lengths compiled before the bound still run compiled; the others stay eager.
    runs = backend.runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step_losses(elbo, [1, 2, 3, 4])
    assert backend.runs == runs + 2
    assert compiled_graphs() == 2


def test_zero_compiled_shapes_never_compiles_and_bad_bounds_are_refused():
    elbo = JitTrace_ELBO(jit_options={"backend": "eager"}, max_compiled_shapes=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step_losses(elbo, [2, 2, 3, 3])
    assert compiled_graphs() == 0
    with pytest.raises(ArgumentError, match="max_compiled_shapes=-1 must be at least 0"):
        JitTrace_ELBO(max_compiled_shapes=-1)
    with pytest.raises(ArgumentError, match=r"max_compiled_shapes=2\.5 is not a whole number"):
        JitTraceEnum_ELBO(max_compiled_shapes=2.5)


@pytest.mark.parametrize("length", [3, 6])
def test_compiled_objective_is_the_eager_elbo(length):
    pyro.set_rng_seed(0)
    data = data_of_length(length)
    draws = 400
    estimates = {}
    for name, elbo in (("compiled", JitTrace_ELBO(jit_options=AOT)), ("eager", Trace_ELBO())):
        values = []
        for _ in range(draws + 1):
            loss = elbo.differentiable_loss(chain_model, chain_guide, data, length=length)
            values.append(loss.item())
        estimates[name] = torch.tensor(values[1:])  # the compiled ELBO's first run is eager
    assert compiled_graphs() == 1
    exact = exact_chain_loss(data)
    # Each estimate is a mean of 400 independent single-draw losses: its Monte Carlo standard
    # error is sd / sqrt(400). Four standard errors bound a fair estimate's distance from the
    # exact value (and two estimates' distance from each other) with probability > 0.9999.
    se = {name: (values.std() / math.sqrt(draws)).item() for name, values in estimates.items()}
    compiled, eager = estimates["compiled"].mean().item(), estimates["eager"].mean().item()
    assert abs(compiled - exact) < 4 * se["compiled"]
    assert abs(eager - exact) < 4 * se["eager"]
    assert abs(compiled - eager) < 4 * math.hypot(se["compiled"], se["eager"])


def test_a_model_that_fails_at_a_new_length_fails_eagerly_with_the_engines_error():
    def model(data, length):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        shape = (length,) if length < 4 else (length, 2)  # broken for long sequences
        with pyro.plate("time", length):
            pyro.sample("y", dist.Normal(loc, 1.0).expand(shape), obs=data)

    backend = CountingBackend()
    guide = AutoDiagonalNormal(model)
    svi = SVI(model, guide, Adam({"lr": 0.01}), JitTrace_ELBO(jit_options={"backend": backend}))
    for length in (2, 2, 3, 3):
        svi.step(data_of_length(length), length=length)
    before = {name: value.detach().clone() for name, value in pyro.get_param_store().items()}
    with pytest.raises(ShapeError, match="'y'"):
        svi.step(data_of_length(5), length=5)
    assert all(torch.equal(before[n], v) for n, v in pyro.get_param_store().items())
    assert backend.built == 2  # the failing length was never handed to the compiler
    assert not svi.elbo._eager_only
    svi.step(data_of_length(3), length=3)
    assert svi.step_count == 5


def hmm_model(sequence, length):
    # Pyro's JIT tutorial's HMM with its parameters as params, so that no site is drawn and
    # the ELBO is exact: log p(sequence), every hidden state summed out.
    trans = pyro.param("trans", 0.1 + 0.7 * torch.eye(3), constraint=constraints.simplex)
    locs = pyro.param("locs", torch.tensor([-1.0, 0.0, 1.5]))
    x = 0
    for t in pyro.markov(range(length)):
        x = pyro.sample(f"x_{t}", dist.Categorical(trans[x]), infer={"enumerate": "parallel"})
        pyro.sample(f"y_{t}", dist.Normal(locs[x], 1.0), obs=sequence[t])


def hmm_guide(sequence, length):
    pass


def forward_algorithm(sequence):
    """-log p(sequence) by the forward recursion, from the params' current values."""
    trans = pyro.param("trans").detach()
    locs = pyro.param("locs").detach()
    emission = dist.Normal(locs, 1.0)
    alpha = trans[0].log() + emission.log_prob(sequence[0])  # x_0 ~ trans[0]
    for y in sequence[1:]:
        alpha = torch.logsumexp(alpha[:, None] + trans.log(), 0) + emission.log_prob(y)
    return -torch.logsumexp(alpha, 0).item()


def test_varying_length_hmm_gives_traceenum_elbos_loss_and_gradients():
    backend = CountingBackend()
    jit = JitTraceEnum_ELBO(max_plate_nesting=0, jit_options={"backend": backend})
    eager = TraceEnum_ELBO(max_plate_nesting=0)
    generator = torch.Generator().manual_seed(0)
    lengths = [3, 5, 3, 8, 5, 3, 8, 5]
    for length in lengths:
        sequence = torch.randn(length, generator=generator)
        results = []
        for elbo in (jit, eager):
            loss = elbo.loss_and_grads(hmm_model, hmm_guide, sequence, length=length)
            leaves = dict(pyro.get_param_store().named_parameters())
            results.append((loss, {name: leaf.grad.clone() for name, leaf in leaves.items()}))
            for leaf in leaves.values():
                leaf.grad = None
        (jit_loss, jit_grads), (eager_loss, eager_grads) = results
        # Enumeration is exact and both run the same arithmetic: equal up to float32 rounding.
        assert jit_loss == pytest.approx(eager_loss, rel=1e-6)
        assert jit_loss == pytest.approx(forward_algorithm(sequence), rel=1e-5)
        for name in eager_grads:
            torch.testing.assert_close(jit_grads[name], eager_grads[name], rtol=1e-5, atol=1e-6)
    assert backend.built == compiled_graphs() == 3  # one graph per length
    assert backend.generic == [False] * 3  # other sites at each length: compiled for its sizes
    assert backend.runs == len(lengths) - 3  # every step but each length's first ran compiled


def test_hmm_tutorial_with_svi_and_autoguide_compiles_once_per_length():
    # The tutorial's own set-up, smaller: an AutoDiagonalNormal over the HMM's parameters
    # (hidden states blocked), the lazy set-up before compiling, lengths as keyword arguments.
    def model(sequence, num_sequences, length, state_dim=4):
        with pyro.plate("states", state_dim):
            trans = pyro.sample("trans", dist.Dirichlet(0.5 * torch.ones(state_dim)))
            emit_loc = pyro.sample("emit_loc", dist.Normal(0.0, 10.0))
        emit_scale = pyro.sample("emit_scale", dist.LogNormal(0.0, 3.0))
        with pyro.poutine.scale(scale=num_sequences):
            x = 0
            for t in pyro.markov(range(length)):
                x = pyro.sample(
                    f"x_{t}", dist.Categorical(trans[x]), infer={"enumerate": "parallel"}
                )
                pyro.sample(f"y_{t}", dist.Normal(emit_loc[x], emit_scale), obs=sequence[t])

    guide = AutoDiagonalNormal(
        pyro.poutine.block(model, expose=["trans", "emit_scale", "emit_loc"])
    )
    generator = torch.Generator().manual_seed(1)
    sequences = [torch.randn(n, generator=generator) for n in [4] * 3 + [6] * 2 + [4, 6]]
    pyro.set_rng_seed(0)
    guide(sequences[0], num_sequences=len(sequences), length=len(sequences[0]))
    backend = CountingBackend()
    elbo = JitTraceEnum_ELBO(max_plate_nesting=1, jit_options={"backend": backend})
    svi = SVI(model, guide, Adam({"lr": 0.01}), elbo)
    losses = [
        svi.step(sequence, num_sequences=len(sequences), length=len(sequence))
        for sequence in sequences
    ]
    assert all(math.isfinite(loss) for loss in losses)
    assert backend.built == 2
    assert backend.runs == len(sequences) - 2
