"""A two-level normal model the autoguide tests share, with its exact posterior.

mu ~ N(0, 3²); per unit z_i ~ N(mu, 1) and x_i ~ N(z_i, 1): one local latent per datum, in a
plate that can be subsampled. The joint posterior of (mu, z) is Gaussian with precision P and
P·mean = (0, x); for a Gaussian target the mean-field optimum has the exact means and the
variances 1 / P_jj.
"""

from typing import NamedTuple

import torch

import engine
import engine.distributions as dist

PRIOR_SCALE = 3.0


def make_data(n: int) -> torch.Tensor:
    """``n`` data points around 1.5, the same for every test that asks for ``n``."""
    return 1.5 + 1.4 * torch.randn(n, generator=torch.Generator().manual_seed(0))


def hierarchical(x: torch.Tensor, batch_size: int | None = None) -> None:
    mu = engine.sample("mu", dist.Normal(0.0, PRIOR_SCALE))
    with engine.plate("units", len(x), subsample_size=batch_size) as idx:
        z = engine.sample("z", dist.Normal(mu, 1.0))
        engine.sample("x", dist.Normal(z, 1.0), obs=x[idx])


class ExactPosterior(NamedTuple):
    mean: torch.Tensor  # (mu, z_1, ..., z_n)
    mean_field_sd: torch.Tensor  # the mean-field optimum's sds, 1 / sqrt(P_jj)


def exact_posterior(x: torch.Tensor) -> ExactPosterior:
    n = len(x)
    precision = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    precision[0, 0] = PRIOR_SCALE**-2 + n
    precision[0, 1:] = precision[1:, 0] = -1.0
    precision[1:, 1:] = 2.0 * torch.eye(n, dtype=torch.float64)
    rhs = torch.cat([torch.zeros(1, dtype=torch.float64), x.double()])
    mean = torch.linalg.solve(precision, rhs)
    return ExactPosterior(mean.float(), precision.diagonal().rsqrt().float())
