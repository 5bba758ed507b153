"""``Normalize``: scale a vector to unit ``p``-norm, the map onto the unit sphere that
``transform_to(constraints.sphere)`` returns.

It is many-to-one (every positive multiple of ``x`` lands on the same point), so it has no
log-Jacobian; its inverse returns the point itself, one of the preimages.

>>> Normalize()(torch.tensor([3.0, 4.0]))
tensor([0.6000, 0.8000])
"""

from __future__ import annotations

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from engine.distributions.corr_matrix import sphere
from engine.errors import ArgumentError


class Normalize(Transform):
    """``y = x / ||x||_p`` along the last dim (``p = 2`` by default: the unit sphere).

    >>> Normalize(p=1)(torch.tensor([1.0, 3.0]))
    tensor([0.2500, 0.7500])
    """

    domain = constraints.real_vector
    codomain = sphere
    bijective = False

    def __init__(self, p: float = 2, cache_size: int = 0) -> None:
        if not p > 0:
            raise ArgumentError(f"Normalize needs a norm order p > 0, got p={p}")
        super().__init__(cache_size=cache_size)
        self.p = p

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Normalize) and other.p == self.p

    def __hash__(self) -> int:
        return hash((Normalize, self.p))

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, ord=self.p, dim=-1, keepdim=True)
        return x / norm.clamp(min=torch.finfo(x.dtype).tiny)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y
