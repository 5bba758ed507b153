"""GroupedNormalNormal (group means integrated out) and TruncatedPolyaGamma, each against an
independent computation: the dense multivariate normal for the first, numerical integration and
the known mean 1/4 for the second (sample mean within Z standard errors; PG(1, 0) has variance
1/24, so the standard error of a mean of n draws is sqrt(1 / (24 n))).
"""

import math

import pytest
import torch

import engine.distributions as dist
from engine.errors import ShapeError

Z = 5.0


def test_grouped_normal_normal_equals_the_dense_marginal():
    torch.manual_seed(3)
    prior_loc = torch.randn(3, dtype=torch.float64)
    prior_scale = torch.rand(3, dtype=torch.float64) + 0.3
    obs_scale = torch.rand(7, dtype=torch.float64) + 0.2
    group_idx = torch.tensor([0, 1, 2, 0, 0, 2, 1])
    values = torch.randn(7, dtype=torch.float64)
    d = dist.GroupedNormalNormal(prior_loc, prior_scale, obs_scale, group_idx)
    same_group = (group_idx[:, None] == group_idx[None, :]).double()
    cov = torch.diag(obs_scale.pow(2)) + same_group * prior_scale[group_idx].pow(2)[:, None]
    dense = torch.distributions.MultivariateNormal(prior_loc[group_idx], cov)
    assert torch.isclose(d.log_prob(values), dense.log_prob(values))

    # The posterior of each group mean, by the precision-weighted average.
    post = d.get_posterior(values)
    for g in range(3):
        members = group_idx == g
        precision = prior_scale[g] ** -2 + obs_scale[members].pow(-2).sum()
        mean = (
            prior_loc[g] * prior_scale[g] ** -2
            + (values[members] * obs_scale[members].pow(-2)).sum()
        ) / precision
        assert torch.isclose(post.loc[g], mean) and torch.isclose(post.scale[g], precision**-0.5)

    draws = d.sample((4,))
    assert draws.shape == (4, 7)


def test_grouped_normal_normal_checks_shapes():
    with pytest.raises(ShapeError, match="num_groups"):
        dist.GroupedNormalNormal(
            torch.zeros(2), torch.ones(3), torch.ones(4), torch.zeros(4).long()
        )


def test_truncated_polya_gamma_normalises_and_has_mean_one_quarter():
    d = dist.TruncatedPolyaGamma(torch.ones(1, dtype=torch.float64)).expand([2])
    x = torch.linspace(1e-4, 2.5, 50001, dtype=torch.float64)
    mass = torch.trapezoid(d.log_prob(x.unsqueeze(-1)).exp(), x, dim=0)
    assert torch.allclose(mass, torch.ones(2, dtype=torch.float64), atol=1e-5)
    mean = torch.trapezoid(x.unsqueeze(-1) * d.log_prob(x.unsqueeze(-1)).exp(), x, dim=0)
    assert torch.allclose(mean, torch.full((2,), 0.25, dtype=torch.float64), atol=1e-5)
    draws = d.sample((20000,))
    assert draws.shape == (20000, 2) and bool(((draws > 0) & (draws <= 2.5)).all())
    assert (draws.mean(0) - 0.25).abs().max() < Z * math.sqrt(1 / 24 / 20000)
