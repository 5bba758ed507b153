"""``SimplexToOrderedTransform``: from probabilities over ``K`` ordered classes to the ``K - 1``
cutpoints of an ordered-logistic model that give those probabilities at a chosen anchor.

``y_k = anchor_point + logit(p_0 + ... + p_k)`` for ``k < K - 1``: with linear predictor
``anchor_point``, ``OrderedLogistic(anchor_point, y)`` puts probability ``p`` on the classes. A
Dirichlet prior on ``p`` so becomes a prior on the cutpoints (Betancourt's ordinal regression
case study).

>>> t = SimplexToOrderedTransform()
>>> t(torch.tensor([0.2, 0.3, 0.5]))  # logit(0.2), logit(0.5)
tensor([-1.3863,  0.0000])
"""

from __future__ import annotations

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from engine.distributions.constraints import ordered_vector
from engine.errors import ArgumentError


class SimplexToOrderedTransform(Transform):
    """Probabilities over ``K`` classes (last dim) to ``K - 1`` increasing cutpoints around
    ``anchor_point`` (0 by default). The log-Jacobian is taken with respect to the first
    ``K - 1`` probabilities, the free coordinates of the simplex.

    >>> t = SimplexToOrderedTransform(anchor_point=1.0)
    >>> t.inv(t(torch.tensor([0.2, 0.3, 0.5])))
    tensor([0.2000, 0.3000, 0.5000])
    """

    domain = constraints.simplex
    codomain = ordered_vector
    # Pyro declares it not bijective: its domain has one more entry than its codomain, so the
    # square-Jacobian checks of a bijection do not apply.
    bijective = False

    def __init__(
        self, anchor_point: torch.Tensor | float | None = None, cache_size: int = 0
    ) -> None:
        super().__init__(cache_size=cache_size)
        self.anchor_point = torch.as_tensor(0.0 if anchor_point is None else anchor_point)

    def with_cache(self, cache_size: int = 1) -> SimplexToOrderedTransform:
        if self._cache_size == cache_size:
            return self
        return SimplexToOrderedTransform(self.anchor_point, cache_size=cache_size)

    def _anchor(self, like: torch.Tensor) -> torch.Tensor:
        return self.anchor_point.to(dtype=like.dtype, device=like.device).unsqueeze(-1)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        cumulative = x[..., :-1].cumsum(-1).clamp(0.0, 1.0)
        return self._anchor(x) + torch.logit(cumulative)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        cumulative = torch.sigmoid(y - self._anchor(y))
        zero = torch.zeros_like(cumulative[..., :1])
        one = torch.ones_like(cumulative[..., :1])
        return torch.cat([cumulative, one], -1) - torch.cat([zero, cumulative], -1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # dy_k/dp_j = [j <= k] / (C_k (1 - C_k)) with C_k = sigmoid(y_k - anchor): triangular.
        z = y - self._anchor(y)
        # log(C (1 - C)) = logsigmoid(z) + logsigmoid(-z)
        return -(torch.nn.functional.logsigmoid(z) + torch.nn.functional.logsigmoid(-z)).sum(-1)

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        if len(shape) < 1:
            raise ArgumentError("SimplexToOrderedTransform needs a last dim of probabilities")
        return torch.Size((*shape[:-1], shape[-1] - 1))

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        if len(shape) < 1:
            raise ArgumentError("SimplexToOrderedTransform needs a last dim of cutpoints")
        return torch.Size((*shape[:-1], shape[-1] + 1))
