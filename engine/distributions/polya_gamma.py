"""``TruncatedPolyaGamma``: the Polya-Gamma PG(1, 0) law cut off at 2.5.

Polya-Gamma variables make logistic likelihoods conditionally Gaussian (Polson, Scott and
Windle, 2013), which HMC and Gibbs schemes exploit. The PG(1, 0) density is an alternating
series, ``sum_n (-1)^n (2n + 1) / sqrt(2 pi x^3) exp(-(2n + 1)^2 / (8 x))``; beyond 2.5 its
mass is below 1e-5, so the law is truncated there and the series summed to
``num_log_prob_terms`` terms, which makes ``log_prob`` accurate to about six decimals. Draws use
the law's representation as ``sum_k g_k / (2 pi^2 (k - 1/2)^2)`` with standard exponential
``g_k``: ``num_gamma_variates`` random terms plus the mean of the rest, clipped to the support;
that is an approximation, meant for initialisation rather than for exact sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution


class TruncatedPolyaGamma(TorchDistribution):
    """PG(1, 0) truncated to ``(0, 2.5)``; ``prototype`` sets the dtype and device.

    >>> d = TruncatedPolyaGamma(torch.ones(1, dtype=torch.float64))
    >>> x = torch.linspace(1e-4, 2.5, 20001, dtype=torch.float64)
    >>> round(float(torch.trapezoid(d.log_prob(x).exp(), x)), 5)
    1.0
    """

    truncation_point = 2.5
    num_log_prob_terms = 7
    num_gamma_variates = 8
    arg_constraints: dict = {}
    support = constraints.interval(0.0, truncation_point)
    has_rsample = False

    def __init__(self, prototype: torch.Tensor, validate_args: bool | None = None):
        self.prototype = prototype.new_empty(())
        super().__init__(torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> TruncatedPolyaGamma:
        new = self._get_checked_instance(TruncatedPolyaGamma, _instance)
        new.prototype = self.prototype
        torch.distributions.Distribution.__init__(new, torch.Size(batch_shape), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            like = self.prototype
            k = torch.arange(1, self.num_gamma_variates + 1, dtype=like.dtype, device=like.device)
            weights = 1 / (2 * math.pi**2 * (k - 0.5).pow(2))
            g = torch.empty((*shape, len(k)), dtype=like.dtype, device=like.device)
            draws = (g.exponential_() * weights).sum(-1)
            # The omitted terms contribute their mean: the weights sum to 1/4 over all k.
            rest = 0.25 - float(weights.sum())
            return (draws + rest).clamp(max=self.truncation_point)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        like = self.prototype
        odd = 2 * torch.arange(self.num_log_prob_terms, dtype=like.dtype, device=like.device) + 1
        x = value.unsqueeze(-1)
        # Relative to the n = 0 term: (-1)^n (2n + 1) exp(-((2n + 1)^2 - 1) / (8 x)).
        signs = torch.ones_like(odd)
        signs[1::2] = -1
        ratio = (signs * odd * torch.exp(-(odd.pow(2) - 1) / (8 * x))).sum(-1)
        first = -0.5 * math.log(2 * math.pi) - 1.5 * value.log() - 1 / (8 * value)
        return first + ratio.log()
