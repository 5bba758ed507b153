"""Correlation matrices and unit vectors: the constraints ``corr_matrix`` and ``sphere``, and the
bijection between a correlation matrix and its Cholesky factor.

``LKJ`` draws correlation matrices; ``VonMises3D`` and ``ProjectedNormal`` live on the unit
sphere. The module depends on torch only, so :mod:`engine.distributions.constraints` and
:mod:`engine.distributions.transforms` can re-export its names without an import cycle.
"""

from __future__ import annotations

import torch
from torch.distributions import biject_to, constraints, transform_to
from torch.distributions.transforms import ComposeTransform, CorrCholeskyTransform, Transform


class _CorrMatrix(constraints.Constraint):
    """Symmetric positive-definite matrices with a unit diagonal."""

    event_dim = 2

    def check(self, value: torch.Tensor) -> torch.Tensor:
        tol = 10 * torch.finfo(value.dtype).eps * value.shape[-1]
        eye = torch.eye(value.shape[-1], dtype=value.dtype, device=value.device)
        unit_diagonal = ((value.diagonal(dim1=-2, dim2=-1) - 1).abs() <= tol).all(-1)
        return (
            constraints.positive_definite.check(value)
            & unit_diagonal
            & (value * eye).isfinite().all((-2, -1))
        )

    def plain_words(self) -> tuple[str, str]:
        return (
            "a correlation matrix (symmetric, positive definite, ones on the diagonal)",
            "draw it from dist.LKJ, or form L @ L.T from an LKJCholesky factor L",
        )


class _Sphere(constraints.Constraint):
    """Vectors of Euclidean length one."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        # Loose enough for vectors normalised in float32 or built from sines and cosines.
        tol = 1e3 * torch.finfo(value.dtype).eps
        return (torch.linalg.vector_norm(value, dim=-1) - 1).abs() <= tol

    def plain_words(self) -> tuple[str, str]:
        return (
            "a unit vector (length one)",
            "divide it by its norm: x / x.norm(dim=-1, keepdim=True)",
        )


corr_matrix = _CorrMatrix()
sphere = _Sphere()


class CholeskyFactorTransform(Transform):
    """``x -> L`` with ``x = L @ L.T`` (``torch.linalg.cholesky``), inverted by ``L @ L.T``:
    what the Cholesky transforms share; each gives its own domain and Jacobian.

    >>> L = CholeskyFactorTransform()(torch.tensor([[4.0, 2.0], [2.0, 5.0]]))
    >>> L
    tensor([[2., 0.],
            [1., 2.]])
    """

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.cholesky(x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y @ y.transpose(-1, -2)


class CorrMatrixCholeskyTransform(CholeskyFactorTransform):
    """Maps a correlation matrix ``C`` to its lower Cholesky factor ``L`` (``C = L @ L.T``).

    >>> C = torch.tensor([[1.0, 0.6], [0.6, 1.0]])
    >>> L = CorrMatrixCholeskyTransform()(C)
    >>> torch.allclose(L @ L.T, C), round(float(L[1, 1]), 4)  # sqrt(1 - 0.6**2)
    (True, 0.8)
    """

    domain = corr_matrix
    codomain = constraints.corr_cholesky
    bijective = True

    def __init__(self, cache_size: int = 0):
        super().__init__(cache_size=cache_size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CorrMatrixCholeskyTransform)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # C = L L^T restricted to the free entries (strict lower triangles): the Jacobian of
        # L -> C is triangular with diagonal entries L_jj for C_ij (i > j), so
        # log|dC/dL| = sum_j (n - 1 - j) log L_jj (0-based j). This is the inverse direction.
        n = y.shape[-1]
        order = torch.arange(n - 1, -1, -1, dtype=y.dtype, device=y.device)
        log_diag = y.diagonal(dim1=-2, dim2=-1).log()
        return -(order * log_diag).sum(-1)


@biject_to.register(_CorrMatrix)
@transform_to.register(_CorrMatrix)
def _to_corr_matrix(constraint: constraints.Constraint) -> Transform:
    return ComposeTransform([CorrCholeskyTransform(), CorrMatrixCholeskyTransform().inv])
