"""``BatchNorm`` as a flow (Dinh et al., 2017): the normalisation
``x = (y - mean) / sqrt(var + eps) * gamma + beta`` is the inverse direction (data to base), so
``log_prob`` of data normalises it; the forward direction undoes it.

In training mode (``.train()``, the default) the inverse uses the statistics of the batch it
is given and updates running averages of them; in evaluation mode (``.eval()``) both directions
use the running averages, and only then are they exact inverses of each other.

>>> t = batchnorm(2)
>>> _ = t._inverse(torch.randn(100, 2) * 3 + 1)  # one training batch updates the averages
>>> t = t.eval()
>>> x = torch.randn(4, 2)
>>> torch.allclose(t._inverse(t._call(x)), x, atol=1e-5)
True
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import constraints

from engine.distributions.torch_transform import TransformModule
from engine.errors import ArgumentError

_SOFTPLUS_OF_ONE = math.log(math.e - 1)  # softplus(this) = 1: gamma starts at one


class BatchNorm(TransformModule):
    """A batch-normalisation flow on vectors of ``input_dim`` entries, with learned positive
    scale ``gamma`` (``softplus`` of the parameter ``gamma``) and shift ``beta``; ``momentum``
    weighs each batch in the running averages, ``epsilon`` keeps the variance off zero.

    >>> BatchNorm(3).moving_mean
    tensor([0., 0., 0.])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    sign = +1

    def __init__(self, input_dim: int, momentum: float = 0.1, epsilon: float = 1e-5) -> None:
        if not 0 <= momentum <= 1 or not epsilon > 0:
            raise ArgumentError(
                f"BatchNorm needs 0 <= momentum <= 1 and epsilon > 0, got momentum={momentum}, "
                f"epsilon={epsilon}"
            )
        super().__init__(cache_size=1)
        self.input_dim = input_dim
        self.momentum = momentum
        self.epsilon = epsilon
        self.gamma = nn.Parameter(torch.full((input_dim,), _SOFTPLUS_OF_ONE))
        self.beta = nn.Parameter(torch.zeros(input_dim))
        self.register_buffer("moving_mean", torch.zeros(input_dim))
        self.register_buffer("moving_variance", torch.ones(input_dim))

    @property
    def constrained_gamma(self) -> torch.Tensor:
        """The positive scale in use."""
        return F.softplus(self.gamma)

    def _batch_statistics(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = y.reshape(-1, y.shape[-1])
        return flat.mean(0), flat.var(0, unbiased=False)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        scale = (self.moving_variance + self.epsilon).sqrt()
        return (x - self.beta) / self.constrained_gamma * scale + self.moving_mean

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean, var = self._batch_statistics(y)
            with torch.no_grad():
                self.moving_mean.lerp_(mean.detach(), self.momentum)
                self.moving_variance.lerp_(var.detach(), self.momentum)
        else:
            mean, var = self.moving_mean, self.moving_variance
        return (y - mean) / (var + self.epsilon).sqrt() * self.constrained_gamma + self.beta

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Forward: dy/dx = sqrt(var + eps) / gamma per entry, with the statistics the inverse
        # uses (the batch's in training mode).
        var = self._batch_statistics(y)[1] if self.training else self.moving_variance
        per_entry = 0.5 * (var + self.epsilon).log() - self.constrained_gamma.log()
        return per_entry.sum(-1).expand(x.shape[:-1])

    def train(self, mode: bool = True) -> BatchNorm:
        # The cached pair depends on the mode: drop it when the mode changes.
        self.clear_cache()
        return super().train(mode)


def batchnorm(input_dim: int, **kwargs: Any) -> BatchNorm:
    """A :class:`BatchNorm` flow (keyword options as for the class).

    >>> batchnorm(2, momentum=0.05).momentum
    0.05
    """
    return BatchNorm(input_dim, **kwargs)
