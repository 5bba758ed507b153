"""Asymmetric Laplace distributions: a sharp one and a smooth ("soft") one.

``AsymmetricLaplace`` has exponential tails of different rates on each side of ``loc``: rate
``asymmetry / scale`` on the right, ``1 / (asymmetry * scale)`` on the left (quantile regression's
likelihood). It is the law of the difference of two independent exponential draws, which gives a
reparameterised sampler. ``SoftAsymmetricLaplace`` adds normal noise of scale
``scale * softness`` to that difference; its density, a normal convolved with each exponential
tail, has a closed form in terms of the normal CDF and is smooth everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.loc_scale_family import LocScaleFamily, Param


class _TwoTailed(LocScaleFamily):
    """What the sharp and the soft asymmetric Laplace share: the difference of two exponential
    draws of rates set by ``asymmetry``, and its mean."""

    asymmetry: torch.Tensor

    def _exponential_pair(self, sample_shape: Sequence[int]) -> torch.Tensor:
        """``v / asymmetry - u * asymmetry`` for independent standard exponentials ``u``, ``v``."""
        shape = self._extended_shape(sample_shape)
        u, v = torch.empty((2, *shape), dtype=self.loc.dtype, device=self.loc.device).exponential_()
        return v / self.asymmetry - u * self.asymmetry

    @property
    def mean(self) -> torch.Tensor:
        return self.loc + self.scale * (self.asymmetry.reciprocal() - self.asymmetry)


class AsymmetricLaplace(_TwoTailed):
    """Laplace distribution with different tail rates left and right of ``loc``.

    The density is ``exp(-|z| * asymmetry**sign(z)) / (scale * (asymmetry + 1 / asymmetry))`` with
    ``z = (x - loc) / scale``; ``asymmetry = 1`` is the Laplace.

    >>> d = AsymmetricLaplace(0.0, 1.0, 2.0)
    >>> float(d.mean), float(d.variance)  # 1/2 - 2 and 4 + 1/4
    (-1.5, 4.25)
    """

    arg_constraints = {**LocScaleFamily.arg_constraints, "asymmetry": constraints.positive}

    def __init__(
        self,
        loc: Param,
        scale: Param,
        asymmetry: Param,
        *,
        validate_args: bool | None = None,
    ):
        self.loc, self.scale, self.asymmetry = broadcast_all(loc, scale, asymmetry)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        z = self._standardized(value)
        k = self.asymmetry
        exponent = torch.where(z < 0, z / k, -z * k)
        return exponent - self.scale.log() - torch.log(k + k.reciprocal())

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.loc + self.scale * self._exponential_pair(sample_shape)

    @property
    def variance(self) -> torch.Tensor:
        k2 = self.asymmetry.pow(2)
        return self.scale.pow(2) * (k2 + k2.reciprocal())


class SoftAsymmetricLaplace(_TwoTailed):
    """An :class:`AsymmetricLaplace` draw plus ``Normal(0, scale * softness)`` noise.

    As ``softness`` goes to 0 it tends to the sharp :class:`AsymmetricLaplace`.

    >>> d = SoftAsymmetricLaplace(0.0, 1.0, asymmetry=2.0, softness=0.5)
    >>> float(d.mean), float(d.variance)  # 1/2 - 2 and 4 + 1/4 + 0.5**2
    (-1.5, 4.5)
    """

    arg_constraints = {
        **LocScaleFamily.arg_constraints,
        "asymmetry": constraints.positive,
        "softness": constraints.positive,
    }

    def __init__(
        self,
        loc: Param,
        scale: Param,
        asymmetry: Param = 1.0,
        softness: Param = 1.0,
        *,
        validate_args: bool | None = None,
    ):
        self.loc, self.scale, self.asymmetry, self.softness = broadcast_all(
            loc, scale, asymmetry, softness
        )
        super().__init__(self.loc.shape, validate_args=validate_args)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # In units of scale: y = z + w, z ~ Normal(0, s), w = difference of exponentials with
        # rates a (right) and b (left). Integrating the normal against each tail gives
        #   p(y) = ab/(a+b) [exp(-a y + a^2 s^2 / 2) Phi(y/s - a s)
        #                    + exp(b y + b^2 s^2 / 2) Phi(-y/s - b s)].
        y = self._standardized(value)
        s = self.softness
        a = self.asymmetry
        b = a.reciprocal()
        right = -a * y + (a * s).pow(2) / 2 + torch.special.log_ndtr(y / s - a * s)
        left = b * y + (b * s).pow(2) / 2 + torch.special.log_ndtr(-y / s - b * s)
        # ab = 1 since b = 1/a
        return torch.logaddexp(right, left) - torch.log(a + b) - self.scale.log()

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        noise = torch.randn(
            self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device
        )
        w = self._exponential_pair(sample_shape) + self.softness * noise
        return self.loc + self.scale * w

    @property
    def variance(self) -> torch.Tensor:
        k2 = self.asymmetry.pow(2)
        return self.scale.pow(2) * (k2 + k2.reciprocal() + self.softness.pow(2))
