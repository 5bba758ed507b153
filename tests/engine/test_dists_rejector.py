"""``Rejector`` and the accept-reject samplers built on it (engine.distributions.testing).

Each sampler must reproduce its target law (KS test against scipy's CDF at level 1e-3, fixed
seed) and, through ``score_parts``, an unbiased ELBO gradient: the surrogate-loss gradient
averaged over n draws must match the gradient through torch's own reparameterised sampler within
Z combined standard errors (each estimated from the per-draw gradients).
"""

import math

import pytest
import torch

import engine.distributions as dist
from engine.distributions.testing.gof import auto_goodness_of_fit
from engine.distributions.testing.naive_dirichlet import NaiveBeta, NaiveDirichlet
from engine.distributions.testing.rejection_exponential import RejectionExponential
from engine.distributions.testing.rejection_gamma import (
    RejectionGamma,
    RejectionStandardGamma,
    ShapeAugmentedBeta,
    ShapeAugmentedDirichlet,
    ShapeAugmentedGamma,
)

stats = pytest.importorskip("scipy.stats")

Z = 5.0
LEVEL = 1e-3
N = 20000


def _per_draw_grads(model, guide, params, score_parts=True):
    """Per-draw gradients of the ELBO surrogate with respect to ``params`` (each of shape (N,))."""
    x = guide.rsample()
    log_p = model.log_prob(x)
    if score_parts:
        log_q, score, entropy = guide.score_parts(x)
    else:
        log_q = entropy = guide.log_prob(x)
        score = torch.zeros_like(log_q)
    surrogate = log_p + (log_p - log_q).detach() * score - entropy
    return torch.autograd.grad(surrogate.sum(), params)


def _agree(a: torch.Tensor, b: torch.Tensor) -> bool:
    se = math.sqrt(float(a.var()) / len(a) + float(b.var()) / len(b))
    return abs(float(a.mean()) - float(b.mean())) < Z * se


def test_rejector_density_and_draws():
    rate = torch.tensor(2.0)
    d = RejectionExponential(rate, torch.tensor(0.5))
    x = torch.linspace(0.01, 4.0, 9)
    assert torch.allclose(d.log_prob(x), dist.Exponential(rate).log_prob(x))
    draws = d.rsample((N,))
    assert draws.shape == (N,)
    assert stats.kstest(draws.numpy(), stats.expon(scale=0.5).cdf).pvalue > LEVEL
    assert d.rsample((2, 3)).shape == (2, 3)


@pytest.mark.parametrize("factor", [0.3, 1.0])
def test_rejection_exponential_elbo_gradient_is_unbiased(factor):
    rates = torch.full((N,), 1.5, requires_grad=True)
    model = dist.Exponential(torch.ones(N))
    (direct,) = _per_draw_grads(model, dist.Exponential(rates), [rates], score_parts=False)
    (through,) = _per_draw_grads(model, RejectionExponential(rates, factor), [rates])
    assert _agree(through, direct)


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_rejection_gamma_matches_gamma_and_its_gradient(alpha):
    d = RejectionGamma(torch.tensor(alpha), torch.tensor(2.0))
    draws = d.rsample((N,))
    ks = stats.kstest(draws.detach().numpy(), stats.gamma(alpha, scale=0.5).cdf)
    assert ks.pvalue > LEVEL
    alphas = torch.full((N,), alpha, requires_grad=True)
    betas = torch.full((N,), 2.0, requires_grad=True)
    model = dist.Gamma(torch.ones(N), torch.ones(N))
    expected = _per_draw_grads(model, dist.Gamma(alphas, betas), [alphas, betas], False)
    actual = _per_draw_grads(model, RejectionGamma(alphas, betas), [alphas, betas])
    for a, e in zip(actual, expected, strict=True):
        assert _agree(a, e)


def test_shape_augmented_gamma_reaches_small_concentrations():
    alpha = 0.4
    d = ShapeAugmentedGamma(torch.tensor(alpha), torch.tensor(1.0))
    draws = d.rsample((N,))
    assert stats.kstest(draws.detach().numpy(), stats.gamma(alpha).cdf).pvalue > LEVEL
    alphas = torch.full((N,), alpha, requires_grad=True)
    model = dist.Gamma(torch.ones(N), torch.ones(N))
    (expected,) = _per_draw_grads(model, dist.Gamma(alphas, torch.ones(N)), [alphas], False)
    (actual,) = _per_draw_grads(model, ShapeAugmentedGamma(alphas, torch.ones(N)), [alphas])
    assert _agree(actual, expected)
    with pytest.raises(NotImplementedError, match="latest rsample"):
        d.score_parts(torch.tensor(0.3))


def test_rejection_standard_gamma_is_standard_gamma():
    d = RejectionStandardGamma(torch.tensor(2.5))
    draws = d.rsample((N,))
    assert auto_goodness_of_fit(draws, d.log_prob(draws).exp()) > LEVEL


def test_dirichlet_and_beta_helpers_have_the_right_law():
    conc = torch.tensor([0.7, 2.0, 3.0])
    for d in (NaiveDirichlet(conc), ShapeAugmentedDirichlet(conc)):
        x = d.rsample((N,))
        assert torch.allclose(x.sum(-1), torch.ones(N))
        # The first coordinate of a Dirichlet is Beta(a_1, sum of the others).
        assert stats.kstest(x[:, 0].detach().numpy(), stats.beta(0.7, 5.0).cdf).pvalue > LEVEL
        assert torch.allclose(d.log_prob(x[:3]), dist.Dirichlet(conc).log_prob(x[:3]))
    for d in (NaiveBeta(torch.tensor(0.6), torch.tensor(2.0)), ShapeAugmentedBeta(0.6, 2.0)):
        x = d.rsample((N,))
        assert stats.kstest(x.detach().numpy(), stats.beta(0.6, 2.0).cdf).pvalue > LEVEL
