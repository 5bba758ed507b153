"""``LogNormalNegativeBinomial``: a negative binomial whose logits carry normal noise.

Over-dispersed counts whose dispersion itself varies (single-cell gene counts are the classic
case) fit poorly with one negative binomial. Adding ``Normal(0, multiplicative_noise_scale)``
noise to the logits multiplies the rate by log-normal noise. The mixture has no closed form;
``log_prob`` integrates the noise out by Gauss-Hermite quadrature with ``num_quad_points`` nodes,
exact for the smooth integrands met in practice once a handful of nodes are used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number
from typing import Any

import numpy as np
import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.param_expand import expand_params
from engine.distributions.torch_distribution import TorchDistribution
from engine.errors import DistributionArgumentError

Param = torch.Tensor | Number


class LogNormalNegativeBinomial(TorchDistribution):
    """``NegativeBinomial(total_count, logits + eps)``, ``eps ~ Normal(0, noise scale)``.

    Its mean is ``total_count * exp(logits + scale**2 / 2)`` and its variance
    ``mean + (exp(scale**2) * (1 + 1 / total_count) - 1) * mean**2``.

    >>> d = LogNormalNegativeBinomial(5.0, torch.tensor(0.0), 0.5)
    >>> round(float(d.mean), 4)  # 5 * exp(0.125)
    5.6657
    >>> p = d.log_prob(torch.arange(200.0)).exp()
    >>> round(float(p.sum()), 4)
    1.0
    """

    arg_constraints = {
        "total_count": constraints.greater_than_eq(0),
        "logits": constraints.real,
        "multiplicative_noise_scale": constraints.positive,
    }
    support = constraints.nonnegative_integer

    def __init__(
        self,
        total_count: Param,
        logits: Param,
        multiplicative_noise_scale: Param,
        *,
        num_quad_points: int = 8,
        validate_args: bool | None = None,
    ):
        if int(num_quad_points) < 1:
            raise DistributionArgumentError(
                "LogNormalNegativeBinomial: num_quad_points must be a positive integer, "
                f"got {num_quad_points!r}."
            )
        self.total_count, self.logits, self.multiplicative_noise_scale = broadcast_all(
            total_count, logits, multiplicative_noise_scale
        )
        self.num_quad_points = int(num_quad_points)
        super().__init__(self.logits.shape, validate_args=validate_args)

    def expand(
        self, batch_shape: Sequence[int], _instance: Any = None
    ) -> LogNormalNegativeBinomial:
        return expand_params(
            self, LogNormalNegativeBinomial, batch_shape, _instance, copy=["num_quad_points"]
        )

    def _quadrature(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Gauss-Hermite nodes and log weights for an integral against ``Normal(0, 1)``."""
        nodes, weights = np.polynomial.hermite.hermgauss(self.num_quad_points)
        like = self.logits
        # Physicists' rule: int e^{-x^2} f(x) dx; substituting x = z / sqrt(2) turns it into an
        # expectation over a standard normal z, with weights divided by sqrt(pi).
        z = torch.as_tensor(nodes * math.sqrt(2.0), dtype=like.dtype, device=like.device)
        log_w = torch.as_tensor(
            np.log(weights) - 0.5 * math.log(math.pi), dtype=like.dtype, device=like.device
        )
        return z, log_w

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z, log_w = self._quadrature()
        logits = self.logits.unsqueeze(-1) + self.multiplicative_noise_scale.unsqueeze(-1) * z
        nb = torch.distributions.NegativeBinomial(
            self.total_count.unsqueeze(-1), logits=logits, validate_args=False
        )
        return torch.logsumexp(nb.log_prob(value.unsqueeze(-1)) + log_w, dim=-1)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            noise = torch.randn(shape, dtype=self.logits.dtype, device=self.logits.device)
            logits = self.logits + self.multiplicative_noise_scale * noise
            nb = torch.distributions.NegativeBinomial(
                self.total_count.expand(shape), logits=logits, validate_args=False
            )
            return nb.sample()

    @property
    def mean(self) -> torch.Tensor:
        half_var = self.multiplicative_noise_scale.pow(2) / 2
        return self.total_count * torch.exp(self.logits + half_var)

    @property
    def variance(self) -> torch.Tensor:
        mean = self.mean
        excess = torch.exp(self.multiplicative_noise_scale.pow(2)) * (
            1 + self.total_count.reciprocal()
        )
        return mean + (excess - 1) * mean.pow(2)
