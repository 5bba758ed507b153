"""Elementwise activation bijections for flows: ``ELUTransform`` and ``LeakyReLUTransform``,
with their lower-case helpers ``elu()`` and ``leaky_relu()``.

Both are increasing maps of the real line with a closed-form inverse, so stacking them between
linear flows (``Householder``, ``MatrixExponential``) adds a nonlinearity without losing
invertibility.

>>> t = elu()
>>> x = torch.tensor([-1.0, 0.5])
>>> torch.allclose(t.inv(t(x)), x)
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from engine.distributions.torch_transform import ParameterFree


class ELUTransform(ParameterFree, Transform):
    """``y = x`` for ``x > 0`` and ``y = exp(x) - 1`` otherwise, a bijection of the reals onto
    ``(-1, inf)``.

    >>> ELUTransform()(torch.tensor([0.0, 2.0]))
    tensor([0., 2.])
    """

    domain = constraints.real
    codomain = constraints.greater_than(-1.0)
    bijective = True
    sign = +1

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        # log1p keeps precision for y just above -1, where exp(x) - 1 lost it on the way in.
        return torch.where(y > 0, y, torch.log1p(y.clamp(max=0)))

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # dy/dx is 1 on the positive side and exp(x) on the other: log-derivative min(x, 0).
        return -F.relu(-x)


class LeakyReLUTransform(ParameterFree, Transform):
    """``y = x`` for ``x >= 0`` and ``y = 0.01 x`` otherwise, a bijection of the reals.

    >>> LeakyReLUTransform()(torch.tensor([-2.0, 3.0]))
    tensor([-0.0200,  3.0000])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1
    negative_slope = 0.01

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(y, 1.0 / self.negative_slope)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        slope = torch.full_like(x, self.negative_slope)
        return torch.where(x >= 0, torch.zeros_like(x), slope.log())


def elu() -> ELUTransform:
    """An ``ELUTransform`` (Pyro's helper spelling).

    >>> isinstance(elu(), ELUTransform)
    True
    """
    return ELUTransform()


def leaky_relu() -> LeakyReLUTransform:
    """A ``LeakyReLUTransform`` (Pyro's helper spelling).

    >>> leaky_relu().inv(torch.tensor(-0.5))
    tensor(-50.)
    """
    return LeakyReLUTransform()
