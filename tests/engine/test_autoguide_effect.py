"""Effect-based autoguides (AutoNormalMessenger, AutoHierarchicalNormalMessenger,
AutoRegressiveMessenger): fits against a conjugate posterior, mini-batches, state, traces."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import AutoGuideError
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import (
    AutoHierarchicalNormalMessenger,
    AutoMessenger,
    AutoNormalMessenger,
    AutoRegressiveMessenger,
)
from engine.optim import Adam
from tests.hierarchical_normal import exact_posterior, hierarchical, make_data

MESSENGERS = [AutoNormalMessenger, AutoHierarchicalNormalMessenger, AutoRegressiveMessenger]
N = 10
DATA = make_data(N)


def summaries(cls, p):
    """What each guide's params say, next to the exact values they should reach.

    In all three families the posterior means of mu and z are free of the spread (a location
    shift is always available), and the KL to a Gaussian target is minimised at the exact
    means; the mean-field guide also reaches the mean-field sds 1 / sqrt(P_jj)."""
    mean, mf_sd = exact_posterior(DATA)
    if cls is AutoNormalMessenger:
        got = [p("locs.mu"), p("locs.z"), p("scales.mu"), p("scales.z")]
        want = [mean[:1], mean[1:], mf_sd[:1], mf_sd[1:]]
    elif cls is AutoHierarchicalNormalMessenger:
        # z = loc + weight * mu + noise (mu's own prior mean is 0: its loc is its mean).
        got = [p("locs.mu"), p("locs.z") + p("weights.z") * p("locs.mu")]
        want = [mean[:1], mean[1:]]
    else:
        # mu = loc + scale * u with E[u] = 0; z = loc + scale * z_prior with E[z_prior] = mu.
        got = [p("locs.mu"), p("locs.z") + p("scales.z") * p("locs.mu")]
        want = [mean[:1], mean[1:]]
    return torch.cat([g.reshape(-1) for g in got]), torch.cat([w.reshape(-1) for w in want])


@pytest.mark.slow
@pytest.mark.parametrize("cls", MESSENGERS)
def test_fit_reaches_the_conjugate_posterior(cls):
    engine.set_rng_seed(1)
    guide = cls(hierarchical)
    svi = SVI(hierarchical, guide, Adam({"lr": 0.02}), Trace_ELBO())
    store = engine.get_param_store()

    def p(key):
        return store[f"{cls.__name__}.{key}"].detach()

    history = []
    for step in range(3000):
        svi.step(DATA)
        if step >= 1000:
            history.append(summaries(cls, p)[0])
    want = summaries(cls, p)[1]
    # Batch means of the last 2000 iterates (K = 10 batches of 200 steps, longer than Adam's
    # correlation time at lr 0.02). Each z-score is Student-t with 9 dof: E[t²] = 9/7 and
    # sd(t²) = 2.3, so the mean of n squares is 1.29 with sd 2.3 / sqrt(n); allow four sds.
    batch_means = torch.stack(history).reshape(10, -1, len(want)).mean(1)
    z = (batch_means.mean(0) - want) / (batch_means.std(0) / math.sqrt(10))
    assert (z**2).mean() < 9 / 7 + 4 * 2.3 / math.sqrt(len(want)), z


@pytest.mark.parametrize("cls", MESSENGERS)
def test_mini_batches_train_full_size_params_and_amortized_plates_share_one(cls):
    guide = cls(hierarchical)
    svi = SVI(hierarchical, guide, Adam({"lr": 0.01}), Trace_ELBO())
    svi.step(DATA, 4)
    assert engine.param(f"{cls.__name__}.locs.z").shape == (N,)
    # The model's plate indices are in the guide's trace, so the replayed model uses them.
    guide_trace = poutine.trace(guide).get_trace(DATA, 4)
    assert guide_trace.nodes["units"]["value"].shape == (4,)
    assert guide_trace.nodes["z"]["value"].shape == (4,)
    assert "x" not in guide_trace.nodes  # observed: the model's, scored at replay
    engine.clear_param_store()
    shared = cls(hierarchical, amortized_plates=("units",))
    SVI(hierarchical, shared, Adam({"lr": 0.01}), Trace_ELBO()).step(DATA, 4)
    assert dict(shared.named_parameters())["locs.z_unconstrained"].shape == ()


@pytest.mark.parametrize("cls", MESSENGERS)
def test_state_dict_round_trip_and_call(cls):
    guide = cls(hierarchical)
    SVI(hierarchical, guide, Adam({"lr": 0.1}), Trace_ELBO()).step(DATA)
    state = {key: value.clone() for key, value in guide.state_dict().items()}
    assert "locs.z_unconstrained" in state and "scales.mu_unconstrained" in state
    engine.clear_param_store()
    fresh = cls(hierarchical)
    fresh(DATA)  # creates the params (messengers make them as sites are seen)
    fresh.load_state_dict(state)
    engine.set_rng_seed(4)
    expected = fresh(DATA)
    engine.set_rng_seed(4)
    as_tuple = fresh.call(DATA)
    assert all(torch.equal(a, expected[k]) for a, k in zip(as_tuple, sorted(expected), strict=True))
    assert sorted(expected) == ["mu", "x", "z"]
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_get_traces_pairs_priors_with_posteriors_and_median():
    guide = AutoNormalMessenger(hierarchical, init_scale=0.2)
    guide(DATA)
    model_trace, guide_trace = guide.get_traces()
    assert set(guide_trace.stochastic_nodes) == {"mu", "z"}
    assert model_trace.nodes["x"]["is_observed"]
    assert isinstance(model_trace.nodes["z"]["fn"], dist.Normal)
    assert torch.equal(model_trace.nodes["z"]["value"], guide_trace.nodes["z"]["value"])
    # The default init is the prior mean given the values drawn upstream: mu at 0, and every z
    # at the mu drawn in the first call.
    first_mu = model_trace.nodes["mu"]["value"]
    median = guide.median(DATA)
    assert median["mu"].item() == 0.0 and torch.equal(median["z"], first_mu.expand(N))


def test_hierarchical_posterior_follows_the_upstream_value():
    guide = AutoHierarchicalNormalMessenger(hierarchical, hierarchical_sites=["z"])
    median = guide.median(DATA)
    assert torch.equal(median["z"], median["mu"].expand(N))
    store = engine.get_param_store()
    assert "AutoHierarchicalNormalMessenger.weights.mu" not in store
    # Moving mu moves every z by weight (1 at the start) times the shift.
    store["AutoHierarchicalNormalMessenger.locs.mu"] = torch.tensor(2.0)
    assert torch.allclose(guide.median(DATA)["z"], torch.full((N,), 2.0))


def test_a_subclass_overrides_one_site():
    class Custom(AutoNormalMessenger):
        def get_posterior(self, name, prior):
            if name == "mu":
                return torch.tensor(1.5)  # a point mass
            return super().get_posterior(name, prior)

    guide = Custom(hierarchical)
    values = guide(DATA)
    assert values["mu"].item() == 1.5 and values["z"].shape == (N,)
    assert isinstance(guide, AutoMessenger) and isinstance(
        guide, engine.poutine.messenger.Messenger
    )


def test_discrete_site_and_bad_init_scale_are_refused():
    def model():
        engine.sample("k", dist.Poisson(3.0))

    with pytest.raises(AutoGuideError, match="site 'k'"):
        AutoNormalMessenger(model)()
    with pytest.raises(AutoGuideError, match="init_scale must be positive"):
        AutoRegressiveMessenger(model, init_scale=0.0)
