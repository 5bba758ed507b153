"""Predictive: prior, guide-posterior and sample-posterior predictive draws, looped and vectorised.

Moments are checked against closed forms within 5 Monte Carlo standard errors (fixed seeds from
conftest); the returned sites and their shapes follow Pyro 1.9.2.
"""

import gc
import math
import weakref

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import ShapeError
from engine.infer.predictive import Predictive

S = 2000
MODES = [pytest.param(False, id="sequential"), pytest.param(True, id="parallel")]


def model(n, y=None):
    # z ~ N(1, 2^2); obs_i = z + e_i: E obs = 1, Var obs = 5, Cov(obs_0, obs_1) = 4.
    z = pyro.sample("z", dist.Normal(1.0, 2.0))
    pyro.deterministic("z2", 2 * z)
    with pyro.plate("data", n):
        return pyro.sample("obs", dist.Normal(z, 1.0), obs=y)


def guide(n, y=None):
    loc = pyro.param("loc", torch.tensor(3.0))
    pyro.sample("z", dist.Normal(loc, 0.5))


def assert_mean(x, expected, sd):
    se = sd / math.sqrt(x.numel())
    assert abs(x.mean().item() - expected) < 5 * se


def assert_var(x, expected):
    # For Gaussian data the sample variance has standard error sqrt(2 / n) * variance.
    se = math.sqrt(2.0 / x.numel()) * expected
    assert abs(x.var().item() - expected) < 5 * se


@pytest.mark.parametrize("parallel", MODES)
def test_prior_predictive_matches_closed_form(parallel):
    draws = Predictive(model, num_samples=S, parallel=parallel)(3)
    assert set(draws) == {"z", "z2", "obs"}
    assert draws["z"].shape == (S, 1) and draws["obs"].shape == (S, 3)
    assert torch.equal(draws["z2"], 2 * draws["z"])
    assert_mean(draws["z"], 1.0, 2.0)
    obs = draws["obs"]
    assert_mean(obs[:, 0], 1.0, math.sqrt(5.0))
    assert_var(obs[:, 1], 5.0)
    cov = ((obs[:, 0] - obs[:, 0].mean()) * (obs[:, 2] - obs[:, 2].mean())).mean().item()
    # Var of a product of two centred Gaussians: s1^2 s2^2 + c^2.
    assert abs(cov - 4.0) < 5 * math.sqrt((25.0 + 16.0) / S)


def test_sequential_and_parallel_give_the_same_distribution():
    looped = Predictive(model, num_samples=S)(2)["obs"][:, 0]
    batched = Predictive(model, num_samples=S, parallel=True)(2)["obs"][:, 0]
    # Two-sample z-test on the means, and on the variances (Gaussian: Var(s^2) = 2 s^4 / n).
    se_mean = math.sqrt(looped.var().item() / S + batched.var().item() / S)
    assert abs(looped.mean().item() - batched.mean().item()) < 5 * se_mean
    se_var = math.sqrt(2.0 / S) * math.hypot(looped.var().item(), batched.var().item())
    assert abs(looped.var().item() - batched.var().item()) < 5 * se_var


@pytest.mark.parametrize("parallel", MODES)
def test_posterior_samples_condition_each_draw(parallel):
    z = torch.linspace(-3.0, 3.0, S)
    draws = Predictive(model, {"z": z}, parallel=parallel)(4)
    # The conditioned site is not returned by default; everything downstream of it is.
    assert set(draws) == {"z2", "obs"}
    assert torch.equal(draws["z2"], 2 * z[:, None])
    residual = draws["obs"] - z[:, None]
    assert_mean(residual, 0.0, 1.0)
    assert_var(residual, 1.0)
    picked = Predictive(model, {"z": z}, return_sites=["z", "obs"], parallel=parallel)(4)
    assert set(picked) == {"z", "obs"} and torch.equal(picked["z"], z[:, None])


@pytest.mark.parametrize("parallel", MODES)
def test_guide_posterior_predictive(parallel):
    draws = Predictive(model, guide=guide, num_samples=S, parallel=parallel)(2)
    assert set(draws) == {"z", "z2", "obs"}
    assert torch.equal(draws["z2"], 2 * draws["z"])
    assert_mean(draws["z"], 3.0, 0.5)
    assert_var(draws["z"], 0.25)
    residual = draws["obs"] - draws["z"]
    assert_var(residual, 1.0)
    only_obs = Predictive(model, guide=guide, num_samples=5, return_sites=["obs"])(2)
    assert list(only_obs) == ["obs"]


