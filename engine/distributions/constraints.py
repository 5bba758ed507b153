"""Constraints: every one of ``torch.distributions.constraints`` plus Pyro's extra names.

The extras are the ones Pyro models use for parameters and that torch lacks: ordered vectors,
softplus-parameterized positives and Cholesky factors, unit-diagonal Cholesky factors, and
integers. Their ``transform_to``/``biject_to`` registrations live in
:mod:`engine.distributions.transforms`, next to the transforms themselves.

>>> bool(ordered_vector.check(torch.tensor([0.0, 1.0, 3.0])))
True
"""

from __future__ import annotations

import torch
from torch.distributions.constraints import *  # noqa: F403  (re-export torch's, whatever the version)
from torch.distributions.constraints import Constraint, lower_cholesky, positive
from torch.distributions.constraints import __all__ as _torch_all


class _Integer(Constraint):
    """Any whole number."""

    is_discrete = True

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return value % 1 == 0

    def plain_words(self) -> tuple[str, str]:
        return ("an integer", "round it (x.round()) or pass whole numbers")


class _OrderedVector(Constraint):
    """Vectors whose entries increase along the last dim."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        # Ties are allowed: a strictly increasing vector can round to equal floats.
        increasing = (value[..., 1:] >= value[..., :-1]).all(-1)
        return increasing & (value == value).all(-1)

    def plain_words(self) -> tuple[str, str]:
        return (
            "a vector sorted in increasing order along the last dim",
            "sort it (x.sort(-1).values) or use a param with constraint=constraints.ordered_vector",
        )


class _PositiveOrderedVector(_OrderedVector):
    """Vectors of positive entries increasing along the last dim."""

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return super().check(value) & (value > 0).all(-1)

    def plain_words(self) -> tuple[str, str]:
        return (
            "a vector of positive entries sorted in increasing order along the last dim",
            "use a param with constraint=constraints.positive_ordered_vector",
        )


class _SoftplusPositive(type(positive)):
    """``positive``, but mapped from unconstrained space by softplus instead of exp."""

    def __init__(self) -> None:
        super().__init__(lower_bound=0.0)


class _SoftplusLowerCholesky(type(lower_cholesky)):
    """``lower_cholesky``, but with a softplus rather than exp on the diagonal."""


class _UnitLowerCholesky(Constraint):
    """Lower-triangular matrices with ones on the diagonal."""

    event_dim = 2

    def check(self, value: torch.Tensor) -> torch.Tensor:
        lower = (value.tril() == value).flatten(-2).all(-1)
        unit_diagonal = (value.diagonal(dim1=-2, dim2=-1) == 1).all(-1)
        return lower & unit_diagonal

    def plain_words(self) -> tuple[str, str]:
        return (
            "lower-triangular with ones on the diagonal",
            "use a param with constraint=constraints.unit_lower_cholesky",
        )


integer = _Integer()
ordered_vector = _OrderedVector()
positive_ordered_vector = _PositiveOrderedVector()
softplus_positive = _SoftplusPositive()
softplus_lower_cholesky = _SoftplusLowerCholesky()
unit_lower_cholesky = _UnitLowerCholesky()

__all__ = sorted(
    {
        *_torch_all,
        "integer",
        "ordered_vector",
        "positive_ordered_vector",
        "softplus_lower_cholesky",
        "softplus_positive",
        "unit_lower_cholesky",
    }
)

# Correlation matrices and the unit sphere (their module is torch-only, so no import cycle).
from engine.distributions.corr_matrix import corr_matrix, sphere  # noqa: E402

__all__ += ["corr_matrix", "sphere"]
