"""The logistic distribution and its skewed (type I generalised) version.

The logistic has the shape of a normal with heavier, exponential tails; its CDF is the sigmoid,
so it is the noise behind logistic regression read as a latent-threshold model. ``SkewLogistic``
raises the CDF to a power ``asymmetry``, which tilts one tail.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.loc_scale_family import InverseCdfSampling, LocScaleFamily, Param


class Logistic(InverseCdfSampling):
    """Logistic law: density ``exp(-z) / (scale * (1 + exp(-z))**2)``, ``z = (x - loc) / scale``.

    >>> d = Logistic(0.0, 1.0)
    >>> float(d.cdf(torch.tensor(0.0))), round(float(d.variance), 4)  # pi**2 / 3
    (0.5, 3.2899)
    """

    def __init__(self, loc: Param, scale: Param, *, validate_args: bool | None = None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        z = self._standardized(value)
        return -z - 2 * F.softplus(-z) - self.scale.log()

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self._standardized(value, validate=False))

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


class SkewLogistic(InverseCdfSampling):
    """Type I generalised logistic: CDF ``sigmoid(z) ** asymmetry``, ``z = (x - loc) / scale``.

    ``asymmetry = 1`` is the logistic; above 1 the right tail is the heavier one.

    >>> d = SkewLogistic(0.0, 1.0, asymmetry=2.0)
    >>> float(d.cdf(torch.tensor(0.0)))  # 0.5 ** 2
    0.25
    """

    arg_constraints = {**LocScaleFamily.arg_constraints, "asymmetry": constraints.positive}

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

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        z = self._standardized(value)
        a = self.asymmetry
        return a.log() - self.scale.log() - z - (a + 1) * F.softplus(-z)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        z = self._standardized(value, validate=False)
        return torch.exp(-self.asymmetry * F.softplus(-z))

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        # sigmoid(z) = value ** (1 / a)  <=>  z = logit(value ** (1 / a)), computed in log space.
        log_s = value.log() / self.asymmetry
        z = log_s - torch.log(-torch.expm1(log_s))
        return self.loc + self.scale * z
