"""Binomial and beta-binomial counts extended to every integer value and ``total_count``.

Epidemic and population models compute a ``total_count`` that can go negative, or observe a
count above it, in states the model should merely rule out. These variants accept any integer
there and give probability zero (``log_prob = -inf``) outside ``0 <= value <= total_count``
instead of refusing the value; inside that range they are the ordinary distributions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions import constraints as engine_constraints
from engine.distributions.conjugate import BetaBinomial
from engine.distributions.torch_wrappers import Binomial


def _in_range(value: torch.Tensor, total_count: torch.Tensor) -> torch.Tensor:
    return (value >= 0) & (value <= total_count)


class ExtendedBinomial(Binomial):
    """:class:`Binomial` whose ``log_prob`` is ``-inf`` (not an error) outside ``[0, total_count]``.

    >>> d = ExtendedBinomial(torch.tensor([4.0, -1.0]), probs=0.5)
    >>> d.log_prob(torch.tensor([5.0, 0.0]))
    tensor([-inf, -inf])
    >>> round(float(d.log_prob(torch.tensor([2.0, 0.0]))[0].exp()), 4)  # C(4, 2) / 16
    0.375
    """

    arg_constraints = {
        "total_count": engine_constraints.integer,
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    support = engine_constraints.integer

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        n = self.total_count
        inside = _in_range(value, n)
        safe_n = n.clamp(min=0)
        safe_value = torch.minimum(value.clamp(min=0), safe_n)
        base = torch.distributions.Binomial(safe_n, logits=self.logits, validate_args=False)
        return base.log_prob(safe_value).masked_fill(~inside, -float("inf"))

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            base = torch.distributions.Binomial(
                self.total_count.clamp(min=0), probs=self.probs, validate_args=False
            )
            return base.sample(sample_shape)


class ExtendedBetaBinomial(BetaBinomial):
    """:class:`BetaBinomial` whose ``log_prob`` is ``-inf`` outside ``[0, total_count]``.

    >>> d = ExtendedBetaBinomial(1.0, 1.0, total_count=torch.tensor([3.0, -2.0]))
    >>> d.log_prob(torch.tensor([1.0, 0.0])).exp()  # uniform on {0..3}; nothing possible
    tensor([0.2500, 0.0000])
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "total_count": engine_constraints.integer,
    }
    support = engine_constraints.integer

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> ExtendedBetaBinomial:
        new = self._get_checked_instance(ExtendedBetaBinomial, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        n = self.total_count
        inside = _in_range(value, n)
        safe_n = n.clamp(min=0)
        safe_value = torch.minimum(value.clamp(min=0), safe_n)
        base = BetaBinomial(self.concentration1, self.concentration0, safe_n, validate_args=False)
        return base.log_prob(safe_value).masked_fill(~inside, -float("inf"))

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        base = BetaBinomial(
            self.concentration1,
            self.concentration0,
            self.total_count.clamp(min=0),
            validate_args=False,
        )
        return base.sample(sample_shape)
