"""``Unit``: the distribution of "no value", whose only job is to add ``log_factor`` to a model.

``engine.factor(name, log_factor)`` records a ``Unit`` site, so an arbitrary term enters the joint
log-density through the same machinery as every other site.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.util import broadcast_shape


class Unit(TorchDistribution):
    """A non-normalized distribution over the empty value: ``log_prob`` is ``log_factor``.

    Values have ``numel() == 0`` (event_shape ``(0,)``). ``has_rsample`` says whether gradients of
    ``log_factor`` may be treated as reparameterized (``factor`` passes it through).

    >>> u = Unit(torch.tensor([-1.0, -2.0]))
    >>> u.sample().shape, u.log_prob(u.sample())
    (torch.Size([2, 0]), tensor([-1., -2.]))
    """

    arg_constraints = {"log_factor": constraints.real}
    support = constraints.real

    def __init__(
        self,
        log_factor: torch.Tensor | Number,
        *,
        has_rsample: bool | None = None,
        validate_args: bool | None = None,
    ):
        self.log_factor = torch.as_tensor(log_factor)
        if has_rsample is not None:
            self.has_rsample = has_rsample
        super().__init__(self.log_factor.shape, torch.Size((0,)), validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Unit:
        new = self._get_checked_instance(Unit, _instance)
        batch_shape = torch.Size(batch_shape)
        new.log_factor = self.log_factor.expand(batch_shape)
        if "has_rsample" in self.__dict__:
            new.has_rsample = self.has_rsample
        super(Unit, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.log_factor.new_empty(self.shape(sample_shape))

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.log_factor.new_empty(self.shape(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.log_factor.expand(broadcast_shape(self.batch_shape, value.shape[:-1]))
