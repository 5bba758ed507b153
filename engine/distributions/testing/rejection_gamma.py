"""Gamma, beta and Dirichlet laws drawn by accept-reject, with unbiased reparameterised gradients.

``RejectionStandardGamma`` is Marsaglia and Tsang's sampler written as a :class:`Rejector`: the
proposal is ``d * (1 + c z)**3`` with ``z`` standard normal, ``d = concentration - 1/3`` and
``c = 1 / sqrt(9 d)``, kept when ``log u < z**2 / 2 + d - d v + d log v`` (``v = (1 + c z)**3``).
It needs ``concentration >= 1``. ``ShapeAugmentedGamma`` reaches any concentration by drawing
with ``concentration + boost`` and multiplying by ``u_i ** (1 / (concentration + i))`` for
``boost`` uniforms; ``ShapeAugmentedDirichlet`` and ``ShapeAugmentedBeta`` normalise such gamma
draws. Each exposes ``score_parts`` with the accept-reject score term, so an ELBO built on them
has the same expected gradient as one built on torch's samplers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.rejector import Rejector
from engine.distributions.score_parts import ScoreParts
from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.torch_wrappers import Beta, Dirichlet, Gamma


class _CubedNormal(TorchDistribution):
    """Law of ``d * (1 + c z)**3`` for ``z ~ Normal(0, 1)`` (Marsaglia-Tsang's proposal)."""

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = True

    def __init__(self, d: torch.Tensor, c: torch.Tensor):
        self.d, self.c = d, c
        super().__init__(d.shape, validate_args=False)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        z = torch.randn(shape, dtype=self.d.dtype, device=self.d.device)
        return self.d * (1 + self.c * z).pow(3)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        ratio = value / self.d
        root = ratio.sign() * ratio.abs().pow(1 / 3)  # 1 + c z
        z = (root - 1) / self.c
        # dx/dz = 3 d c (1 + c z)^2
        log_jacobian = math.log(3) + self.d.log() + self.c.log() + 2 * root.abs().log()
        return -0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi) - log_jacobian


class RejectionStandardGamma(Rejector):
    """``Gamma(concentration, 1)`` by Marsaglia-Tsang accept-reject (``concentration >= 1``).

    >>> d = RejectionStandardGamma(torch.tensor(2.5))
    >>> x = torch.tensor(1.7)
    >>> bool(torch.isclose(d.log_prob(x), Gamma(2.5, 1.0).log_prob(x)))
    True
    """

    arg_constraints = {"concentration": constraints.greater_than_eq(1.0)}
    support = constraints.positive

    def __init__(self, concentration: torch.Tensor | Number):
        self.concentration = torch.as_tensor(concentration)
        if not self.concentration.dtype.is_floating_point:
            self.concentration = self.concentration.to(torch.get_default_dtype())
        d = self.concentration - 1 / 3
        c = (9 * d).rsqrt()
        self._d = d
        # The acceptance rate, from log p = log q + log_accept - log_scale (see module doc).
        log_scale = (
            torch.lgamma(self.concentration)
            + d
            - (d - 1 / 6) * d.log()
            - 0.5 * math.log(2 * math.pi)
        )
        super().__init__(_CubedNormal(d, c), self._log_prob_accept, log_scale)

    def _log_prob_accept(self, x: torch.Tensor) -> torch.Tensor:
        d = self._d
        v = x / d
        positive = v > 0
        safe_v = torch.where(positive, v, torch.ones_like(v))
        root = safe_v.pow(1 / 3)
        z = (root - 1) * (9 * d).sqrt()
        log_accept = 0.5 * z.pow(2) + d - d * safe_v + d * safe_v.log()
        return torch.where(positive, log_accept.clamp(max=0.0), torch.full_like(v, -math.inf))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # Exactly the gamma density (the proposal algebra reproduces it up to rounding).
        return Gamma(self.concentration, torch.ones_like(self.concentration)).log_prob(value)


class RejectionGamma(RejectionStandardGamma):
    """``Gamma(concentration, rate)``: a :class:`RejectionStandardGamma` draw divided by ``rate``.

    >>> d = RejectionGamma(torch.tensor(2.0), torch.tensor(4.0))
    >>> x = torch.tensor(0.5)
    >>> bool(torch.isclose(d.log_prob(x), Gamma(2.0, 4.0).log_prob(x)))
    True
    """

    arg_constraints = {
        "concentration": constraints.greater_than_eq(1.0),
        "rate": constraints.positive,
    }

    def __init__(self, concentration: torch.Tensor | Number, rate: torch.Tensor | Number):
        concentration, self.rate = broadcast_all(concentration, rate)
        super().__init__(concentration)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> RejectionGamma:
        shape = torch.Size(batch_shape)
        return RejectionGamma(self.concentration.expand(shape), self.rate.expand(shape))

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return super().rsample(sample_shape) / self.rate

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return Gamma(self.concentration, self.rate).log_prob(value)

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        log_prob = self.log_prob(value)
        score_function = self._log_prob_accept(value * self.rate) - self.log_scale
        return ScoreParts(log_prob, score_function, log_prob)


