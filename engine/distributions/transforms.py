"""Transforms: every one of ``torch.distributions.transforms``, Pyro's extras, the normalizing
flows of Pyro's flows tutorial (``Spline``, ``SplineCoupling``, ``AffineAutoregressive`` and
their conditional forms, each with its ``T.spline(...)``-style helper), and the
``biject_to``/``transform_to`` registrations for the extra constraints.

``transform_to(c)`` maps unconstrained space onto constraint ``c`` (used for constrained params);
``biject_to(c)`` does the same but must be a bijection (used for latent sites in autoguides and
HMC).

>>> t = biject_to(constraints.ordered_vector)
>>> t(torch.tensor([0.0, 0.0, 0.0]))
tensor([0., 1., 2.])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import biject_to, transform_to
from torch.distributions.transforms import *  # noqa: F403  (re-export torch's, whatever the version)
from torch.distributions.transforms import (
    ComposeTransform,
    ExpTransform,
    SoftplusTransform,
    Transform,
)
from torch.distributions.transforms import __all__ as _torch_all

from engine.distributions import constraints
from engine.distributions.affine_autoregressive import (
    AffineAutoregressive,
    ConditionalAffineAutoregressive,
    affine_autoregressive,
    conditional_affine_autoregressive,
)
from engine.distributions.lower_cholesky_affine import LowerCholeskyAffine
from engine.distributions.orthonormal_transforms import (
    DiscreteCosineTransform,
    HaarTransform,
    Permute,
    permute,
)
from engine.distributions.spline import (
    ConditionalSpline,
    ConditionedSpline,
    Spline,
    conditional_spline,
    spline,
)
from engine.distributions.spline_coupling import SplineCoupling, spline_coupling
from engine.distributions.torch_transform import ComposeTransformModule, TransformModule


class OrderedTransform(Transform):
    """Map a real vector to an increasing one: ``y[0] = x[0]``, ``y[i] = y[i-1] + exp(x[i])``.

    >>> OrderedTransform()(torch.tensor([1.0, 0.0, 0.0]))
    tensor([1., 2., 3.])
    """

    domain = constraints.real_vector
    codomain = constraints.ordered_vector
    bijective = True
    sign = +1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrderedTransform)

    def __hash__(self) -> int:
        return hash(OrderedTransform)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        steps = torch.cat([x[..., :1], x[..., 1:].exp()], dim=-1)
        return steps.cumsum(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([y[..., :1], (y[..., 1:] - y[..., :-1]).log()], dim=-1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The Jacobian is lower-triangular with diagonal (1, exp(x[1]), exp(x[2]), ...).
        return x[..., 1:].sum(-1)


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


class SoftplusLowerCholeskyTransform(Transform):
    """Map a square matrix to a Cholesky factor: keep the strict lower triangle, softplus the
    diagonal. Gentler than exp for parameters learned by gradient descent.

    >>> SoftplusLowerCholeskyTransform()(torch.zeros(2, 2)).diagonal()
    tensor([0.6931, 0.6931])
    """

    domain = constraints.independent(constraints.real, 2)
    codomain = constraints.softplus_lower_cholesky

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SoftplusLowerCholeskyTransform)

    def __hash__(self) -> int:
        return hash(SoftplusLowerCholeskyTransform)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        diagonal = F.softplus(x.diagonal(dim1=-2, dim2=-1))
        return x.tril(-1) + torch.diag_embed(diagonal)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        diagonal = _inverse_softplus(y.diagonal(dim1=-2, dim2=-1))
        return y.tril(-1) + torch.diag_embed(diagonal)


class UnitLowerCholeskyTransform(Transform):
    """Map a square matrix to a lower-triangular one with unit diagonal.

    >>> UnitLowerCholeskyTransform()(torch.full((2, 2), 3.0))
    tensor([[1., 0.],
            [3., 1.]])
    """

    domain = constraints.independent(constraints.real, 2)
    codomain = constraints.unit_lower_cholesky

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnitLowerCholeskyTransform)

    def __hash__(self) -> int:
        return hash(UnitLowerCholeskyTransform)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        return x.tril(-1) + eye

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.tril(-1)


@biject_to.register(constraints.ordered_vector)
@transform_to.register(constraints.ordered_vector)
def _to_ordered_vector(constraint: constraints.Constraint) -> Transform:
    return OrderedTransform()


@biject_to.register(constraints.positive_ordered_vector)
@transform_to.register(constraints.positive_ordered_vector)
def _to_positive_ordered_vector(constraint: constraints.Constraint) -> Transform:
    return ComposeTransform([OrderedTransform(), ExpTransform()])


@biject_to.register(constraints.softplus_positive)
@transform_to.register(constraints.softplus_positive)
def _to_softplus_positive(constraint: constraints.Constraint) -> Transform:
    return SoftplusTransform()


# Like torch's lower_cholesky, these ignore the upper triangle, so they are not bijections.
@transform_to.register(constraints.softplus_lower_cholesky)
def _to_softplus_lower_cholesky(constraint: constraints.Constraint) -> Transform:
    return SoftplusLowerCholeskyTransform()


@transform_to.register(constraints.unit_lower_cholesky)
def _to_unit_lower_cholesky(constraint: constraints.Constraint) -> Transform:
    return UnitLowerCholeskyTransform()


__all__ = sorted(
    {
        *_torch_all,
        "OrderedTransform",
        "SoftplusLowerCholeskyTransform",
        "UnitLowerCholeskyTransform",
        "biject_to",
        "transform_to",
    }
)
# The normalizing flows (listed here, as a literal, so linters see the imports above are used).
__all__ += [
    "AffineAutoregressive",
    "ComposeTransformModule",
    "ConditionalAffineAutoregressive",
    "ConditionalSpline",
    "ConditionedSpline",
    "DiscreteCosineTransform",
    "HaarTransform",
    "LowerCholeskyAffine",
    "Permute",
    "Spline",
    "SplineCoupling",
    "TransformModule",
    "affine_autoregressive",
    "conditional_affine_autoregressive",
    "conditional_spline",
    "permute",
    "spline",
    "spline_coupling",
]
__all__.sort()

from engine.distributions.corr_matrix import CorrMatrixCholeskyTransform  # noqa: E402

__all__ += ["CorrMatrixCholeskyTransform"]
