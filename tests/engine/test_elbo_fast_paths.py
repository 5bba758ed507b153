"""The cheap paths of an ELBO step give the numbers and gradients of the general formula.

``ELBO.loss_and_grads`` back-propagates ``-elbo`` directly when the surrogate *is* the ELBO
(every guide site reparameterised), and the detach arithmetic of ``differentiable_loss``
otherwise; one particle adds no ``0.0 +`` and no ``* 1.0``; a scalar site's ``log_prob_sum`` is
its ``log_prob``. Each test runs the fast path and the general one on the same draws (the RNG is
reset in between) and asks for the same loss and gradients.
"""

from __future__ import annotations

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.distributions import constraints
from engine.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from engine.infer.elbo import _loss_of
from engine.optim import Adam
from engine.poutine.handlers import trace


@pytest.fixture(autouse=True)
def _fresh_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def model(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 2.0))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(loc, scale), obs=data)


def reparam_guide(data):
    q_loc = pyro.param("q_loc", torch.tensor(0.3))
    q_scale = pyro.param("q_scale", torch.tensor(0.5), constraint=constraints.positive)
    pyro.sample("loc", dist.Normal(q_loc, q_scale))
    pyro.sample("scale", dist.LogNormal(pyro.param("s_loc", torch.tensor(0.1)), 0.4))


class _NoRsampleNormal(dist.Normal):
    """A Normal whose draws carry no pathwise gradient: the score-function path."""

    has_rsample = False


def score_guide(data):
    q_loc = pyro.param("q_loc", torch.tensor(0.3))
    pyro.sample("loc", _NoRsampleNormal(q_loc, 0.5))
    pyro.sample("scale", dist.LogNormal(pyro.param("s_loc", torch.tensor(0.1)), 0.4))


DATA = torch.tensor([0.5, -1.0, 2.0, 0.3])


def _grads_of(step) -> tuple[float, dict[str, torch.Tensor]]:
    """Run ``step()`` from seed 0 and return its loss and the params' gradients."""
    pyro.set_rng_seed(0)
    for _, leaf in pyro.get_param_store().named_parameters():
        leaf.grad = None
    loss = step()
    store = pyro.get_param_store()
    grads = {n: p.grad.clone() for n, p in store.named_parameters() if p.grad is not None}
    return loss, grads


@pytest.mark.parametrize("guide", [reparam_guide, score_guide], ids=["reparam", "score"])
@pytest.mark.parametrize("num_particles", [1, 3])
def test_loss_and_grads_agrees_with_differentiable_loss(guide, num_particles):
    elbo = Trace_ELBO(num_particles=num_particles)
    elbo.loss(model, guide, DATA)  # create the params

    def general():
        loss = elbo.differentiable_loss(model, guide, DATA)
        loss.backward()
        return loss.item()

    fast_loss, fast_grads = _grads_of(lambda: elbo.loss_and_grads(model, guide, DATA))
    slow_loss, slow_grads = _grads_of(general)
    assert fast_loss == slow_loss
    assert (
        fast_grads.keys()
        == slow_grads.keys()
        == {"q_loc", "s_loc"} | ({"q_scale"} if guide is reparam_guide else set())
    )
    for name in fast_grads:
        # The same graph up to the final negation: equal to the last bit, not approximately.
        assert torch.equal(fast_grads[name], slow_grads[name]), name


def test_the_fast_path_is_the_one_taken_for_a_reparameterised_guide():
    elbo = Trace_ELBO()
    pyro.set_rng_seed(0)
    e, s = elbo._elbo_and_surrogate(model, reparam_guide, (DATA,), {})
    assert s is e  # so loss_and_grads back-propagates -elbo directly
    pyro.set_rng_seed(0)
    e, s = elbo._elbo_and_surrogate(model, score_guide, (DATA,), {})
    assert s is not e  # a score-function site: the detach arithmetic (the fallback)