@pytest.mark.parametrize("parallel", MODES)
def test_observed_sites_return_their_data_as_in_pyro(parallel):
    y = torch.tensor([0.5, -1.0])
    draws = Predictive(model, num_samples=10, parallel=parallel)(2, y)
    assert torch.equal(draws["obs"], y.expand(10, 2))


def event_model(x):
    w = pyro.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    pyro.factor("penalty", -(w**2).sum(-1))
    with pyro.plate("data", x.shape[0]):
        return pyro.sample("obs", dist.Normal(w[..., 0] * x, 1.0))


@pytest.mark.parametrize("parallel", MODES)
def test_sites_are_padded_to_the_plate_nesting_as_in_pyro(parallel):
    draws = Predictive(event_model, num_samples=6, parallel=parallel)(torch.ones(3))
    # Factor sites carry no variable: they are left out unless asked for.
    assert {k: tuple(v.shape) for k, v in draws.items()} == {"w": (6, 1, 2), "obs": (6, 3)}
    asked = Predictive(event_model, num_samples=6, return_sites=["penalty", "_RETURN"])
    assert set(asked(torch.ones(3))) == {"penalty", "_RETURN"}


def test_padded_and_flat_posterior_samples_both_work_and_batch_size_chunks():
    w = torch.randn(7, 2)
    x = torch.tensor([1.0, 2.0, 3.0])
    for samples in ({"w": w}, {"w": w[:, None, :]}):
        for kwargs in ({}, {"parallel": True}, {"parallel": True, "batch_size": 3}):
            draws = Predictive(event_model, samples, return_sites=["w", "_RETURN"], **kwargs)(x)
            assert torch.equal(draws["w"], w[:, None, :])
            assert draws["_RETURN"].shape == (7, 3)


def test_return_rules_and_the_return_value():
    draws = Predictive(model, num_samples=4, return_sites=["_RETURN"])(3)
    assert list(draws) == ["_RETURN"] and draws["_RETURN"].shape == (4, 3)
    everything = Predictive(model, {"z": torch.zeros(4)}, return_sites=None)(3)
    assert set(everything) == {"z", "z2", "obs"}

    def tuple_model():
        return pyro.sample("a", dist.Normal(0.0, 1.0)), 1

    looped = Predictive(tuple_model, num_samples=3, return_sites=["_RETURN"])()
    assert len(looped["_RETURN"]) == 3


def test_predictive_runs_are_hidden_from_outer_handlers():
    with poutine.trace() as tracer:
        Predictive(model, num_samples=3)(2)
        Predictive(model, num_samples=3, parallel=True)(2)
    assert len(tracer.trace) == 0


def test_get_vectorized_trace_and_deprecated_get_samples():
    predictive = Predictive(model, num_samples=5)
    tr = predictive.get_vectorized_trace(3)
    assert isinstance(tr, poutine.Trace)
    assert tr.nodes["z"]["value"].shape == (5, 1) and tr.nodes["obs"]["value"].shape == (5, 3)
    with pytest.warns(DeprecationWarning):
        assert predictive.get_samples(3)["obs"].shape == (5, 3)


def test_predictive_keeps_no_trace_or_graph_alive():
    made = []

    def tracked(n):
        z = pyro.sample("z", dist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))
        fn = dist.Normal(z, 1.0).expand([n])
        made.append(weakref.ref(fn))
        with pyro.plate("data", n):
            pyro.sample("obs", fn)

    predictive = Predictive(tracked, num_samples=4)
    draws = predictive(3)
    gc.collect()
    assert made and all(ref() is None for ref in made)
    assert all(v.grad_fn is None and not v.requires_grad for v in draws.values())
    assert not any(isinstance(v, poutine.Trace) for v in vars(predictive).values())


# -- errors ------------------------------------------------------------------------------------


def test_posterior_samples_with_different_numbers_of_draws():
    with pytest.raises(ShapeError, match=r"'z' has 5, 'w' has 6"):
        Predictive(event_model, {"z": torch.zeros(5), "w": torch.zeros(6, 2)})


def test_num_samples_contradicting_the_posterior_samples():
    with pytest.raises(ValueError, match=r"num_samples=7, but posterior_samples hold 5 draws"):
        Predictive(model, {"z": torch.zeros(5)}, num_samples=7)
    assert Predictive(model, {"z": torch.zeros(5)}, num_samples=5).num_samples == 5


