"""The map onto lower-triangular matrices with a unit diagonal
(``constraints.unit_lower_cholesky``).

>>> UnitLowerCholeskyTransform()(torch.zeros(2, 2)).diagonal()
tensor([1., 1.])
"""

from __future__ import annotations

import torch
from torch.distributions.transforms import Transform

from engine.distributions import constraints
from engine.distributions.torch_transform import ParameterFree


class UnitLowerCholeskyTransform(ParameterFree, Transform):
    """Map a square matrix to a lower-triangular one with unit diagonal.

    >>> UnitLowerCholeskyTransform()(torch.full((2, 2), 3.0))
    tensor([[1., 0.],
            [3., 1.]])
    """

    domain = constraints.independent(constraints.real, 2)
    codomain = constraints.unit_lower_cholesky

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        return x.tril(-1) + eye

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.tril(-1)
