"""``Stable``: Lévy alpha-stable laws, the heavy-tailed limits of sums of random variables.

Parameterised by stability ``alpha`` in (0, 2] (2 is the normal, 1 the Cauchy-like case, lower
is heavier-tailed), skew ``beta`` in [-1, 1], ``scale`` and ``loc``. ``loc`` is read in Nolan's
S0 coordinates by default, in which the law moves continuously with ``alpha``; ``coords="S"``
reads it in the classical (scipy) coordinates instead.

Draws use the Chambers-Mallows-Stuck transform of a uniform angle and an exponential, which is
differentiable in every parameter (a reparameterised sampler). The S0 draw is the sum of two
terms that each diverge as ``alpha -> 1``; within ``_HOLE`` of 1 the draw is interpolated in
``alpha`` between the two edges of that hole with the same uniform and exponential, which keeps
it continuous and accurate to second order in the hole width. ``log_prob`` integrates
numerically (:mod:`engine.distributions.stable_log_prob`): exact to quadrature accuracy, but
costly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.param_expand import expand_params
from engine.distributions.stable_log_prob import stable_standard_log_prob
from engine.distributions.torch_distribution import TorchDistribution
from engine.errors import DistributionArgumentError

Param = torch.Tensor | Number

_HOLE = 0.02


def _cms_s1(alpha: torch.Tensor, beta: torch.Tensor, u: torch.Tensor, w: torch.Tensor):
    """Chambers-Mallows-Stuck: a standard S1 draw (alpha != 1), plus its S0 shift ``zeta``."""
    t = torch.tan(math.pi * alpha / 2)
    zeta = -beta * t
    xi = torch.atan(beta * t) / alpha
    scale = (1 + zeta.pow(2)).pow(1 / (2 * alpha))
    x = (
        scale
        * torch.sin(alpha * (u + xi))
        / torch.cos(u).pow(1 / alpha)
        * (torch.cos(u - alpha * (u + xi)) / w).pow((1 - alpha) / alpha)
    )
    return x, zeta


def _cms_s0(alpha: torch.Tensor, beta: torch.Tensor, u: torch.Tensor, w: torch.Tensor):
    """A standard S0 draw from the uniform angle ``u`` and the exponential ``w``."""
    x, zeta = _cms_s1(alpha, beta, u, w)
    return x + zeta


def _cms_s0_at_one(beta: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    half_pi = math.pi / 2
    core = half_pi + beta * u
    return (core * torch.tan(u) - beta * torch.log(half_pi * w * torch.cos(u) / core)) / half_pi


class Stable(TorchDistribution):
    """Lévy alpha-stable law ``S0(stability, skew, scale, loc)`` (or ``S`` with ``coords="S"``).

    >>> d = Stable(2.0, 0.0, scale=1.0, loc=0.0)  # stability 2: Normal(0, sqrt 2)
    >>> float(d.variance)
    2.0
    >>> x = torch.tensor(0.5, dtype=torch.float64)
    >>> nearly_two = torch.tensor(2.0 - 1e-9, dtype=torch.float64)
    >>> d64 = Stable(nearly_two, torch.tensor(0.0, dtype=torch.float64))
    >>> bool(torch.isclose(d64.log_prob(x), torch.distributions.Normal(0.0, 2**0.5).log_prob(x)))
    True
    """

    arg_constraints = {
        "stability": constraints.interval(0, 2),
        "skew": constraints.interval(-1, 1),
        "scale": constraints.positive,
        "loc": constraints.real,
    }
    support = constraints.real
    has_rsample = True

    def __init__(
        self,
        stability: Param,
        skew: Param,
        scale: Param = 1.0,
        loc: Param = 0.0,
        coords: str = "S0",
        validate_args: bool | None = None,
    ):
        if coords not in ("S0", "S"):
            raise DistributionArgumentError(
                f"Stable: coords must be 'S0' (the default) or 'S', got {coords!r}."
            )
        self.stability, self.skew, self.scale, self.loc = broadcast_all(stability, skew, scale, loc)
        self.coords = coords
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Stable:
        return expand_params(self, type(self), batch_shape, _instance, copy=["coords"])

    def _loc_s0(self) -> torch.Tensor:
        """``loc`` in S0 coordinates."""
        if self.coords == "S0":
            return self.loc
        alpha, beta, sigma = self.stability, self.skew, self.scale
        shift = torch.where(
            alpha == 1,
            2 / math.pi * beta * sigma * sigma.log(),
            beta * sigma * torch.tan(math.pi * alpha / 2),
        )
        return self.loc + shift

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        like = self.loc
        eps = torch.finfo(like.dtype).eps
        half_pi = math.pi / 2
        u = (torch.rand(shape, dtype=like.dtype, device=like.device) - 0.5) * math.pi
        u = u.clamp(-half_pi + eps, half_pi - eps)
        w = torch.empty(shape, dtype=like.dtype, device=like.device).exponential_()
        w = w.clamp(min=torch.finfo(like.dtype).tiny)
        return self.from_angle_and_exponential(u, w)

    def from_angle_and_exponential(self, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The draw that Chambers-Mallows-Stuck makes of a uniform angle ``u`` in
        (-pi/2, pi/2) and an ``Exponential(1)`` ``w`` (``rsample`` draws both; the latent
        Stable reparameterizer makes them sample sites of their own).

        >>> d = Stable(2.0, 0.0)  # stability 2: the draw is 2 sin(u) sqrt(w)
        >>> round(float(d.from_angle_and_exponential(torch.tensor(0.5), torch.tensor(1.0))), 4)
        0.9589
        """
        shape = torch.broadcast_shapes(u.shape, w.shape, self.batch_shape)
        u, w = u.expand(shape), w.expand(shape)
        alpha, beta = self.stability.expand(shape), self.skew.expand(shape)

        in_hole = (alpha - 1).abs() < _HOLE
        safe_alpha = torch.where(in_hole, torch.full_like(alpha, 0.5), alpha)
        outside = _cms_s0(safe_alpha, beta, u, w)
        below = _cms_s0(torch.full_like(alpha, 1 - _HOLE), beta, u, w)
        above = _cms_s0(torch.full_like(alpha, 1 + _HOLE), beta, u, w)
        at_one = _cms_s0_at_one(beta, u, w)
        # Quadratic through (1 - h, below), (1, at_one), (1 + h, above) in alpha.
        s = (alpha - 1) / _HOLE
        inside = at_one + s * (above - below) / 2 + s.pow(2) * ((above + below) / 2 - at_one)
        z = torch.where(in_hole, inside, outside)
        return self._loc_s0() + self.scale * z

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self._loc_s0()) / self.scale
        return stable_standard_log_prob(z, self.stability, self.skew) - self.scale.log()

    @property
    def mean(self) -> torch.Tensor:
        alpha = self.stability
        shift = self.skew * self.scale * torch.tan(math.pi * alpha / 2)
        mean = self._loc_s0() - torch.where(alpha == 2, torch.zeros_like(shift), shift)
        return mean.masked_fill(alpha <= 1, math.nan)

    @property
    def variance(self) -> torch.Tensor:
        var = 2 * self.scale.pow(2)
        return var.masked_fill(self.stability < 2, math.inf)


class StableWithLogProb(Stable):
    """The same law as :class:`Stable`, for models that must keep its ``log_prob``: automatic
    reparameterisation strategies leave it alone.

    >>> StableWithLogProb(1.5, 0.0).batch_shape
    torch.Size([])
    """
