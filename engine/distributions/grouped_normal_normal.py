"""``GroupedNormalNormal``: grouped normal observations with each group's mean integrated out.

Hierarchical models with a normal prior on a per-group mean and normal observations are common
(schools, clinics, batches); integrating the group means out analytically leaves a likelihood of
the prior and noise parameters alone, with no latent variables for inference to explore. Within
group ``g`` the observations are jointly normal with covariance ``diag(obs_scale**2) +
prior_scale[g]**2``, whose determinant and inverse have closed forms (a rank-one update).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.torch_wrappers import Normal
from engine.errors import ShapeError, fmt_shape


class GroupedNormalNormal(TorchDistribution):
    """Observations ``x_i ~ Normal(mu[group_idx[i]], obs_scale[i])`` with
    ``mu[g] ~ Normal(prior_loc[g], prior_scale[g])`` integrated out.

    ``log_prob(values)`` is the total marginal log likelihood of all ``num_data`` values (a
    scalar); ``get_posterior(values)`` the normal posterior of each group's mean.

    >>> d = GroupedNormalNormal(torch.zeros(1), torch.ones(1), torch.ones(1), torch.tensor([0]))
    >>> x = torch.tensor([0.7])
    >>> bool(torch.isclose(d.log_prob(x), Normal(0.0, 2**0.5).log_prob(x).sum()))  # 1 + 1
    True
    """

    arg_constraints = {
        "prior_loc": constraints.real,
        "prior_scale": constraints.positive,
        "obs_scale": constraints.positive,
    }
    support = constraints.real

    def __init__(
        self,
        prior_loc: torch.Tensor,
        prior_scale: torch.Tensor,
        obs_scale: torch.Tensor,
        group_idx: torch.Tensor,
        validate_args: bool | None = None,
    ):
        shapes = [t.shape for t in (prior_loc, prior_scale, obs_scale, group_idx)]
        if any(len(s) != 1 for s in shapes) or shapes[0] != shapes[1] or shapes[2] != shapes[3]:
            raise ShapeError(
                "GroupedNormalNormal: prior_loc and prior_scale must be vectors of size "
                "num_groups, obs_scale and group_idx vectors of size num_data; got "
                + ", ".join(fmt_shape(s) for s in shapes)
                + "."
            )
        if group_idx.dtype.is_floating_point:
            raise ShapeError("GroupedNormalNormal: group_idx must be an integer (long) tensor.")
        self.prior_loc = prior_loc
        self.prior_scale = prior_scale
        self.obs_scale = obs_scale
        self.group_idx = group_idx
        self.num_groups = prior_loc.shape[0]
        super().__init__(torch.Size(), torch.Size(), validate_args=validate_args)

    def _group_sums(self, per_obs: torch.Tensor) -> torch.Tensor:
        out = per_obs.new_zeros((*per_obs.shape[:-1], self.num_groups))
        return out.index_add(-1, self.group_idx, per_obs)

    def _sufficient(self, value: torch.Tensor):
        obs_precision = self.obs_scale.pow(-2)
        residual = value - self.prior_loc[self.group_idx]
        sum_precision = self._group_sums(obs_precision)
        sum_weighted = self._group_sums(residual * obs_precision)
        return obs_precision, residual, sum_precision, sum_weighted

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape[-1:] != self.obs_scale.shape:
            raise ShapeError(
                f"GroupedNormalNormal.log_prob: values must end in num_data = "
                f"{self.obs_scale.shape[0]}; got {fmt_shape(value.shape)}."
            )
        obs_precision, residual, sum_precision, sum_weighted = self._sufficient(value)
        tau2 = self.prior_scale.pow(2)
        shrink = 1 + tau2 * sum_precision  # det(I + tau^2 1 1^T D^-1)
        # Sherman-Morrison: r^T (D + tau^2 1 1^T)^-1 r = r^T D^-1 r - tau^2 (1^T D^-1 r)^2 / shrink
        quadratic = (residual.pow(2) * obs_precision).sum(-1) - (
            tau2 * sum_weighted.pow(2) / shrink
        ).sum(-1)
        log_det = 2 * self.obs_scale.log().sum(-1) + shrink.log().sum(-1)
        n = value.shape[-1]
        return -0.5 * (n * math.log(2 * math.pi) + log_det + quadratic)

    def get_posterior(self, value: torch.Tensor) -> Normal:
        """The normal posterior of every group's mean given the observations ``value``."""
        _, _, sum_precision, _ = self._sufficient(value)
        precision = self.prior_scale.pow(-2) + sum_precision
        weighted = self.prior_loc * self.prior_scale.pow(-2) + self._group_sums(
            value * self.obs_scale.pow(-2)
        )
        return Normal(weighted / precision, precision.rsqrt())

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        """Draws of all ``num_data`` observations: group means first, then the noise."""
        with torch.no_grad():
            shape = torch.Size(sample_shape)
            means = Normal(self.prior_loc, self.prior_scale).sample(shape)
            noise = torch.randn(shape + self.obs_scale.shape, dtype=self.obs_scale.dtype)
            return means[..., self.group_idx] + self.obs_scale * noise
