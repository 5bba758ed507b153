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

from collections.abc import Callable
from typing import Any

import torch  # noqa: F401  (the doctest uses it)
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
from engine.distributions.torch_transform import ComposeTransformModule, TransformModule
from engine.distributions.transforms.affine_autoregressive import (
    AffineAutoregressive,
    ConditionalAffineAutoregressive,
    affine_autoregressive,
    conditional_affine_autoregressive,
)
from engine.distributions.transforms.affine_coupling import (
    AffineCoupling,
    ConditionalAffineCoupling,
    affine_coupling,
    conditional_affine_coupling,
)
from engine.distributions.transforms.basic import (
    ELUTransform,
    LeakyReLUTransform,
    elu,
    leaky_relu,
)
from engine.distributions.transforms.batchnorm import BatchNorm, batchnorm
from engine.distributions.transforms.block_autoregressive import (
    BlockAutoregressive,
    block_autoregressive,
)
from engine.distributions.transforms.cholesky import (
    CholeskyTransform,
    CorrLCholeskyTransform,
    CorrMatrixCholeskyTransform,
)
from engine.distributions.transforms.discrete_cosine import DiscreteCosineTransform
from engine.distributions.transforms.generalized_channel_permute import (
    ConditionalGeneralizedChannelPermute,
    GeneralizedChannelPermute,
    conditional_generalized_channel_permute,
    generalized_channel_permute,
)
from engine.distributions.transforms.haar import HaarTransform
from engine.distributions.transforms.householder import (
    ConditionalHouseholder,
    Householder,
    conditional_householder,
    householder,
)
from engine.distributions.transforms.lower_cholesky_affine import LowerCholeskyAffine
from engine.distributions.transforms.matrix_exponential import (
    ConditionalMatrixExponential,
    MatrixExponential,
    conditional_matrix_exponential,
    matrix_exponential,
)
from engine.distributions.transforms.neural_autoregressive import (
    ConditionalNeuralAutoregressive,
    NeuralAutoregressive,
    conditional_neural_autoregressive,
    neural_autoregressive,
)
from engine.distributions.transforms.normalize import Normalize
from engine.distributions.transforms.ordered import OrderedTransform
from engine.distributions.transforms.permute import Permute, permute
from engine.distributions.transforms.planar import (
    ConditionalPlanar,
    Planar,
    conditional_planar,
    planar,
)
from engine.distributions.transforms.polynomial import Polynomial, polynomial
from engine.distributions.transforms.power import PositivePowerTransform
from engine.distributions.transforms.radial import (
    ConditionalRadial,
    Radial,
    conditional_radial,
    radial,
)
from engine.distributions.transforms.simplex_to_ordered import SimplexToOrderedTransform
from engine.distributions.transforms.softplus import SoftplusLowerCholeskyTransform
from engine.distributions.transforms.spline import (
    ConditionalSpline,
    ConditionedSpline,
    Spline,
    conditional_spline,
    spline,
)
from engine.distributions.transforms.spline_autoregressive import (
    ConditionalSplineAutoregressive,
    SplineAutoregressive,
    conditional_spline_autoregressive,
    spline_autoregressive,
)
from engine.distributions.transforms.spline_coupling import SplineCoupling, spline_coupling
from engine.distributions.transforms.sylvester import Sylvester, sylvester
from engine.distributions.transforms.unit_cholesky import UnitLowerCholeskyTransform
from engine.errors import ArgumentError


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


# Many-to-one (every ray lands on one point), so a transform_to and not a biject_to.
@transform_to.register(constraints.sphere)
def _to_sphere(constraint: constraints.Constraint) -> Transform:
    return Normalize()


def iterated(
    repeats: int, base_fn: Callable[..., Transform], *args: Any, **kwargs: Any
) -> ComposeTransformModule:
    """``repeats`` independent transforms ``base_fn(*args, **kwargs)`` composed into one
    ``ComposeTransformModule`` (each part gets its own parameters).

    >>> flow = iterated(3, block_autoregressive, 2)
    >>> len(flow.parts), flow.parts[0] is flow.parts[1]
    (3, False)
    """
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ArgumentError(f"iterated needs a whole number of repeats >= 1, got {repeats!r}")
    return ComposeTransformModule([base_fn(*args, **kwargs) for _ in range(repeats)])


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


# Pyro's extras beyond the flows tutorial.
__all__ += [
    "BlockAutoregressive",
    "CholeskyTransform",
    "CorrLCholeskyTransform",
    "CorrMatrixCholeskyTransform",
    "ELUTransform",
    "LeakyReLUTransform",
    "Normalize",
    "PositivePowerTransform",
    "SimplexToOrderedTransform",
    "block_autoregressive",
    "elu",
    "iterated",
    "leaky_relu",
]
# The small learnable flows of Pyro's docs, each with a conditional form and helpers.
__all__ += [
    "AffineCoupling",
    "ConditionalAffineCoupling",
    "ConditionalHouseholder",
    "ConditionalMatrixExponential",
    "ConditionalPlanar",
    "ConditionalRadial",
    "Householder",
    "MatrixExponential",
    "Planar",
    "Radial",
    "affine_coupling",
    "conditional_affine_coupling",
    "conditional_householder",
    "conditional_matrix_exponential",
    "conditional_planar",
    "conditional_radial",
    "householder",
    "matrix_exponential",
    "planar",
    "radial",
]
__all__ += [
    "ConditionalNeuralAutoregressive",
    "ConditionalSplineAutoregressive",
    "NeuralAutoregressive",
    "SplineAutoregressive",
    "Sylvester",
    "conditional_neural_autoregressive",
    "conditional_spline_autoregressive",
    "neural_autoregressive",
    "spline_autoregressive",
    "sylvester",
]
__all__ += [
    "BatchNorm",
    "ConditionalGeneralizedChannelPermute",
    "GeneralizedChannelPermute",
    "Polynomial",
    "batchnorm",
    "conditional_generalized_channel_permute",
    "generalized_channel_permute",
    "polynomial",
]
__all__.sort()
