"""Importance sampling and EmpiricalMarginal on the conjugate Normal-Normal model.

z ~ N(0, 1), y_i | z ~ N(z, 1): the evidence is y ~ N(0, I + 11^T) and the posterior is
N(sum(y) / (n + 1), 1 / (n + 1)). Estimates must land within 5 Monte Carlo standard errors,
which are computed from the importance weights themselves (fixed seeds from conftest).
"""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.infer.abstract_infer import TracePosterior
from engine.infer.empirical_marginal import EmpiricalMarginal
from engine.infer.importance import Importance

Y = torch.tensor([0.8, 1.3, 0.4, 1.9, 1.1])
N = len(Y)
POST_MEAN = Y.sum().item() / (N + 1)
POST_SD = math.sqrt(1.0 / (N + 1))
LOG_EVIDENCE = (
    dist.MultivariateNormal(torch.zeros(N), torch.eye(N) + torch.ones(N, N)).log_prob(Y).item()
)


def model(y):
    z = pyro.sample("z", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(y)):
        pyro.sample("obs", dist.Normal(z, 1.0), obs=y)
    return z


def make_guide(loc, scale):
    def guide(y):
        pyro.sample("z", dist.Normal(loc, scale))

    return guide


GUIDES = {
    "prior": None,
    # Off-centre and wider than the posterior: a decent but imperfect proposal.
    "hand_written": make_guide(POST_MEAN + 0.1, 1.3 * POST_SD),
}


def log_normalizer_se(posterior):
    """Delta-method standard error of log(mean w): sd(w) / (sqrt(n) mean(w))."""
    log_w = torch.stack(posterior.log_weights).double()
    w = (log_w - log_w.max()).exp()
    return (w.std() / (w.mean() * math.sqrt(w.numel()))).item()


@pytest.fixture(scope="module")
def posteriors():
    """One run per proposal, shared by the tests that only read it."""
    pyro.set_rng_seed(1)
    return {
        name: Importance(model, guide, num_samples=3000).run(Y) for name, guide in GUIDES.items()
    }


@pytest.mark.parametrize("proposal", list(GUIDES))
def test_log_normalizer_estimates_the_exact_evidence(posteriors, proposal):
    posterior = posteriors[proposal]
    estimate = posterior.get_log_normalizer().item()
    assert abs(estimate - LOG_EVIDENCE) < 5 * log_normalizer_se(posterior)


def test_a_better_proposal_has_a_smaller_error(posteriors):
    errors = {name: log_normalizer_se(posterior) for name, posterior in posteriors.items()}
    assert errors["hand_written"] < errors["prior"] / 2


def test_the_exact_posterior_as_proposal_gives_constant_weights():
    exact = Importance(model, make_guide(POST_MEAN, POST_SD), num_samples=50).run(Y)
    log_w = torch.stack(exact.log_weights)
    assert torch.allclose(log_w, torch.full_like(log_w, LOG_EVIDENCE), atol=1e-4)
    assert exact.get_ESS().item() == pytest.approx(50.0)


@pytest.mark.parametrize("proposal", list(GUIDES))
def test_empirical_marginal_mean_is_the_posterior_mean(posteriors, proposal):
    posterior = posteriors[proposal]
    marginal = EmpiricalMarginal(posterior, sites="z")
    z = torch.stack([tr.nodes["z"]["value"] for tr in posterior.exec_traces])
    w = posterior.get_normalized_weights()
    # Standard error of a self-normalised importance estimate of a mean.
    se = (w.pow(2) * (z - marginal.mean).pow(2)).sum().sqrt().item()
    assert abs(marginal.mean.item() - POST_MEAN) < 5 * se
    # The default site is the model's return value, here z itself.
    assert torch.equal(EmpiricalMarginal(posterior).mean, marginal.mean)


def test_weights_statistics_and_the_trace_api():
    posterior = Importance(model, num_samples=200).run(Y)
    assert posterior.run(Y) is posterior and len(posterior.exec_traces) == 200
    assert all(lw.dim() == 0 and not lw.requires_grad for lw in posterior.log_weights)
    w = posterior.get_normalized_weights()
    assert w.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(posterior.get_normalized_weights(log_scale=True).exp(), w)
    assert posterior.get_ESS().item() == pytest.approx((1.0 / w.pow(2).sum()).item(), rel=1e-5)
    assert 1.0 <= posterior.get_ESS().item() <= 200.0
    drawn = posterior()
    assert "z" in drawn.nodes and "obs" not in drawn.nodes


def test_a_guide_may_leave_latents_to_the_model():
    # z ~ N(0, 1), u | z ~ N(z, 1), y | u ~ N(u, 1): y ~ N(0, 3). The guide proposes z only; u is
    # drawn from the model's conditional prior, so its density must not enter the weight.
    def chain(y):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        u = pyro.sample("u", dist.Normal(z, 1.0))
        pyro.sample("y", dist.Normal(u, 1.0), obs=y)

    y = torch.tensor(1.2)
    posterior = Importance(chain, make_guide(0.3, 1.0), num_samples=3000).run(y)
    exact = dist.Normal(0.0, math.sqrt(3.0)).log_prob(y).item()
    estimate = posterior.get_log_normalizer().item()
    assert abs(estimate - exact) < 5 * log_normalizer_se(posterior)


def test_importance_keeps_its_traces_but_no_graph_and_hides_its_runs():
    def learnt_guide(y):
        loc = pyro.param("loc", torch.tensor(0.5))
        pyro.sample("z", dist.Normal(loc, 1.0))

    with poutine.trace() as outer:
        posterior = Importance(model, learnt_guide, num_samples=20).run(Y)
    assert len(outer.trace) == 0
    assert not any(tr.nodes["z"]["value"].requires_grad for tr in posterior.exec_traces)


def test_errors():
    def stray_guide(y):
        pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("extra", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match=r"'extra' \(the model has no such site\)"):
        Importance(model, stray_guide, num_samples=2).run(Y)

    def observing_guide(y):
        pyro.sample("obs", dist.Normal(torch.zeros(len(y)), 1.0))

    with pytest.raises(ValueError, match=r"'obs' \(the model observes that site\)"):
        Importance(model, observing_guide, num_samples=2).run(Y)
    with pytest.raises(ValueError, match=r"call \.run"):
        Importance(model).get_log_normalizer()
    with pytest.raises(ValueError, match="has been run"):
        EmpiricalMarginal(Importance(model))
    ran = Importance(model, num_samples=3).run(Y)
    with pytest.raises(KeyError, match="no site 'w'"):
        EmpiricalMarginal(ran, sites="w")
    with pytest.raises(ValueError, match="num_samples must be positive"):
        Importance(model, num_samples=0)


def test_empirical_marginal_stacks_sites_of_one_shape():
    def two(y):
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        pyro.sample("b", dist.Normal(a, 1.0))
        pyro.sample("v", dist.Normal(torch.zeros(2), 1.0).to_event(1))

    posterior = Importance(two, num_samples=10).run(Y)
    stacked = EmpiricalMarginal(posterior, sites=["a", "b"])
    assert stacked.event_shape == (2,) and stacked.sample((3,)).shape == (3, 2)
    with pytest.raises(ValueError, match="one shape"):
        EmpiricalMarginal(posterior, sites=["a", "v"])
    with pyro.plate("copies", 4):
        assert pyro.sample("m", stacked).shape == (4, 2)


def test_trace_posterior_is_abstract():
    with pytest.raises(NotImplementedError, match="_traces"):
        TracePosterior().run()
