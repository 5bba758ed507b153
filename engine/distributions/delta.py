"""``Delta``: a point mass, the distribution of a value that is known exactly.

The engine uses it for ``deterministic`` sites and for MAP guides (``AutoDelta``); users use it to
pin a latent. ``log_density`` lets a point mass carry a weight, e.g. a Jacobian term.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.util import sum_rightmost
from engine.errors import ShapeError, fmt_shape


class Delta(TorchDistribution):
    """Point mass at ``v``; its rightmost ``event_dim`` dims form one event.

    ``log_prob(x)`` is ``log_density`` where ``x == v`` and ``-inf`` elsewhere; draws return ``v``
    (differentiably).

    >>> d = Delta(torch.tensor([1.0, 2.0]), event_dim=1)
    >>> d.batch_shape, d.event_shape, d.log_prob(torch.tensor([1.0, 2.0]))
    (torch.Size([]), torch.Size([2]), tensor(0.))
    """

    arg_constraints = {"v": constraints.dependent, "log_density": constraints.real}
    has_rsample = True

    def __init__(
        self,
        v: torch.Tensor | Number,
        log_density: torch.Tensor | Number = 0.0,
        event_dim: int = 0,
        validate_args: bool | None = None,
    ):
        v = torch.as_tensor(v)
        if not 0 <= event_dim <= v.dim():
            raise ShapeError(
                f"Delta(v, event_dim={event_dim}): v has shape {fmt_shape(v.shape)}, so "
                f"event_dim must be between 0 and {v.dim()}."
            )
        batch_dim = v.dim() - event_dim
        batch_shape, event_shape = v.shape[:batch_dim], v.shape[batch_dim:]
        if isinstance(log_density, Number):
            # An integer point mass (a category) still has a real-valued density.
            dtype = v.dtype if v.is_floating_point() else torch.get_default_dtype()
            log_density = torch.full(batch_shape, float(log_density), dtype=dtype, device=v.device)
        elif log_density.shape != batch_shape:
            try:
                log_density = log_density.expand(batch_shape)
            except RuntimeError:
                raise ShapeError(
                    f"Delta: log_density has shape {fmt_shape(log_density.shape)}, which does not "
                    f"broadcast to the batch shape {fmt_shape(batch_shape)} of v."
                ) from None
        self.v = v
        self.log_density = log_density
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Delta:
        new = self._get_checked_instance(Delta, _instance)
        batch_shape = torch.Size(batch_shape)
        new.v = self.v.expand(batch_shape + self.event_shape)
        new.log_density = self.log_density.expand(batch_shape)
        super(Delta, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, self.event_dim)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.v.expand(torch.Size(sample_shape) + self.v.shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        hit = (value == self.v).to(self.log_density.dtype)
        return sum_rightmost(hit.log(), self.event_dim) + self.log_density

    @property
    def mean(self) -> torch.Tensor:
        return self.v

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.v)
