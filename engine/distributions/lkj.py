"""``LKJ``: the Lewandowski-Kurowicka-Joe distribution over correlation matrices.

Its density is proportional to ``det(C) ** (concentration - 1)``. The engine draws the Cholesky
factor from ``LKJCholesky`` and maps it to ``C = L @ L.T``; the change of variables supplies the
density, so ``LKJ`` and ``LKJCholesky`` agree by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch

from engine.distributions import constraints
from engine.distributions.corr_matrix import CorrMatrixCholeskyTransform, corr_matrix
from engine.distributions.torch_wrappers import LKJCholesky, TransformedDistribution


class LKJ(TransformedDistribution):
    """Correlation matrices of size ``dim`` with density ``∝ det(C) ** (concentration - 1)``.

    ``concentration = 1`` is uniform over correlation matrices; larger values favour matrices
    near the identity.

    >>> d = LKJ(3, concentration=2.0)
    >>> C = d.sample()
    >>> C.shape, bool(constraints.corr_matrix.check(C))
    (torch.Size([3, 3]), True)
    """

    arg_constraints = {"concentration": constraints.positive}
    support = corr_matrix

    def __init__(
        self,
        dim: int,
        concentration: torch.Tensor | Number = 1.0,
        validate_args: bool | None = None,
    ):
        base = LKJCholesky(dim, concentration, validate_args=validate_args)
        self.dim, self.concentration = base.dim, base.concentration
        super().__init__(base, CorrMatrixCholeskyTransform().inv, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> LKJ:
        new = self._get_checked_instance(LKJ, _instance)
        new.dim = self.dim
        new.concentration = self.concentration.expand(batch_shape)
        return super().expand(batch_shape, _instance=new)

    @property
    def mean(self) -> torch.Tensor:
        # The law is symmetric under flipping the sign of any variable, so E[C_ij] = 0 off the
        # diagonal.
        eye = torch.eye(self.dim, dtype=self.concentration.dtype, device=self.concentration.device)
        return eye.expand((*self.batch_shape, self.dim, self.dim))