class _ShapeAugmented(TorchDistribution):
    """What the three shape-augmented laws share: ``rsample`` keeps ``(value, auxiliary draw)``
    in ``_last``; ``log_prob`` is the exact law's (``_exact``); ``score_parts`` of the value just
    drawn takes the accept-reject score term from the auxiliary draw (``_auxiliary_score``)."""

    has_rsample = True
    _last: tuple[torch.Tensor, torch.Tensor] | None = None

    def _exact(self) -> TorchDistribution:
        raise NotImplementedError

    def _auxiliary_score(self, auxiliary: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self._exact().log_prob(value)

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        if self._last is None or self._last[0] is not value:
            raise NotImplementedError(
                f"{type(self).__name__}.score_parts needs the value drawn by its latest rsample()."
            )
        log_prob = self.log_prob(value)
        return ScoreParts(log_prob, self._auxiliary_score(self._last[1]), log_prob)


class ShapeAugmentedGamma(_ShapeAugmented):
    """``Gamma(concentration, rate)`` for any ``concentration > 0``, by shape augmentation.

    A :class:`RejectionGamma` draw with ``concentration + boost`` is multiplied by
    ``prod_i u_i ** (1 / (concentration + i))``, ``i < boost``. ``score_parts`` needs the value
    most recently drawn by ``rsample`` (it carries the accept-reject step's score term).

    >>> d = ShapeAugmentedGamma(torch.tensor(0.5), torch.tensor(1.0))
    >>> x = torch.tensor(0.2)
    >>> bool(torch.isclose(d.log_prob(x), Gamma(0.5, 1.0).log_prob(x)))
    True
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive

    def __init__(
        self,
        concentration: torch.Tensor | Number,
        rate: torch.Tensor | Number,
        boost: int = 1,
        validate_args: bool | None = None,
    ):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        self.boost = int(boost)
        self._boosted = RejectionGamma(self.concentration + self.boost, self.rate)
        super().__init__(self.concentration.shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> ShapeAugmentedGamma:
        shape = torch.Size(batch_shape)
        return ShapeAugmentedGamma(
            self.concentration.expand(shape), self.rate.expand(shape), self.boost
        )

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        boosted = self._boosted.rsample(sample_shape)
        x = boosted
        for i in range(self.boost):
            u = torch.rand(x.shape, dtype=x.dtype, device=x.device)
            x = x * u.pow(1 / (self.concentration + i))
        self._last = (x, boosted)
        return x

    def _exact(self) -> TorchDistribution:
        return Gamma(self.concentration, self.rate)

    def _auxiliary_score(self, auxiliary: torch.Tensor) -> torch.Tensor:
        return self._boosted.score_parts(auxiliary).score_function


class ShapeAugmentedDirichlet(_ShapeAugmented):
    """``Dirichlet(concentration)`` as normalised :class:`ShapeAugmentedGamma` draws.

    >>> d = ShapeAugmentedDirichlet(torch.tensor([0.5, 2.0, 3.0]))
    >>> x = d.rsample()
    >>> x.shape, bool(torch.isclose(x.sum(), torch.tensor(1.0)))
    (torch.Size([3]), True)
    """

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex

    def __init__(
        self,
        concentration: torch.Tensor,
        boost: int = 1,
        validate_args: bool | None = None,
    ):
        self.concentration = torch.as_tensor(concentration)
        self.boost = int(boost)
        self._gamma = ShapeAugmentedGamma(
            self.concentration, torch.ones_like(self.concentration), self.boost
        )
        shape = self.concentration.shape
        super().__init__(shape[:-1], shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> ShapeAugmentedDirichlet:
        shape = torch.Size(batch_shape) + self.event_shape
        return ShapeAugmentedDirichlet(self.concentration.expand(shape), self.boost)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        gammas = self._gamma.rsample(sample_shape)
        x = gammas / gammas.sum(-1, keepdim=True)
        self._last = (x, gammas)
        return x

    def _exact(self) -> TorchDistribution:
        return Dirichlet(self.concentration)

    def _auxiliary_score(self, auxiliary: torch.Tensor) -> torch.Tensor:
        return self._gamma.score_parts(auxiliary).score_function.sum(-1)


class ShapeAugmentedBeta(_ShapeAugmented):
    """``Beta(concentration1, concentration0)`` as the first coordinate of a
    :class:`ShapeAugmentedDirichlet` draw.

    >>> d = ShapeAugmentedBeta(torch.tensor(2.0), torch.tensor(0.5))
    >>> x = torch.tensor(0.3)
    >>> bool(torch.isclose(d.log_prob(x), Beta(2.0, 0.5).log_prob(x)))
    True
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
    }
    support = constraints.unit_interval

    def __init__(
        self,
        concentration1: torch.Tensor | Number,
        concentration0: torch.Tensor | Number,
        boost: int = 1,
        validate_args: bool | None = None,
    ):
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        self.boost = int(boost)
        both = torch.stack([self.concentration1, self.concentration0], dim=-1)
        self._dirichlet = ShapeAugmentedDirichlet(both, self.boost)
        super().__init__(self.concentration1.shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> ShapeAugmentedBeta:
        shape = torch.Size(batch_shape)
        return ShapeAugmentedBeta(
            self.concentration1.expand(shape), self.concentration0.expand(shape), self.boost
        )

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        pair = self._dirichlet.rsample(sample_shape)
        x = pair[..., 0]
        self._last = (x, pair)
        return x

    def _exact(self) -> TorchDistribution:
        return Beta(self.concentration1, self.concentration0)

    def _auxiliary_score(self, auxiliary: torch.Tensor) -> torch.Tensor:
        return self._dirichlet.score_parts(auxiliary).score_function
