"""Gamma-Gaussian factors: Gaussian factors whose precision is scaled by a shared Gamma variable.

In a model where one positive ``s`` scales every precision (``x ~ N(m, cov / s)``), each
Gaussian density is, as a function of ``(x, s)``,

    log f(x, s) = const + alpha log s + s q(x),

with ``q`` a quadratic in information form (a :class:`~engine.distributions.gaussian_factor.
GaussianFactor` whose constant plays the part of minus a Gamma rate). Products add the parts;
integrating a block of ``k`` variables out of ``exp(s q)`` gives ``(2 pi / s)^(k/2)`` times
the Schur complement, so ``alpha`` drops by ``k/2``; integrating ``s`` out at the end is a
Gamma integral. ``GammaGaussianHMM`` (a Student-t-like state space model) is built on these.
A private helper of the engine's distributions.

>>> import torch, engine.distributions as dist
>>> f = from_gamma_and_mvn(dist.Gamma(2.0, 2.0),
...                        dist.MultivariateNormal(torch.zeros(1), torch.eye(1)))
>>> abs(float(f.integrate())) < 1e-6  # a normalized joint density of (x, s)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engine.distributions.gaussian_factor import (
    LOG_2PI,
    GaussianFactor,
    cat_time,
    eliminate,
    fit_time,
    linear_parts,
    mvn_parts,
)
from engine.distributions.util import broadcast_shape


class GammaGaussianFactor:
    """``log f(x, s) = const + alpha log s + s quad(x)``; see the module docstring.

    >>> q = GaussianFactor(torch.tensor(-1.0), torch.zeros(1), torch.eye(1))
    >>> f = GammaGaussianFactor(torch.tensor(0.0), torch.tensor(0.5), q)
    >>> f.dim, f.batch_shape
    (1, torch.Size([]))
    """

    __slots__ = ("alpha", "const", "quad")

    def __init__(self, const: torch.Tensor, alpha: torch.Tensor, quad: GaussianFactor):
        self.const = const
        self.alpha = alpha
        self.quad = quad

    @property
    def dim(self) -> int:
        """The number of Gaussian variables (``s`` aside)."""
        return self.quad.dim

    @property
    def batch_shape(self) -> torch.Size:
        return broadcast_shape(self.const.shape, self.alpha.shape, self.quad.batch_shape)

    def __add__(self, other: GammaGaussianFactor | torch.Tensor) -> GammaGaussianFactor:
        if isinstance(other, GammaGaussianFactor):
            return GammaGaussianFactor(
                self.const + other.const, self.alpha + other.alpha, self.quad + other.quad
            )
        return GammaGaussianFactor(self.const + other, self.alpha, self.quad)

    def expand(self, batch_shape: Sequence[int]) -> GammaGaussianFactor:
        batch_shape = torch.Size(batch_shape)
        return GammaGaussianFactor(
            self.const.expand(batch_shape),
            self.alpha.expand(batch_shape),
            self.quad.expand(batch_shape),
        )

    def pad(self, left: int = 0, right: int = 0) -> GammaGaussianFactor:
        return GammaGaussianFactor(self.const, self.alpha, self.quad.pad(left, right))

    def condition(self, value: torch.Tensor, left: bool = False) -> GammaGaussianFactor:
        """Fix the rightmost (or leftmost) ``value.size(-1)`` variables at ``value``."""
        return GammaGaussianFactor(self.const, self.alpha, self.quad.condition(value, left))

    def marginalize(self, start: int, stop: int) -> GammaGaussianFactor:
        """Integrate the variables ``start:stop`` out (``s`` stays)."""
        e = eliminate(self.quad.info, self.quad.precision, start, stop)
        quad = GaussianFactor(self.quad.const + e.quad_gain, e.info, e.precision)
        const = self.const + 0.5 * e.size * LOG_2PI - e.half_logdet
        return GammaGaussianFactor(const, self.alpha - 0.5 * e.size, quad)

    def scale_posterior(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Integrate every Gaussian variable out: ``(log_const, concentration, rate)`` with
        ``f = exp(log_const) s^(concentration - 1) exp(-rate s)``."""
        rest = self.marginalize(0, self.dim) if self.dim else self
        return rest.const, rest.alpha + 1, -rest.quad.const

    def integrate(self) -> torch.Tensor:
        """``log`` of the integral of ``f`` over every variable and ``s``."""
        const, concentration, rate = self.scale_posterior()
        return const + torch.lgamma(concentration) - concentration * rate.log()

    def with_time(self, num_steps: int) -> GammaGaussianFactor:
        rank = max(len(self.batch_shape), 1)
        quad = self.quad.with_time(num_steps)
        return GammaGaussianFactor(
            fit_time(self.const, 0, rank, num_steps),
            fit_time(self.alpha, 0, rank, num_steps),
            GaussianFactor(
                fit_time(quad.const, 0, rank, num_steps),
                fit_time(quad.info, 1, rank, num_steps),
                fit_time(quad.precision, 2, rank, num_steps),
            ),
        )

    def take(self, index: Any) -> GammaGaussianFactor:
        return GammaGaussianFactor(
            self.const[..., index], self.alpha[..., index], self.quad.take(index)
        )

    @staticmethod
    def join(first: GammaGaussianFactor, second: GammaGaussianFactor) -> GammaGaussianFactor:
        return GammaGaussianFactor(
            cat_time(first.const, second.const, 0),
            cat_time(first.alpha, second.alpha, 0),
            GaussianFactor.join(first.quad, second.quad),
        )


def from_gamma_and_mvn(
    scale_dist: torch.distributions.Gamma,
    d: torch.distributions.Distribution,
    role: str = "the distribution",
) -> GammaGaussianFactor:
    """The joint density of ``s ~ scale_dist`` and ``x ~ N(loc, cov / s)`` for ``d = N(loc,
    cov)``, as a factor."""
    p = mvn_parts(d, role)
    c, r = scale_dist.concentration, scale_dist.rate
    n = p.info.size(-1)
    const = p.log_norm + c * r.log() - torch.lgamma(c)
    alpha = c - 1 + 0.5 * n
    quad = GaussianFactor(p.quad_const - r, p.info, p.precision)
    return GammaGaussianFactor(const, alpha, quad)


def from_linear_scaled(
    matrix: torch.Tensor, noise: torch.distributions.Distribution, role: str = "the noise"
) -> GammaGaussianFactor:
    """The factor over ``(x, y)`` (and ``s``) of ``y = x @ matrix + noise`` with the noise's
    covariance divided by ``s``."""
    p = linear_parts(matrix, noise, role)
    m = noise.event_shape[0]
    alpha = torch.full_like(p.log_norm, 0.5 * m)
    return GammaGaussianFactor(p.log_norm, alpha, GaussianFactor(p.quad_const, p.info, p.precision))
