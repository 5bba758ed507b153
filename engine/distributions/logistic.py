"""The logistic distribution and its skewed (type I generalised) version.

The logistic has the shape of a normal with heavier, exponential tails; its CDF is the sigmoid,
so it is the noise behind logistic regression read as a latent-threshold model. ``SkewLogistic``
raises the CDF to a power ``asymmetry``, which tilts one tail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.param_expand import expand_params
from engine.distributions.torch_distribution import TorchDistribution

Param = torch.Tensor | Number


def uniform_open(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Uniform draws strictly inside (0, 1), so an inverse CDF never returns an infinity.

    >>> u = uniform_open(torch.Size([1000]), torch.zeros(()))
    >>> bool((u > 0).all() and (u < 1).all())
    True
    """
    finfo = torch.finfo(like.dtype)
    u = torch.rand(shape, dtype=like.dtype, device=like.device)
    return u.clamp(min=finfo.tiny, max=1 - finfo.eps)


class Logistic(TorchDistribution):
    """Logistic law: density ``exp(-z) / (scale * (1 + exp(-z))**2)``, ``z = (x - loc) / scale``.

    >>> d = Logistic(0.0, 1.0)
    >>> float(d.cdf(torch.tensor(0.0))), round(float(d.variance), 4)  # pi**2 / 3
    (0.5, 3.2899)
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Param, scale: Param, *, validate_args: bool | None = None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Logistic:
        return expand_params(self, Logistic, batch_shape, _instance)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -z - 2 * F.softplus(-z) - self.scale.log()

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.icdf(uniform_open(self._extended_shape(sample_shape), self.loc))

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((value - self.loc) / self.scale)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.loc + self.scale * torch.logit(value)

    def entropy(self) -> torch.Tensor:
        return self.scale.log() + 2

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.pow(2) * (math.pi**2 / 3)


class SkewLogistic(TorchDistribution):
    """Type I generalised logistic: CDF ``sigmoid(z) ** asymmetry``, ``z = (x - loc) / scale``.

    ``asymmetry = 1`` is the logistic; above 1 the right tail is the heavier one.

    >>> d = SkewLogistic(0.0, 1.0, asymmetry=2.0)
    >>> float(d.cdf(torch.tensor(0.0)))  # 0.5 ** 2
    0.25
    """

    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "asymmetry": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(
        self,
        loc: Param,
        scale: Param,
        asymmetry: Param = 1.0,
        *,
        validate_args: bool | None = None,
    ):
        self.loc, self.scale, self.asymmetry = broadcast_all(loc, scale, asymmetry)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> SkewLogistic:
        return expand_params(self, SkewLogistic, batch_shape, _instance)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        a = self.asymmetry
        return a.log() - self.scale.log() - z - (a + 1) * F.softplus(-z)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.icdf(uniform_open(self._extended_shape(sample_shape), self.loc))

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        z = (value - self.loc) / self.scale
        return torch.exp(-self.asymmetry * F.softplus(-z))

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        # sigmoid(z) = value ** (1 / a)  <=>  z = logit(value ** (1 / a)), computed in log space.
        log_s = value.log() / self.asymmetry
        z = log_s - torch.log(-torch.expm1(log_s))
        return self.loc + self.scale * z
