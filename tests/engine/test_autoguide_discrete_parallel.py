"""AutoDiscreteParallel: learned probs for enumerated discrete sites, fitted by TraceEnum_ELBO."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import AutoGuideError
from engine.infer import SVI, TraceEnum_ELBO
from engine.infer.autoguide import (
    AutoDiscreteParallel,
    AutoGuideList,
    AutoNormal,
)
from engine.optim import Adam

LOCS = torch.tensor([-1.0, 2.0])
WEIGHTS = torch.tensor([0.3, 0.7])
DATA = torch.tensor([-1.5, -0.2, 0.4, 0.6, 1.9, 3.0])


def labels(x):
    """Fixed mixture components: only the labels are latent, independent given the data."""
    with engine.plate("data", len(x)):
        k = engine.sample("k", dist.Categorical(WEIGHTS))
        engine.sample("x", dist.Normal(LOCS[k], 1.0), obs=x)


def test_fit_reaches_the_exact_label_posteriors():
    guide = AutoDiscreteParallel(labels)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    svi = SVI(labels, guide, Adam({"lr": 0.05}), elbo)
    for _ in range(1500):
        svi.step(DATA)
    log_joint = WEIGHTS.log() + dist.Normal(LOCS, 1.0).log_prob(DATA[:, None])
    exact = log_joint.softmax(-1)
    # Both sites are enumerated, so the ELBO and its gradient are exact (no Monte Carlo error):
    # the only gap left is the optimiser's, and at the optimum the guide is the posterior.
    fitted = engine.param("AutoDiscreteParallel.k_probs").detach()
    assert torch.allclose(fitted, exact, atol=2e-3), (fitted, exact)
    assert torch.equal(guide.median(DATA)["k"], exact.argmax(-1))


def mixture(x):
    weights = engine.sample("weights", dist.Dirichlet(torch.ones(2)))
    locs = engine.sample("locs", dist.Normal(0.0, 5.0).expand([2]).to_event(1))
    with engine.plate("data", len(x)):
        k = engine.sample("k", dist.Categorical(weights))
        engine.sample("x", dist.Normal(locs[k], 1.0), obs=x)


def test_with_a_continuous_guide_in_a_list():
    guide = AutoGuideList(mixture)
    guide.append(AutoNormal(poutine.block(mixture, hide=["k"])))
    guide.append(AutoDiscreteParallel(poutine.block(mixture, expose=["k"])))
    svi = SVI(mixture, guide, Adam({"lr": 0.05}), TraceEnum_ELBO(max_plate_nesting=1))
    losses = [svi.step(DATA) for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert engine.param("AutoGuideList.1.k_probs").shape == (len(DATA), 2)
    state = {key: value.clone() for key, value in guide.state_dict().items()}
    assert "1.k_probs" in state


def test_bernoulli_sites_and_subsampled_plates():
    def model():
        with engine.plate("units", 8, subsample_size=3):
            engine.sample("b", dist.Bernoulli(0.25))

    guide = AutoDiscreteParallel(model, model_args=())
    assert engine.param("AutoDiscreteParallel.b_probs").shape == (8,)
    site = poutine.trace(guide).get_trace().nodes["b"]
    assert site["fn"].probs.shape == (3,) and site["infer"]["enumerate"] == "parallel"


def test_continuous_sites_are_refused():
    with pytest.raises(AutoGuideError, match=r"site 'weights' .*expose"):
        AutoDiscreteParallel(mixture, model_args=(DATA,))
