"""Compound count distributions with a conjugate prior integrated out analytically.

``BetaBinomial`` is a Binomial whose success probability is Beta-distributed; ``GammaPoisson`` is a
Poisson whose rate is Gamma-distributed (the negative binomial). Both model over-dispersed counts,
and their closed-form mass functions avoid sampling the hidden probability or rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.torch_distribution import TorchDistribution

Param = torch.Tensor | Number


def _log_beta(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


class BetaBinomial(TorchDistribution):
    """Successes in ``total_count`` trials whose success probability is
    Beta(``concentration1``, ``concentration0``).

    ``P(k) = C(n, k) B(k + a, n - k + b) / B(a, b)`` with ``a = concentration1``,
    ``b = concentration0``, ``n = total_count``.

    >>> d = BetaBinomial(1.0, 1.0, total_count=3)  # uniform on {0, 1, 2, 3}
    >>> d.log_prob(d.enumerate_support()).exp()
    tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "total_count": constraints.nonnegative_integer,
    }
    has_enumerate_support = True

    def __init__(
        self,
        concentration1: Param,
        concentration0: Param,
        total_count: Param = 1,
        validate_args: bool | None = None,
    ):
        self.concentration1, self.concentration0, self.total_count = broadcast_all(
            concentration1, concentration0, total_count
        )
        super().__init__(self.concentration1.shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> BetaBinomial:
        new = self._get_checked_instance(BetaBinomial, _instance)
        batch_shape = torch.Size(batch_shape)
        new.concentration1 = self.concentration1.expand(batch_shape)
        new.concentration0 = self.concentration0.expand(batch_shape)
        new.total_count = self.total_count.expand(batch_shape)
        super(BetaBinomial, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.total_count)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        a, b, n = self.concentration1, self.concentration0, self.total_count
        log_choose = torch.lgamma(n + 1) - torch.lgamma(value + 1) - torch.lgamma(n - value + 1)
        return log_choose + _log_beta(value + a, n - value + b) - _log_beta(a, b)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            beta = torch.distributions.Beta(
                self.concentration1, self.concentration0, validate_args=False
            )
            probs = beta.sample(sample_shape)
            return torch.binomial(self.total_count.expand(probs.shape), probs)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        n = int(self.total_count.max())
        if not bool((self.total_count == n).all()):
            raise NotImplementedError(
                "BetaBinomial.enumerate_support needs the same total_count everywhere in the "
                "batch; enumerate each total_count separately."
            )
        values = torch.arange(
            n + 1, dtype=self.concentration1.dtype, device=self.total_count.device
        )
        values = values.view((-1,) + (1,) * len(self.batch_shape))
        return values.expand((-1, *self.batch_shape)) if expand else values

    @property
    def mean(self) -> torch.Tensor:
        a, b = self.concentration1, self.concentration0
        return self.total_count * a / (a + b)

    @property
    def variance(self) -> torch.Tensor:
        a, b, n = self.concentration1, self.concentration0, self.total_count
        ab = a + b
        return n * a * b * (ab + n) / (ab.pow(2) * (ab + 1))


class GammaPoisson(TorchDistribution):
    """A Poisson count whose rate is Gamma(``concentration``, ``rate``): a negative binomial with
    ``total_count = concentration`` and success probability ``1 / (1 + rate)``.

    >>> d = GammaPoisson(2.0, 0.5)
    >>> d.mean, d.variance
    (tensor(4.), tensor(12.))
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, concentration: Param, rate: Param, validate_args: bool | None = None):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        super().__init__(self.concentration.shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> GammaPoisson:
        new = self._get_checked_instance(GammaPoisson, _instance)
        batch_shape = torch.Size(batch_shape)
        new.concentration = self.concentration.expand(batch_shape)
        new.rate = self.rate.expand(batch_shape)
        super(GammaPoisson, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        c, r = self.concentration, self.rate
        return (
            c * r.log()
            - (c + value) * r.log1p()
            + torch.lgamma(c + value)
            - torch.lgamma(c)
            - torch.lgamma(value + 1)
        )

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            gamma = torch.distributions.Gamma(self.concentration, self.rate, validate_args=False)
            return torch.poisson(gamma.sample(sample_shape))

    @property
    def mean(self) -> torch.Tensor:
        return self.concentration / self.rate

    @property
    def variance(self) -> torch.Tensor:
        return self.concentration / self.rate.pow(2) * (1 + self.rate)
