"""``AffineBeta``: a beta distribution moved and stretched onto ``[loc, loc + scale]``.

A bounded parameter with a known range (a proportion in percent, a correlation in ``[-1, 1]``)
is a beta draw mapped affinely. Draws are kept off the two ends by one float step, because a
beta draw can round to exactly 0 or 1, where the density is zero or infinite.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.transforms import AffineTransform
from torch.distributions.utils import broadcast_all

from engine.distributions.torch_wrappers import Beta, TransformedDistribution

Param = torch.Tensor | Number


class AffineBeta(TransformedDistribution):
    """``loc + scale * Beta(concentration1, concentration0)``.

    >>> d = AffineBeta(2.0, 2.0, loc=-1.0, scale=2.0)  # symmetric on [-1, 1]
    >>> float(d.mean), round(float(d.variance), 4)  # 4 * 1/20
    (0.0, 0.2)
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "loc": constraints.real,
        "scale": constraints.positive,
    }

    def __init__(
        self,
        concentration1: Param,
        concentration0: Param,
        loc: Param,
        scale: Param,
        validate_args: bool | None = None,
    ):
        concentration1, concentration0, loc, scale = broadcast_all(
            concentration1, concentration0, loc, scale
        )
        base = Beta(concentration1, concentration0, validate_args=validate_args)
        super().__init__(base, AffineTransform(loc, scale), validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> AffineBeta:
        new = self._get_checked_instance(AffineBeta, _instance)
        shape = torch.Size(batch_shape)
        new.base_dist = self.base_dist.expand(shape)
        new.transforms = [AffineTransform(self.loc.expand(shape), self.scale.expand(shape))]
        torch.distributions.Distribution.__init__(new, shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _clamped(self, x: torch.Tensor) -> torch.Tensor:
        eps = torch.finfo(x.dtype).eps
        return self.loc + self.scale * x.clamp(min=eps, max=1 - eps)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self._clamped(self.base_dist.sample(sample_shape))

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self._clamped(self.base_dist.rsample(sample_shape))

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.interval(self.low, self.high)

    @property
    def concentration1(self) -> torch.Tensor:
        return self.base_dist.concentration1

    @property
    def concentration0(self) -> torch.Tensor:
        return self.base_dist.concentration0

    @property
    def loc(self) -> torch.Tensor:
        return torch.as_tensor(self.transforms[0].loc)

    @property
    def scale(self) -> torch.Tensor:
        return torch.as_tensor(self.transforms[0].scale)

    @property
    def low(self) -> torch.Tensor:
        return self.loc

    @property
    def high(self) -> torch.Tensor:
        return self.loc + self.scale

    @property
    def mean(self) -> torch.Tensor:
        return self.loc + self.scale * self.base_dist.mean

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.pow(2) * self.base_dist.variance
