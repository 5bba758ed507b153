"""``IndependentHMM``: a batch of independent one-dimensional HMMs seen as one multivariate one.

Many series modelled separately (one HMM per sensor, each with its own parameters) are
naturally a batch of HMMs with ``obs_dim = 1``. Wrapping the batch moves its rightmost batch dim
into the observation dim, so the result scores a ``(duration, num_series)`` matrix:

==========  ======================  =======================
            ``batch_shape``         ``event_shape``
==========  ======================  =======================
base_dist   ``shape + (obs_dim,)``  ``(duration, 1)``
result      ``shape``               ``(duration, obs_dim)``
==========  ======================  =======================

>>> import torch, engine.distributions as dist
>>> series = dist.MultivariateNormal(torch.zeros(3, 1), torch.eye(1))  # three series
>>> mvn = dist.MultivariateNormal(torch.zeros(1), torch.eye(1))
>>> base = dist.GaussianHMM(series, torch.eye(1), mvn, torch.eye(1), mvn, duration=4)
>>> d = dist.IndependentHMM(base)
>>> d.batch_shape, d.event_shape, d.log_prob(torch.zeros(4, 3)).shape
(torch.Size([]), torch.Size([4, 3]), torch.Size([]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import (
    TorchDistribution,
    _as_shape,
    _check_expandable,
)
from engine.errors import ArgumentError, ShapeError, fmt_shape


class IndependentHMM(TorchDistribution):
    """The HMMs of ``base_dist``'s rightmost batch dim as the columns of one sequence (Pyro's
    ``IndependentHMM``); see the module docstring.

    >>> import torch, engine.distributions as dist
    >>> base = dist.DiscreteHMM(torch.zeros(5, 2), torch.zeros(2, 2),
    ...                         dist.Normal(torch.zeros(5, 1, 2, 1), 1.0).to_event(1),
    ...                         duration=3)
    >>> dist.IndependentHMM(base).sample((7,)).shape
    torch.Size([7, 3, 5])
    """

    arg_constraints: dict = {}

    def __init__(self, base_dist: torch.distributions.Distribution, validate_args: Any = None):
        if not isinstance(base_dist, torch.distributions.Distribution):
            raise ArgumentError(
                f"IndependentHMM: base_dist must be an HMM distribution, got "
                f"{type(base_dist).__name__}."
            )
        if (
            not base_dist.batch_shape
            or len(base_dist.event_shape) != 2
            or base_dist.event_shape[-1] != 1
        ):
            raise ShapeError(
                "IndependentHMM: base_dist must be a batch of one-dimensional HMMs: a batch_shape "
                "ending in the number of series and event_shape (duration, 1); got batch_shape "
                f"{fmt_shape(base_dist.batch_shape)} and event_shape "
                f"{fmt_shape(base_dist.event_shape)}."
            )
        self.base_dist = base_dist
        super().__init__(
            base_dist.batch_shape[:-1],
            base_dist.event_shape[:1] + base_dist.batch_shape[-1:],
            validate_args=False,
        )

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return self.base_dist.support

    @property
    def has_rsample(self) -> bool:
        return self.base_dist.has_rsample

    @property
    def duration(self) -> int | None:
        """The base HMMs' number of time steps."""
        return self.base_dist.duration

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> IndependentHMM:
        batch_shape = _as_shape(batch_shape, self, "expand")
        _check_expandable(self, batch_shape)
        return IndependentHMM(self.base_dist.expand(batch_shape + self.base_dist.batch_shape[-1:]))

    @staticmethod
    def _to_base(value: torch.Tensor) -> torch.Tensor:
        return value.transpose(-1, -2).unsqueeze(-1)

    @staticmethod
    def _from_base(value: torch.Tensor) -> torch.Tensor:
        return value.squeeze(-1).transpose(-1, -2)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self._from_base(self.base_dist.sample(sample_shape))

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self._from_base(self.base_dist.rsample(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if value.dim() < 2 or value.size(-1) != self.event_shape[-1]:
            raise ShapeError(
                f"IndependentHMM: a value must have shape (..., duration, "
                f"{self.event_shape[-1]}) (one column per series), got {fmt_shape(value.shape)}."
            )
        return self.base_dist.log_prob(self._to_base(value)).sum(-1)
