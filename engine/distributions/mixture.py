"""``MaskedMixture``: per batch entry, one of two distributions, chosen by a boolean mask.

The mask is typically itself a random variable (a change point, a cluster flag) that the model
enumerates out; the mixture then scores each entry under the component the mask selects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.util import broadcast_shape
from engine.errors import DistributionArgumentError, ShapeError, fmt_shape


class MaskedConstraint(constraints.Constraint):
    """``constraint1`` where ``mask`` is True and ``constraint0`` elsewhere.

    >>> c = MaskedConstraint(torch.tensor([False, True]), constraints.positive, constraints.real)
    >>> c.check(torch.tensor([-1.0, -1.0]))
    tensor([False,  True])
    """

    def __init__(
        self,
        mask: torch.Tensor,
        constraint0: constraints.Constraint,
        constraint1: constraints.Constraint,
    ):
        self.mask = mask
        self.constraint0 = constraint0
        self.constraint1 = constraint1
        self.is_discrete = constraint0.is_discrete and constraint1.is_discrete
        self.event_dim = constraint0.event_dim
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, self.constraint1.check(value), self.constraint0.check(value))


class MaskedMixture(TorchDistribution):
    """``component1`` where ``mask`` is True, ``component0`` where it is False.

    Shapes broadcast: the batch shape is that of ``mask`` and both components together; both
    components must share an event shape.

    >>> import engine.distributions as dist
    >>> d = MaskedMixture(torch.tensor([False, True]), dist.Normal(0.0, 1.0), dist.Normal(5.0, 1.0))
    >>> d.mean
    tensor([0., 5.])
    """

    arg_constraints: dict = {}

    def __init__(
        self,
        mask: torch.Tensor,
        component0: torch.distributions.Distribution,
        component1: torch.distributions.Distribution,
        validate_args: bool | None = None,
    ):
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            got = f"dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise DistributionArgumentError(
                f"MaskedMixture: mask must be a torch.bool tensor, got {got}. Fix: convert it, "
                "e.g. mask.bool()."
            )
        if component0.event_shape != component1.event_shape:
            raise ShapeError(
                f"MaskedMixture: the components' event shapes differ: "
                f"{fmt_shape(component0.event_shape)} vs {fmt_shape(component1.event_shape)}."
            )
        batch_shape = broadcast_shape(mask.shape, component0.batch_shape, component1.batch_shape)
        self.mask = mask.expand(batch_shape)
        self.component0 = _expanded(component0, batch_shape)
        self.component1 = _expanded(component1, batch_shape)
        super().__init__(batch_shape, component0.event_shape, validate_args)
        # Each component sees values drawn from the other one, outside its own support perhaps;
        # the mixture checks values against the masked support instead.
        self.component0._validate_args = False
        self.component1._validate_args = False

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> MaskedMixture:
        batch_shape = torch.Size(batch_shape)
        return MaskedMixture(
            self.mask.expand(batch_shape),
            self.component0.expand(batch_shape),
            self.component1.expand(batch_shape),
            validate_args=self._validate_args,
        )

    @property
    def has_rsample(self) -> bool:
        return self.component0.has_rsample and self.component1.has_rsample

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        if self.component0.support is self.component1.support:
            return self.component0.support
        return MaskedConstraint(self.mask, self.component0.support, self.component1.support)

    def _event_mask(self) -> torch.Tensor:
        return self.mask.reshape(self.mask.shape + (1,) * self.event_dim)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        draw0 = self.component0.sample(sample_shape)
        draw1 = self.component1.sample(sample_shape)
        return torch.where(self._event_mask(), draw1, draw0)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        draw0 = self.component0.rsample(sample_shape)
        draw1 = self.component1.rsample(sample_shape)
        return torch.where(self._event_mask(), draw1, draw0)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.where(
            self.mask, self.component1.log_prob(value), self.component0.log_prob(value)
        )

    @property
    def mean(self) -> torch.Tensor:
        return torch.where(self._event_mask(), self.component1.mean, self.component0.mean)

    @property
    def variance(self) -> torch.Tensor:
        return torch.where(self._event_mask(), self.component1.variance, self.component0.variance)


def _expanded(
    d: torch.distributions.Distribution, batch_shape: torch.Size
) -> torch.distributions.Distribution:
    # Always a new object (expand copies even at the same shape): the mixture switches off the
    # component's own validation and must not do that to the caller's distribution.
    return d.expand(batch_shape)
