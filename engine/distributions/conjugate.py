"""Compound count distributions with a conjugate prior integrated out analytically.

``BetaBinomial`` is a Binomial whose success probability is Beta-distributed; ``GammaPoisson`` is a
Poisson whose rate is Gamma-distributed (the negative binomial); ``DirichletMultinomial`` is a
Multinomial whose category probabilities are Dirichlet-distributed. They model over-dispersed
counts, and their closed-form mass functions avoid sampling the hidden probabilities or rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.param_expand import expand_params
from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.util import broadcast_shape
from engine.errors import ShapeError, fmt_shape

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
        return expand_params(self, BetaBinomial, batch_shape, _instance)

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
        return expand_params(self, GammaPoisson, batch_shape, _instance)

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


class DirichletMultinomial(TorchDistribution):
    """Counts of ``total_count`` draws over categories whose probabilities are
    Dirichlet(``concentration``): the Multinomial with its probabilities integrated out.

    ``P(x) = n! Gamma(A) / Gamma(n + A) * prod_k Gamma(x_k + a_k) / (x_k! Gamma(a_k))`` with
    ``a = concentration``, ``A = sum_k a_k``, ``n = total_count``. The last dim of
    ``concentration`` indexes the categories (the event dim); ``total_count`` broadcasts with the
    batch dims. ``is_sparse=True`` skips the terms of zero counts (they are 1), which saves work
    when most counts are zero; the values are the same.

    >>> d = DirichletMultinomial(torch.ones(2), total_count=3)  # uniform over (k, 3 - k)
    >>> d.log_prob(torch.tensor([[0.0, 3.0], [1.0, 2.0], [2.0, 1.0]])).exp()
    tensor([0.2500, 0.2500, 0.2500])
    """

    arg_constraints = {
        "concentration": constraints.independent(constraints.positive, 1),
        "total_count": constraints.nonnegative_integer,
    }

    def __init__(
        self,
        concentration: torch.Tensor,
        total_count: Param = 1,
        is_sparse: bool = False,
        validate_args: bool | None = None,
    ):
        concentration = torch.as_tensor(concentration)
        if concentration.dim() < 1:
            raise ShapeError(
                "DirichletMultinomial(concentration, ...): concentration needs a last dim that "
                f"indexes the categories, got shape {fmt_shape(concentration.shape)}."
            )
        batch_shape = concentration.shape[:-1]
        total_count = torch.as_tensor(
            total_count, dtype=concentration.dtype, device=concentration.device
        )
        batch_shape = broadcast_shape(batch_shape, total_count.shape)
        self.concentration = concentration.expand(batch_shape + concentration.shape[-1:])
        self.total_count = total_count.expand(batch_shape)
        self.is_sparse = is_sparse
        super().__init__(batch_shape, concentration.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> DirichletMultinomial:
        return expand_params(
            self,
            DirichletMultinomial,
            batch_shape,
            _instance,
            event_dims={"concentration": 1},
            copy=["is_sparse"],
        )

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> constraints.Constraint:
        return constraints.multinomial(self.total_count)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        a, n = self.concentration, self.total_count
        per_category = torch.lgamma(value + a) - torch.lgamma(value + 1) - torch.lgamma(a)
        if self.is_sparse:
            per_category = per_category.masked_fill(value == 0, 0.0)
        a_sum = a.sum(-1)
        normalizer = torch.lgamma(n + 1) + torch.lgamma(a_sum) - torch.lgamma(n + a_sum)
        return normalizer + per_category.sum(-1)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            probs = torch.distributions.Dirichlet(self.concentration, validate_args=False).sample(
                sample_shape
            )
            return _multinomial_counts(self.total_count.expand(probs.shape[:-1]), probs)

    @property
    def mean(self) -> torch.Tensor:
        a = self.concentration
        return self.total_count.unsqueeze(-1) * a / a.sum(-1, keepdim=True)

    @property
    def variance(self) -> torch.Tensor:
        a, n = self.concentration, self.total_count.unsqueeze(-1)
        a_sum = a.sum(-1, keepdim=True)
        p = a / a_sum
        return n * p * (1 - p) * (n + a_sum) / (1 + a_sum)


def _multinomial_counts(total_count: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Multinomial counts with a ``total_count`` per row (torch's Multinomial takes one int).

    Category by category: the count of category k is Binomial(what is left, its share of the
    probability that is left).
    """
    left = total_count.clone()
    mass_left = torch.ones_like(left)
    counts = []
    for k in range(probs.shape[-1] - 1):
        p_k = probs[..., k]
        share = (p_k / mass_left.clamp(min=torch.finfo(probs.dtype).tiny)).clamp(0.0, 1.0)
        count = torch.binomial(left, share)
        counts.append(count)
        left = left - count
        mass_left = mass_left - p_k
    counts.append(left)
    return torch.stack(counts, dim=-1)