def test_enumerated_model_keeps_its_loss_on_the_fast_path():
    # TraceEnum's surrogate is its ELBO when the guide is reparameterised: same fast path.
    def mixture(data):
        weight = pyro.sample("weight", dist.Beta(2.0, 2.0))
        with pyro.plate("data", len(data)):
            z = pyro.sample("z", dist.Bernoulli(weight), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(3.0 * z, 1.0), obs=data)

    def guide(data):
        a = pyro.param("a", torch.tensor(2.0), constraint=constraints.positive)
        pyro.sample("weight", dist.Beta(a, 2.0))

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    elbo.loss(mixture, guide, DATA)
    e, s = elbo._elbo_and_surrogate(mixture, guide, (DATA,), {})
    assert s is e

    def general():
        loss = elbo.differentiable_loss(mixture, guide, DATA)
        loss.backward()
        return loss.item()

    fast_loss, fast_grads = _grads_of(lambda: elbo.loss_and_grads(mixture, guide, DATA))
    slow_loss, slow_grads = _grads_of(general)
    assert fast_loss == slow_loss
    assert torch.equal(fast_grads["a"], slow_grads["a"])


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_the_general_formula_turns_a_nonfinite_elbo_into_nan(bad):
    e = torch.tensor(bad, requires_grad=True)
    assert math.isnan(_loss_of(e.detach(), e).item())  # inf - inf


@pytest.mark.parametrize("bad", [math.inf, -math.inf])
def test_the_fast_path_reports_an_infinite_elbo_as_nan_too(bad):
    # (A NaN factor never gets this far: validation refuses it, naming the site.)
    def degenerate():
        pyro.factor("f", pyro.param("w", torch.tensor(1.0)) * bad)

    assert math.isnan(Trace_ELBO().loss_and_grads(degenerate, lambda: None))


def test_svi_on_the_fast_path_refuses_a_nonfinite_step_and_names_the_site():
    def overflowing():
        w = pyro.param("w", torch.tensor(1e30))
        pyro.sample("x", dist.Normal(w * w, 1.0), obs=torch.tensor(0.0))

    svi = SVI(overflowing, lambda: None, Adam({"lr": 0.1}), Trace_ELBO(), on_nonfinite="skip")
    assert math.isnan(svi.step())
    assert svi.skipped_steps == [1]
    assert pyro.param("w").item() == torch.tensor(1e30).item()


def test_a_scalar_sites_total_is_its_log_prob_and_a_batched_one_is_summed():
    def two_sites():
        pyro.sample("a", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))
        pyro.sample("b", dist.Normal(0.0, 1.0).expand([3]).to_event(1), obs=torch.ones(3))
        with pyro.plate("rows", 2):
            pyro.sample("c", dist.Normal(0.0, 1.0), obs=torch.zeros(2))

    tr = trace(two_sites).get_trace()
    tr.compute_log_prob()
    a, b, c = (tr.nodes[name] for name in "abc")
    assert a["log_prob_sum"] is a["log_prob"]  # no redundant sum
    assert b["log_prob_sum"] is b["log_prob"]  # an event's density is already a scalar
    assert c["log_prob"].shape == (2,)
    assert torch.equal(c["log_prob_sum"], c["log_prob"].sum())
    expected = dist.Normal(0.0, 1.0).log_prob(torch.tensor([0.5, 1, 1, 1, 0, 0])).sum()
    assert torch.allclose(tr.log_prob_sum(), expected)


def test_a_guide_that_switches_paths_between_steps_gets_each_paths_numbers():
    # Nothing is carried from step to step: each call picks its path from its own traces.
    branch = {"reparam": True}

    def switching_guide(data):
        (reparam_guide if branch["reparam"] else score_guide)(data)

    elbo = Trace_ELBO()
    elbo.loss(model, reparam_guide, DATA)  # create every param

    def general():
        loss = elbo.differentiable_loss(model, switching_guide, DATA)
        loss.backward()
        return loss.item()

    for step in range(4):
        branch["reparam"] = step % 2 == 0
        pyro.set_rng_seed(step)
        e, s = elbo._elbo_and_surrogate(model, switching_guide, (DATA,), {})
        assert (s is e) == branch["reparam"]
        fast_loss, fast_grads = _grads_of(lambda: elbo.loss_and_grads(model, switching_guide, DATA))
        slow_loss, slow_grads = _grads_of(general)
        assert fast_loss == slow_loss
        assert fast_grads.keys() == slow_grads.keys()
        assert ("q_scale" in fast_grads) == branch["reparam"]
        assert all(torch.equal(fast_grads[n], slow_grads[n]) for n in fast_grads)
