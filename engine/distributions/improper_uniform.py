"""``ImproperUniform``: a flat "prior" over a whole support, with no normalized density.

Useful for a latent whose prior is uninformative and whose value always comes from elsewhere
(a guide, ``obs``, conditioning, or an MCMC initial value): its log-density is 0 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.util import broadcast_shape


class ImproperUniform(TorchDistribution):
    """Flat density 0 on ``support``, with the given batch and event shapes; cannot be sampled.

    >>> d = ImproperUniform(constraints.positive, (3,), ())
    >>> d.log_prob(torch.ones(3))
    tensor([0., 0., 0.])
    """

    arg_constraints: dict = {}

    def __init__(
        self,
        support: constraints.Constraint,
        batch_shape: Sequence[int],
        event_shape: Sequence[int],
    ):
        self._support = support
        super().__init__(batch_shape, event_shape)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return self._support

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> ImproperUniform:
        new = self._get_checked_instance(ImproperUniform, _instance)
        new._support = self._support
        super(ImproperUniform, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        batch_shape = broadcast_shape(value.shape[: value.dim() - self.event_dim], self.batch_shape)
        dtype = value.dtype if value.is_floating_point() else torch.get_default_dtype()
        return torch.zeros((), dtype=dtype, device=value.device).expand(batch_shape)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        raise NotImplementedError(
            f"ImproperUniform(support={self._support}) has no normalized density, so it cannot be "
            "sampled. Give the site its value another way: a guide, obs=..., poutine.condition, "
            "or (for MCMC and autoguides) an init strategy such as init_to_uniform or "
            "init_to_value."
        )
