"""``SoftLaplace``: a smooth, log-concave density with Laplace-like exponential tails.

Its density is ``1 / (pi * scale * cosh(z))`` with ``z = (x - loc) / scale`` (the hyperbolic
secant distribution): tails like a Laplace, but differentiable everywhere, which suits gradient
based inference better than the Laplace's kink at ``loc``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.logistic import uniform_open
from engine.distributions.param_expand import expand_params
from engine.distributions.torch_distribution import TorchDistribution

Param = torch.Tensor | Number


class SoftLaplace(TorchDistribution):
    """Hyperbolic secant distribution with location ``loc`` and scale ``scale``.

    >>> d = SoftLaplace(0.0, 1.0)
    >>> round(float(d.log_prob(torch.tensor(0.0)).exp()), 4)  # 1 / pi
    0.3183
    >>> float(d.cdf(torch.tensor(0.0)))
    0.5
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Param, scale: Param, *, validate_args: bool | None = None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> SoftLaplace:
        return expand_params(self, SoftLaplace, batch_shape, _instance)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        # 1 / cosh(z) = 2 / (e^z + e^-z)
        return math.log(2 / math.pi) - self.scale.log() - torch.logaddexp(z, -z)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.icdf(uniform_open(self._extended_shape(sample_shape), self.loc))

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        z = (value - self.loc) / self.scale
        return torch.atan(torch.exp(z)) * (2 / math.pi)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.loc + self.scale * torch.log(torch.tan(value * (math.pi / 2)))

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.pow(2) * (math.pi**2 / 4)
