"""``Empirical``: the discrete distribution over a fixed set of weighted samples.

Inference returns collections of weighted draws (importance sampling, MCMC chains); wrapping them
as a distribution lets them be sampled, scored and summarized like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.errors import ShapeError, fmt_shape


class Empirical(TorchDistribution):
    """Weighted samples as a distribution.

    ``samples`` has shape ``batch_shape + (num_samples,) + event_shape`` and ``log_weights`` (any
    unnormalized log-weights) has shape ``batch_shape + (num_samples,)``. ``log_prob(x)`` is the
    log of the total normalized weight of the samples equal to ``x``.

    >>> d = Empirical(torch.tensor([0.0, 1.0, 1.0]), torch.zeros(3))
    >>> d.mean, d.log_prob(torch.tensor(1.0)).exp()
    (tensor(0.6667), tensor(0.6667))
    """

    arg_constraints: dict = {}
    has_enumerate_support = True

    def __init__(
        self, samples: torch.Tensor, log_weights: torch.Tensor, validate_args: bool | None = None
    ):
        n = log_weights.dim()
        if n == 0 or samples.shape[:n] != log_weights.shape:
            raise ShapeError(
                f"Empirical: log_weights has shape {fmt_shape(log_weights.shape)}, but it must be "
                f"non-empty and equal the leftmost dims of samples, whose shape is "
                f"{fmt_shape(samples.shape)} (batch_shape + (num_samples,) + event_shape)."
            )
        self._samples = samples
        self._log_weights = log_weights
        self._aggregation_dim = n - 1
        super().__init__(log_weights.shape[:-1], samples.shape[n:], validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Empirical:
        new = self._get_checked_instance(Empirical, _instance)
        batch_shape = torch.Size(batch_shape)
        n = self._log_weights.shape[-1]
        new._samples = self._samples.expand((*batch_shape, n, *self.event_shape))
        new._log_weights = self._log_weights.expand((*batch_shape, n))
        new._aggregation_dim = len(batch_shape)
        super(Empirical, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, self.event_dim)

    @property
    def sample_size(self) -> int:
        """Number of weights (``num_samples`` times the batch size)."""
        return self._log_weights.numel()

    @property
    def log_weights(self) -> torch.Tensor:
        """The unnormalized log-weights, as given."""
        return self._log_weights

    def _normalized_log_weights(self) -> torch.Tensor:
        return self._log_weights - self._log_weights.logsumexp(-1, keepdim=True)

    def _samples_first(self) -> torch.Tensor:
        """The samples with the sample dim moved to the front: ``(num_samples,) + shape()``."""
        return self._samples.movedim(self._aggregation_dim, 0)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        with torch.no_grad():
            weights = self._normalized_log_weights().exp()
            flat = weights.reshape(-1, weights.shape[-1])
            draws = sample_shape.numel()
            index = torch.multinomial(flat, draws, replacement=True)  # (batch, draws)
            index = index.T.reshape((draws,) + self.batch_shape + (1,) * self.event_dim)
            index = index.expand((draws, *self.batch_shape, *self.event_shape))
            values = self._samples_first().gather(0, index)
        return values.reshape(sample_shape + self.batch_shape + self.event_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # Compare the value with every sample at once: (..., batch, num_samples, event).
        value = value.unsqueeze(value.dim() - self.event_dim)
        equal = self._samples == value
        if self.event_dim:
            equal = equal.flatten(-self.event_dim).all(-1)
        log_weights = self._normalized_log_weights()
        return torch.where(equal, log_weights, -float("inf")).logsumexp(-1)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """The samples, stacked along a new leftmost dim: ``(num_samples,) + shape()``.

        The support differs across the batch, so ``expand=False`` cannot collapse the batch dims
        to size 1 and returns the same tensor.
        """
        return self._samples_first()

    def _weighted_mean(self, values: torch.Tensor) -> torch.Tensor:
        weights = self._normalized_log_weights().exp()
        weights = weights.reshape(weights.shape + (1,) * self.event_dim)
        return (weights * values).sum(self._aggregation_dim)

    @property
    def mean(self) -> torch.Tensor:
        # Integer samples (counts) get a real-valued mean, in the weights' dtype.
        return self._weighted_mean(self._samples.to(self._log_weights.dtype))

    @property
    def variance(self) -> torch.Tensor:
        mean = self.mean.unsqueeze(self._aggregation_dim)
        return self._weighted_mean((self._samples.to(mean.dtype) - mean) ** 2)
