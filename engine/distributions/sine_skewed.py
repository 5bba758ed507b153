"""``SineSkewed``: break the point symmetry of a distribution on a torus.

Given a base density ``f`` on ``d`` angles that is symmetric about its location ``mu``, the
sine-skewed density is ``f(x) * (1 + sum_i skewness_i * sin(x_i - mu_i))``. The factor averages
to one under ``f`` (it is odd about ``mu``), so no new normaliser is needed, and it stays
non-negative as long as ``sum_i |skewness_i| <= 1``. A draw is a base draw ``y`` kept with
probability ``(1 + sum skewness_i sin(y_i - mu_i)) / 2`` and otherwise reflected to ``2 mu - y``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.util import broadcast_shape
from engine.errors import DistributionArgumentError, ShapeError, fmt_shape


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


class _SkewnessBound(constraints.Constraint):
    """Vectors whose absolute entries sum to at most one."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return value.abs().sum(-1) <= 1.0

    def plain_words(self) -> tuple[str, str]:
        return (
            "a skewness vector with sum(|skewness|) <= 1",
            "scale it down, e.g. skewness / skewness.abs().sum(-1, keepdim=True).clamp(min=1)",
        )


class SineSkewed(TorchDistribution):
    """The sine-skewed version of ``base_dist``, a distribution of ``d`` angles (event ``(d,)``).

    ``skewness`` has shape ``(..., d)`` with ``sum(|skewness|) <= 1`` over the last dim. The base
    should be symmetric about its mean: a von Mises, a ``SineBivariateVonMises``, or
    ``Uniform(-pi, pi)``, each as an event of ``d`` angles.

    >>> import engine.distributions as dist
    >>> base = dist.VonMises(torch.tensor([0.0]), torch.tensor([1.0])).to_event(1)
    >>> d = SineSkewed(base, torch.tensor([0.5]))
    >>> x = torch.tensor([math.pi / 2])
    >>> bool(torch.isclose(d.log_prob(x), base.log_prob(x) + math.log(1.5)))
    True
    """

    arg_constraints = {"skewness": _SkewnessBound()}
    support = constraints.independent(constraints.real, 1)

    def __init__(
        self,
        base_dist: torch.distributions.Distribution,
        skewness: torch.Tensor,
        validate_args: bool | None = None,
    ):
        if not isinstance(base_dist, torch.distributions.Distribution):
            raise DistributionArgumentError("SineSkewed: base_dist must be a distribution.")
        if len(base_dist.event_shape) != 1:
            raise ShapeError(
                "SineSkewed: the base distribution must have event_shape (d,) for d angles; "
                f"it has {fmt_shape(base_dist.event_shape)}. Wrap a univariate one with "
                ".to_event(1) on a batch of size d."
            )
        skewness = torch.as_tensor(skewness)
        if skewness.dim() < 1 or skewness.shape[-1] != base_dist.event_shape[0]:
            raise ShapeError(
                f"SineSkewed: skewness must end in the base's event size "
                f"{base_dist.event_shape[0]}; got shape {fmt_shape(skewness.shape)}."
            )
        event_shape = base_dist.event_shape
        batch_shape = broadcast_shape(base_dist.batch_shape, skewness.shape[:-1])
        self.base_dist = base_dist.expand(batch_shape)
        self.skewness = skewness.expand(batch_shape + event_shape)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> SineSkewed:
        new = self._get_checked_instance(SineSkewed, _instance)
        shape = torch.Size(batch_shape)
        new.base_dist = self.base_dist.expand(shape)
        new.skewness = self.skewness.expand(shape + self.event_shape)
        torch.distributions.Distribution.__init__(new, shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _skew_factor(self, value: torch.Tensor) -> torch.Tensor:
        centre = self.base_dist.mean
        return 1 + (self.skewness * torch.sin(value - centre)).sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.base_dist.log_prob(value) + torch.log(self._skew_factor(value))

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            y = self.base_dist.sample(sample_shape)
            keep = 2 * torch.rand(y.shape[:-1], dtype=y.dtype, device=y.device) <= (
                self._skew_factor(y)
            )
            reflected = 2 * self.base_dist.mean - y
            return _wrap(torch.where(keep.unsqueeze(-1), y, reflected))
