"""Softplus-based transforms: torch's ``SoftplusTransform`` (``x -> log(1 + exp(x))`` onto the
positive reals) and ``SoftplusLowerCholeskyTransform`` onto Cholesky factors.

>>> SoftplusTransform()(torch.tensor(0.0))
tensor(0.6931)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions.transforms import SoftplusTransform, Transform

from engine.distributions import constraints
from engine.distributions.torch_transform import ParameterFree

__all__ = ["SoftplusLowerCholeskyTransform", "SoftplusTransform"]


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


class SoftplusLowerCholeskyTransform(ParameterFree, Transform):
    """Map a square matrix to a Cholesky factor: keep the strict lower triangle, softplus the
    diagonal. Gentler than exp for parameters learned by gradient descent.

    >>> SoftplusLowerCholeskyTransform()(torch.zeros(2, 2)).diagonal()
    tensor([0.6931, 0.6931])
    """

    domain = constraints.independent(constraints.real, 2)
    codomain = constraints.softplus_lower_cholesky

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        diagonal = F.softplus(x.diagonal(dim1=-2, dim2=-1))
        return x.tril(-1) + torch.diag_embed(diagonal)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        diagonal = _inverse_softplus(y.diagonal(dim1=-2, dim2=-1))
        return y.tril(-1) + torch.diag_embed(diagonal)
