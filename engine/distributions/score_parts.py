"""``ScoreParts``: a log-density split into the pieces the gradient estimators need.

An ELBO needs, per site, the log-density itself, the part that multiplies a score-function
(REINFORCE) term, and the part whose gradient flows by reparameterization. Distributions hand
these out through ``score_parts`` so the inference code never asks how a value was drawn.
"""

from __future__ import annotations

from numbers import Number
from typing import NamedTuple

import torch

from engine.distributions.util import scale_and_mask


class ScoreParts(NamedTuple):
    """``(log_prob, score_function, entropy_term)`` of one site; a zero part is the number 0.

    >>> parts = ScoreParts(torch.tensor([-1.0, -2.0]), 0, torch.tensor([-1.0, -2.0]))
    >>> parts.scale_and_mask(2.0, torch.tensor([True, False])).log_prob
    tensor([-2.,  0.])
    """

    log_prob: torch.Tensor | Number
    score_function: torch.Tensor | Number
    entropy_term: torch.Tensor | Number

    def scale_and_mask(
        self, scale: torch.Tensor | Number = 1.0, mask: torch.Tensor | bool | None = None
    ) -> ScoreParts:
        """Scale the log-prob and entropy parts and zero out masked entries of every part.

        The score-function part is masked but not scaled: it multiplies a cost that carries the
        scale already.
        """
        return ScoreParts(
            scale_and_mask(self.log_prob, scale, mask),
            scale_and_mask(self.score_function, 1.0, mask),
            scale_and_mask(self.entropy_term, scale, mask),
        )
