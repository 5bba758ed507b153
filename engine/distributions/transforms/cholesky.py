"""Transforms between positive-definite or correlation matrices and their Cholesky factors:
``CholeskyTransform`` (new), ``CorrMatrixCholeskyTransform`` (defined next to the ``corr_matrix``
constraint), torch's ``CorrCholeskyTransform`` and Pyro's older name for it,
``CorrLCholeskyTransform``.

>>> S = torch.tensor([[4.0, 2.0], [2.0, 5.0]])
>>> L = CholeskyTransform()(S)
>>> L
tensor([[2., 0.],
        [1., 2.]])
>>> torch.equal(CholeskyTransform().inv(L), S)
True
"""

from __future__ import annotations

import warnings

import torch
from torch.distributions import constraints
from torch.distributions.transforms import CorrCholeskyTransform

from engine.distributions.corr_matrix import CholeskyFactorTransform, CorrMatrixCholeskyTransform
from engine.distributions.torch_transform import ParameterFree

__all__ = [
    "CholeskyTransform",
    "CorrCholeskyTransform",
    "CorrLCholeskyTransform",
    "CorrMatrixCholeskyTransform",
]


class CholeskyTransform(ParameterFree, CholeskyFactorTransform):
    """Map a symmetric positive-definite matrix ``S`` to its lower Cholesky factor ``L``
    (``S = L @ L.T``); the inverse forms ``L @ L.T``.

    The Jacobian is taken over the free entries, the lower triangles of both matrices.

    >>> t = CholeskyTransform()
    >>> S = torch.tensor([[1.0, 0.0], [0.0, 9.0]])
    >>> t.log_abs_det_jacobian(S, t(S))  # -(2 log 1 + 1 log 3) - 2 log 2
    tensor(-2.4849)
    """

    domain = constraints.positive_definite
    codomain = constraints.lower_cholesky
    bijective = True

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Order the free entries row by row; S_ij (i >= j) depends on L_kl only for (k, l) up to
        # (i, j), so dS/dL is triangular with diagonal dS_ij/dL_ij = L_jj (i > j) or 2 L_jj
        # (i = j). Column j has n - j such entries (0-based): log|dS/dL| = n log 2 +
        # sum_j (n - j) log L_jj. This is the forward direction, S -> L: its negative.
        n = y.shape[-1]
        counts = torch.arange(n, 0, -1, dtype=y.dtype, device=y.device)
        log_diag = y.diagonal(dim1=-2, dim2=-1).log()
        return -(counts * log_diag).sum(-1) - n * torch.log(torch.tensor(2.0, dtype=y.dtype))


class CorrLCholeskyTransform(CorrCholeskyTransform):
    """Pyro's former name for torch's ``CorrCholeskyTransform`` (unconstrained vectors onto
    Cholesky factors of correlation matrices). Constructing one warns ``FutureWarning``.

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     isinstance(CorrLCholeskyTransform(), CorrCholeskyTransform)
    True
    """

    def __init__(self, cache_size: int = 0) -> None:
        warnings.warn(
            "CorrLCholeskyTransform is an old name: use CorrCholeskyTransform, which does the same",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(cache_size=cache_size)
