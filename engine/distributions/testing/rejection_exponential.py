"""``RejectionExponential``: an exponential drawn by accept-reject, a worked use of ``Rejector``.

The proposal is a slower exponential, ``Exponential(rate * factor)`` with ``0 < factor <= 1``;
the target over proposal is ``exp(-rate * (1 - factor) * x) / factor``, at most ``1 / factor``,
so a draw is kept with probability ``exp(-rate * (1 - factor) * x)`` and the acceptance rate is
``factor``. The law is exactly ``Exponential(rate)``; tests compare its draws and gradients with
the direct sampler.
"""

from __future__ import annotations

from numbers import Number

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from engine.distributions.rejector import Rejector
from engine.distributions.torch_wrappers import Exponential


class RejectionExponential(Rejector):
    """``Exponential(rate)`` through accept-reject from ``Exponential(rate * factor)``.

    >>> d = RejectionExponential(torch.tensor([2.0]), torch.tensor([0.5]))
    >>> x = torch.tensor([0.3])
    >>> torch.allclose(d.log_prob(x), Exponential(2.0).log_prob(x))
    True
    """

    arg_constraints = {"rate": constraints.positive, "factor": constraints.unit_interval}
    support = constraints.positive

    def __init__(self, rate: torch.Tensor | Number, factor: torch.Tensor | Number):
        self.rate, self.factor = broadcast_all(rate, factor)
        propose = Exponential(self.rate * self.factor)
        super().__init__(propose, self._log_prob_accept, self.factor.log())

    def _log_prob_accept(self, x: torch.Tensor) -> torch.Tensor:
        return -self.rate * (1 - self.factor) * x