def test_posterior_draws_of_the_wrong_shape():
    grouped_by_chain = {"z": torch.zeros(4, 100)}
    with pytest.raises(ShapeError, match=r"site 'z'.*group_by_chain"):
        Predictive(model, grouped_by_chain)(3)


def test_a_model_that_does_not_vectorise_names_the_site_and_the_fix():
    def left_indexing(x):
        w = pyro.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(w[0] * x, 1.0))  # w[0] picks a draw when vectorised

    x = torch.ones(3)
    assert Predictive(left_indexing, num_samples=4)(x)["obs"].shape == (4, 3)
    with pytest.raises(ShapeError, match=r"(?s)after site 'w'.*parallel=False"):
        Predictive(left_indexing, num_samples=4, parallel=True)(x)

    def undeclared_batch_dim():
        pyro.sample("z", dist.Normal(torch.zeros(3), 1.0))  # a batch dim without a plate

    # The draws' dim goes left of the site's own batch dim, plate or not.
    assert Predictive(undeclared_batch_dim, num_samples=4, parallel=True)()["z"].shape == (4, 3)

    def mixes_dims():
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.deterministic("pair", torch.cat([z.reshape(-1), z.reshape(-1)]))  # flattens draws

    with pytest.raises(ShapeError, match=r"(?s)site 'pair'.*shape \(8,\).*need \(4, 2\)"):
        Predictive(mixes_dims, num_samples=4, return_sites=["pair"], parallel=True)()


def test_argument_errors():
    with pytest.raises(ValueError, match="needs num_samples"):
        Predictive(model)
    with pytest.raises(ValueError, match="not both"):
        Predictive(model, {"z": torch.zeros(3)}, guide=guide)
    with pytest.raises(TypeError, match="guide=guide"):
        Predictive(model, guide)
    with pytest.raises(TypeError, match=r"return_sites=\['obs'\]"):
        Predictive(model, num_samples=2, return_sites="obs")
    with pytest.raises(ValueError, match="parallel=True"):
        Predictive(model, num_samples=2, batch_size=1)
    with pytest.raises(ValueError, match=r"\['obz'\].*'obs'"):
        Predictive(model, num_samples=2, return_sites=["obz"])(3)


def test_a_site_that_changes_shape_between_draws_is_reported():
    def dynamic():
        k = int(pyro.sample("k", dist.Categorical(torch.ones(3))).item()) + 1
        pyro.sample("x", dist.Normal(torch.zeros(k), 1.0).to_event(1))

    with pytest.raises(ShapeError, match="Site 'x' has shape"):
        Predictive(dynamic, num_samples=50)()


def test_call_gives_the_predictions_as_a_tuple_by_site_name():
    def model(n):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("data", n):
            pyro.sample("y", dist.Normal(z, 0.1))

    predictive = Predictive(model, num_samples=5)
    pyro.set_rng_seed(3)
    as_dict = predictive(4)
    pyro.set_rng_seed(3)
    y, z = predictive.call(4)
    assert torch.equal(y, as_dict["y"]) and torch.equal(z, as_dict["z"])
    assert y.shape == (5, 4) and z.shape == (5, 1)  # padded to the plates, as in Pyro


@pytest.mark.parametrize("parallel", MODES)
def test_predictive_runs_model_and_guide_with_densities_masked_off(parallel):
    # Predictions need no densities, so (as in Pyro) Predictive runs everything under
    # mask(False) and a model may skip a costly factor when poutine.get_mask() is False.
    seen = []

    def masked_model():
        seen.append(("model", poutine.get_mask()))
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        if poutine.get_mask() is not False:
            pyro.factor("costly", -(z**2))
        return z

    def masked_guide():
        seen.append(("guide", poutine.get_mask()))
        pyro.sample("z", dist.Normal(0.5, 1.0))

    draws = Predictive(masked_model, guide=masked_guide, num_samples=3, parallel=parallel)()
    assert set(draws) == {"z"} and draws["z"].shape == (3,)
    assert {who for who, _ in seen} == {"model", "guide"}
    assert all(mask is False for _, mask in seen)
    # The vectorised trace is for densities (WeighedPredictive scores it): not masked.
    seen.clear()
    tr = Predictive(masked_model, guide=masked_guide, num_samples=3).get_vectorized_trace()
    assert "costly" in tr.nodes
