"""``OrderedLogistic``: ordinal outcomes (ratings, grades, severity levels) as a categorical.

A latent score ``predictor + Logistic(0, 1)`` falls between ordered ``cutpoints``; the category
is the number of cutpoints it passes. So ``P(y <= k) = sigmoid(cutpoints[k] - predictor)``, and
differencing those cumulative probabilities gives the category probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions import constraints as engine_constraints
from engine.distributions.torch_wrappers import Categorical
from engine.distributions.util import broadcast_shape


class OrderedLogistic(Categorical):
    """Categories ``0 .. K`` from a real ``predictor`` and ``K`` increasing ``cutpoints``.

    ``cutpoints``' leading dims broadcast against ``predictor``; a draw has ``predictor``'s
    (broadcast) shape.

    >>> d = OrderedLogistic(torch.tensor(0.0), torch.tensor([-1.0, 1.0]))
    >>> d.probs  # sigmoid(-1), sigmoid(1) - sigmoid(-1), 1 - sigmoid(1)
    tensor([0.2689, 0.4621, 0.2689])
    """

    arg_constraints = {
        "predictor": constraints.real,
        "cutpoints": engine_constraints.ordered_vector,
    }

    def __init__(
        self,
        predictor: torch.Tensor,
        cutpoints: torch.Tensor,
        validate_args: bool | None = None,
    ):
        predictor = torch.as_tensor(predictor)
        cutpoints = torch.as_tensor(cutpoints, dtype=predictor.dtype)
        if not cutpoints.dim():
            cutpoints = cutpoints.unsqueeze(-1)
        shape = broadcast_shape(predictor.shape, cutpoints.shape[:-1])
        self.predictor = predictor.expand(shape)
        self.cutpoints = cutpoints.expand(shape + cutpoints.shape[-1:])
        cumulative = torch.sigmoid(self.cutpoints - self.predictor.unsqueeze(-1))
        zeros = cumulative.new_zeros((*shape, 1))
        ones = cumulative.new_ones((*shape, 1))
        probs = torch.cat([zeros, cumulative, ones], dim=-1).diff(dim=-1)
        super().__init__(probs=probs, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> OrderedLogistic:
        new = self._get_checked_instance(OrderedLogistic, _instance)
        shape = torch.Size(batch_shape)
        new.predictor = self.predictor.expand(shape)
        new.cutpoints = self.cutpoints.expand(shape + self.cutpoints.shape[-1:])
        return super().expand(batch_shape, _instance=new)
