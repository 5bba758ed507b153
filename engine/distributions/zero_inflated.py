"""Zero-inflated count distributions: with probability ``gate`` an extra, "structural" zero.

Count data often hold more zeros than a Poisson or negative binomial allows (a species absent
from a site, a customer who never buys); the zero-inflated versions model the excess explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.utils import lazy_property, logits_to_probs, probs_to_logits

from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.torch_wrappers import NegativeBinomial, Poisson
from engine.distributions.util import broadcast_shape
from engine.errors import DistributionArgumentError, ShapeError, fmt_shape

Param = torch.Tensor | Number


class ZeroInflatedDistribution(TorchDistribution):
    """A zero with probability ``gate``, otherwise a draw from ``base_dist``.

    Give exactly one of ``gate`` (a probability) or ``gate_logits`` (its logit).

    >>> import engine.distributions as dist
    >>> d = ZeroInflatedDistribution(dist.Poisson(2.0), gate=0.5)
    >>> round(float(d.log_prob(torch.tensor(0.0)).exp()), 4)  # 0.5 + 0.5 * exp(-2)
    0.5677
    """

    arg_constraints = {"gate": constraints.unit_interval, "gate_logits": constraints.real}

    def __init__(
        self,
        base_dist: torch.distributions.Distribution,
        *,
        gate: Param | None = None,
        gate_logits: Param | None = None,
        validate_args: bool | None = None,
    ):
        if (gate is None) == (gate_logits is None):
            raise DistributionArgumentError(
                f"{type(self).__name__}: pass exactly one of gate= (a probability) or "
                "gate_logits= (its logit)."
            )
        if base_dist.event_shape:
            raise ShapeError(
                f"{type(self).__name__}: the base distribution must be univariate, but its "
                f"event_shape is {fmt_shape(base_dist.event_shape)}."
            )
        given = torch.as_tensor(gate if gate is not None else gate_logits)
        batch_shape = broadcast_shape(given.shape, base_dist.batch_shape)
        if gate is not None:
            self.gate = given.expand(batch_shape)
        else:
            self.gate_logits = given.expand(batch_shape)
        self.base_dist = base_dist.expand(batch_shape)
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> ZeroInflatedDistribution:
        new = self._get_checked_instance(ZeroInflatedDistribution, _instance)
        batch_shape = torch.Size(batch_shape)
        if "gate" in self.__dict__:
            new.gate = self.gate.expand(batch_shape)
        else:
            new.gate_logits = self.gate_logits.expand(batch_shape)
        new.base_dist = self.base_dist.expand(batch_shape)
        super(ZeroInflatedDistribution, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def gate(self) -> torch.Tensor:
        return logits_to_probs(self.gate_logits, is_binary=True)

    @lazy_property
    def gate_logits(self) -> torch.Tensor:
        return probs_to_logits(self.gate, is_binary=True)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return self.base_dist.support

    def _log_gates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log gate, log(1 - gate))``, computed stably from whichever form was given."""
        if "gate" in self.__dict__:
            return self.gate.log(), (-self.gate).log1p()
        return -F.softplus(-self.gate_logits), -F.softplus(self.gate_logits)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_gate, log_not_gate = self._log_gates()
        from_base = log_not_gate + self.base_dist.log_prob(value)
        at_zero = torch.logaddexp(log_gate, from_base)
        return torch.where(value == 0, at_zero, from_base)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        shape = self.shape(sample_shape)
        with torch.no_grad():
            structural_zero = torch.bernoulli(self.gate.expand(shape)).bool()
            draws = self.base_dist.sample(sample_shape)
            return draws.masked_fill(structural_zero, 0)

    @property
    def mean(self) -> torch.Tensor:
        return (1 - self.gate) * self.base_dist.mean

    @property
    def variance(self) -> torch.Tensor:
        base_mean = self.base_dist.mean
        second_moment = self.base_dist.variance + base_mean**2
        return (1 - self.gate) * second_moment - self.mean**2


class ZeroInflatedPoisson(ZeroInflatedDistribution):
    """A Poisson(``rate``) count, replaced by a zero with probability ``gate``.

    >>> d = ZeroInflatedPoisson(torch.tensor([1.0, 3.0]), gate=0.2)
    >>> d.mean
    tensor([0.8000, 2.4000])
    """

    arg_constraints = {
        "rate": constraints.nonnegative,
        "gate": constraints.unit_interval,
        "gate_logits": constraints.real,
    }
    support = constraints.nonnegative_integer

    def __init__(
        self,
        rate: Param,
        *,
        gate: Param | None = None,
        gate_logits: Param | None = None,
        validate_args: bool | None = None,
    ):
        # The base is checked here, under this class's name, rather than as a bare Poisson.
        base_dist = Poisson(rate, validate_args=False)
        super().__init__(base_dist, gate=gate, gate_logits=gate_logits, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> ZeroInflatedPoisson:
        new = self._get_checked_instance(ZeroInflatedPoisson, _instance)
        return super().expand(batch_shape, _instance=new)

    @property
    def rate(self) -> torch.Tensor:
        return self.base_dist.rate


class ZeroInflatedNegativeBinomial(ZeroInflatedDistribution):
    """A NegativeBinomial(``total_count``, ``probs``/``logits``) count, replaced by a zero with
    probability ``gate``. Give one of ``probs``/``logits`` and one of ``gate``/``gate_logits``.

    >>> d = ZeroInflatedNegativeBinomial(2.0, probs=0.5, gate=0.5)
    >>> d.mean
    tensor(1.)
    """

    support = constraints.nonnegative_integer

    def __init__(
        self,
        total_count: Param,
        *,
        probs: Param | None = None,
        logits: Param | None = None,
        gate: Param | None = None,
        gate_logits: Param | None = None,
        validate_args: bool | None = None,
    ):
        if (probs is None) == (logits is None):
            raise DistributionArgumentError(
                "ZeroInflatedNegativeBinomial: pass exactly one of probs= or logits=."
            )
        base_dist = NegativeBinomial(total_count, probs=probs, logits=logits, validate_args=False)
        super().__init__(base_dist, gate=gate, gate_logits=gate_logits, validate_args=validate_args)

    def expand(
        self, batch_shape: Sequence[int], _instance: Any = None
    ) -> ZeroInflatedNegativeBinomial:
        new = self._get_checked_instance(ZeroInflatedNegativeBinomial, _instance)
        return super().expand(batch_shape, _instance=new)

    @property
    def arg_constraints(self) -> dict[str, constraints.Constraint]:
        # Only the parameters that were given: checking the other form would compute it.
        checked = {"total_count": constraints.greater_than_eq(0)}
        for name in ("probs", "logits"):
            if name in self.base_dist.__dict__:
                checked[name] = NegativeBinomial.arg_constraints[name]
        for name in ("gate", "gate_logits"):
            if name in self.__dict__:
                checked[name] = ZeroInflatedDistribution.arg_constraints[name]
        return checked

    @property
    def total_count(self) -> torch.Tensor:
        return self.base_dist.total_count

    @property
    def probs(self) -> torch.Tensor:
        return self.base_dist.probs

    @property
    def logits(self) -> torch.Tensor:
        return self.base_dist.logits
