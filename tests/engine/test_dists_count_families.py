"""Count and ordinal families added for Pyro parity: ExtendedBinomial, ExtendedBetaBinomial,
LogNormalNegativeBinomial and OrderedLogistic, each checked against an independent computation.

Sample frequencies are compared with the pmf by Pearson's chi-squared test at level 1e-3 (fixed
seed), sample means within Z standard errors of the closed-form mean.
"""

import math

import pytest
import torch

import engine.distributions as dist
from engine.distributions.testing.gof import multinomial_goodness_of_fit
from engine.errors import DistributionArgumentError

stats = pytest.importorskip("scipy.stats")
integrate = pytest.importorskip("scipy.integrate")

Z = 5.0
LEVEL = 1e-3
T = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731


def test_extended_binomial_is_binomial_inside_and_impossible_outside():
    n = T([8.0, 7.0, -1.0, 0.0])
    d = dist.ExtendedBinomial(n, probs=T(0.3))
    value = T([[6.0, 3.0, 0.0, 0.0], [9.0, -1.0, 0.0, 1.0]])
    lp = d.log_prob(value)
    assert math.isclose(float(lp[0, 0]), stats.binom.logpmf(6, 8, 0.3), abs_tol=1e-12)
    assert math.isclose(float(lp[0, 1]), stats.binom.logpmf(3, 7, 0.3), abs_tol=1e-12)
    assert float(lp[0, 3]) == 0.0  # n = 0: the value 0 is certain
    for i, j in [(0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]:  # above n, below 0, or n < 0
        assert lp[i, j] == -math.inf
    assert isinstance(d, dist.Binomial)


def test_extended_beta_binomial_is_beta_binomial_inside():
    d = dist.ExtendedBetaBinomial(T(2.0), T(5.0), T([[8.0, 7.0], [5.0, -2.0]]))
    value = T([[6.0, 3.0], [6.0, 0.0]])
    lp = d.log_prob(value)
    assert math.isclose(float(lp[0, 0]), stats.betabinom.logpmf(6, 8, 2.0, 5.0), abs_tol=1e-12)
    assert math.isclose(float(lp[0, 1]), stats.betabinom.logpmf(3, 7, 2.0, 5.0), abs_tol=1e-12)
    assert lp[1, 0] == -math.inf and lp[1, 1] == -math.inf
    assert d.expand([3, 2, 2]).batch_shape == (3, 2, 2)


def _lnnb_pmf_by_quadrature(k: int, r: float, logit: float, sigma: float) -> float:
    """The mixture integral done by adaptive quadrature over the normal noise."""

    def integrand(eps: float) -> float:
        p = 1 / (1 + math.exp(-(logit + eps)))
        return stats.norm.pdf(eps, scale=sigma) * stats.nbinom.pmf(k, r, 1 - p)

    value, _ = integrate.quad(integrand, -12 * sigma, 12 * sigma, limit=200)
    return value


@pytest.mark.parametrize("sigma", [0.1, 0.6])
def test_log_normal_negative_binomial_pmf_is_the_mixture(sigma):
    d = dist.LogNormalNegativeBinomial(T(4.0), T(0.3), T(sigma), num_quad_points=32)
    for k in (0, 2, 5, 15):
        expected = _lnnb_pmf_by_quadrature(k, 4.0, 0.3, sigma)
        assert math.isclose(float(d.log_prob(T(float(k))).exp()), expected, rel_tol=1e-6)


def test_log_normal_negative_binomial_moments_and_draws():
    d = dist.LogNormalNegativeBinomial(T(3.0), T(-0.5), T(0.4))
    pmf = d.log_prob(torch.arange(400.0, dtype=torch.float64)).exp()
    support = torch.arange(400.0, dtype=torch.float64)
    assert math.isclose(float(pmf.sum()), 1.0, rel_tol=1e-9)
    assert math.isclose(float((pmf * support).sum()), float(d.mean), rel_tol=1e-6)
    second = float((pmf * support.pow(2)).sum())
    assert math.isclose(second - float(d.mean) ** 2, float(d.variance), rel_tol=1e-4)
    draws = d.sample((20000,))
    se = math.sqrt(float(d.variance) / 20000)
    assert abs(float(draws.mean()) - float(d.mean)) < Z * se
    counts = torch.bincount(draws.long().clamp(max=15), minlength=16)
    probs = torch.cat([pmf[:15], pmf[15:].sum(-1, keepdim=True)])
    assert multinomial_goodness_of_fit(probs, counts) > LEVEL
    with pytest.raises(DistributionArgumentError, match="num_quad_points"):
        dist.LogNormalNegativeBinomial(T(3.0), T(-0.5), T(0.4), num_quad_points=0)


def test_ordered_logistic_probabilities_and_draws():
    predictor = T([-0.5, 0.5, 1.5])
    cutpoints = T([0.0, 1.0])
    d = dist.OrderedLogistic(predictor, cutpoints)
    assert d.batch_shape == (3,) and d.probs.shape == (3, 3)
    # P(y <= k) = sigmoid(cutpoint_k - predictor)
    sig = torch.sigmoid
    expected_first = torch.stack(
        [sig(-predictor), sig(1 - predictor) - sig(-predictor), 1 - sig(1 - predictor)], -1
    )
    assert torch.allclose(d.probs, expected_first)
    draws = d.sample((6000,))
    for b in range(3):
        counts = torch.bincount(draws[:, b].long(), minlength=3)
        assert multinomial_goodness_of_fit(d.probs[b], counts) > LEVEL
    expanded = d.expand([2, 3])
    assert expanded.batch_shape == (2, 3) and expanded.cutpoints.shape == (2, 3, 2)


def test_ordered_logistic_refuses_unordered_cutpoints():
    with pytest.raises(ValueError):
        dist.OrderedLogistic(T([0.0]), T([1.0, 0.0, 2.0]), validate_args=True)
