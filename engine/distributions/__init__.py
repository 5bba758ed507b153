"""``engine.distributions``: Pyro's ``pyro.distributions``, on ``torch.distributions``.

``import engine.distributions as dist`` gives every torch distribution class under its own name,
each extended with Pyro's methods (``expand_by``, ``to_event``, ``mask``, ``shape``, calling to
draw), the extras Pyro adds (``Delta``, ``Unit``, ``Empirical``, ``MaskedMixture``,
``FoldedDistribution``, zero-inflated and compound counts, ...), and the ``constraints``,
``transforms`` and ``kl`` submodules.

>>> import torch, engine.distributions as dist
>>> d = dist.Normal(torch.zeros(3), 1.0).to_event(1)
>>> d.batch_shape, d.event_shape
(torch.Size([]), torch.Size([3]))
"""

from engine.distributions import constraints, kl, transforms
from engine.distributions.affine_beta import AffineBeta
from engine.distributions.asymmetric_laplace import AsymmetricLaplace, SoftAsymmetricLaplace
from engine.distributions.coalescent import (
    CoalescentRateLikelihood,
    CoalescentTimes,
    CoalescentTimesWithRate,
)
from engine.distributions.conditional import (
    ConditionalDistribution,
    ConditionalTransform,
    ConditionalTransformedDistribution,
    ConditionalTransformModule,
)
from engine.distributions.conjugate import BetaBinomial, DirichletMultinomial, GammaPoisson
from engine.distributions.delta import Delta
from engine.distributions.diag_normal_mixture import (
    GaussianScaleMixture,
    MixtureOfDiagNormals,
    MixtureOfDiagNormalsSharedCovariance,
)
from engine.distributions.distribution import Distribution
from engine.distributions.empirical import Empirical
from engine.distributions.extended import ExtendedBetaBinomial, ExtendedBinomial
from engine.distributions.folded import FoldedDistribution
from engine.distributions.grouped_normal_normal import GroupedNormalNormal
from engine.distributions.hmm import (
    DiscreteHMM,
    GammaGaussianHMM,
    GaussianHMM,
    GaussianMRF,
    IndependentHMM,
    LinearHMM,
)
from engine.distributions.improper_uniform import ImproperUniform
from engine.distributions.kl import kl_divergence, register_kl
from engine.distributions.lkj import LKJ
from engine.distributions.log_normal_negative_binomial import LogNormalNegativeBinomial
from engine.distributions.logistic import Logistic, SkewLogistic
from engine.distributions.mixture import MaskedMixture
from engine.distributions.multivariate_studentt import MultivariateStudentT
from engine.distributions.nan_masked import NanMaskedMultivariateNormal, NanMaskedNormal
from engine.distributions.one_one_matching import OneOneMatching
from engine.distributions.one_two_matching import OneTwoMatching
from engine.distributions.ordered_logistic import OrderedLogistic
from engine.distributions.polya_gamma import TruncatedPolyaGamma
from engine.distributions.projected_normal import ProjectedNormal
from engine.distributions.rejector import Rejector
from engine.distributions.relaxed_straight_through import (
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategoricalStraightThrough,
)
from engine.distributions.score_parts import ScoreParts
from engine.distributions.sine_bivariate_von_mises import SineBivariateVonMises
from engine.distributions.sine_skewed import SineSkewed
from engine.distributions.soft_laplace import SoftLaplace
from engine.distributions.spanning_tree import SpanningTree
from engine.distributions.stable import Stable, StableWithLogProb
from engine.distributions.torch import ExponentialFamily
from engine.distributions.torch_distribution import (
    ExpandedDistribution,
    MaskedDistribution,
    TorchDistribution,
    TorchDistributionMixin,
)
from engine.distributions.torch_transform import ComposeTransformModule, TransformModule
from engine.distributions.torch_wrappers import *  # noqa: F403  (one class per torch distribution)
from engine.distributions.torch_wrappers import __all__ as _wrapped
from engine.distributions.transforms import biject_to, transform_to
from engine.distributions.transport_mvn import AVFMultivariateNormal, OMTMultivariateNormal
from engine.distributions.unit import Unit
from engine.distributions.validation import (
    enable_validation,
    is_validation_enabled,
    validation_enabled,
)
from engine.distributions.von_mises_3d import VonMises3D
from engine.distributions.zero_inflated import (
    ZeroInflatedDistribution,
    ZeroInflatedNegativeBinomial,
    ZeroInflatedPoisson,
)

__all__ = [
    "BetaBinomial",
    "CoalescentRateLikelihood",
    "CoalescentTimes",
    "CoalescentTimesWithRate",
    "ComposeTransformModule",
    "ConditionalDistribution",
    "ConditionalTransform",
    "ConditionalTransformModule",
    "ConditionalTransformedDistribution",
    "Delta",
    "DirichletMultinomial",
    "Distribution",
    "Empirical",
    "ExpandedDistribution",
    "ExponentialFamily",
    "FoldedDistribution",
    "GammaPoisson",
    "GaussianScaleMixture",
    "ImproperUniform",
    "MaskedDistribution",
    "MaskedMixture",
    "MixtureOfDiagNormals",
    "MixtureOfDiagNormalsSharedCovariance",
    "NanMaskedMultivariateNormal",
    "NanMaskedNormal",
    "ProjectedNormal",
    "RelaxedBernoulliStraightThrough",
    "RelaxedOneHotCategoricalStraightThrough",
    "ScoreParts",
    "TorchDistribution",
    "TorchDistributionMixin",
    "TransformModule",
    "Unit",
    "ZeroInflatedDistribution",
    "ZeroInflatedNegativeBinomial",
    "ZeroInflatedPoisson",
    "biject_to",
    "constraints",
    "enable_validation",
    "is_validation_enabled",
    "kl",
    "kl_divergence",
    "register_kl",
    "transform_to",
    "transforms",
    "validation_enabled",
]
__all__ += [
    "LKJ",
    "AVFMultivariateNormal",
    "AffineBeta",
    "AsymmetricLaplace",
    "DiscreteHMM",
    "ExtendedBetaBinomial",
    "ExtendedBinomial",
    "GammaGaussianHMM",
    "GaussianHMM",
    "GaussianMRF",
    "GroupedNormalNormal",
    "IndependentHMM",
    "LinearHMM",
    "LogNormalNegativeBinomial",
    "Logistic",
    "MultivariateStudentT",
    "OMTMultivariateNormal",
    "OneOneMatching",
    "OneTwoMatching",
    "OrderedLogistic",
    "Rejector",
    "SineBivariateVonMises",
    "SineSkewed",
    "SkewLogistic",
    "SoftAsymmetricLaplace",
    "SoftLaplace",
    "SpanningTree",
    "Stable",
    "StableWithLogProb",
    "TruncatedPolyaGamma",
    "VonMises3D",
]
__all__ += _wrapped
__all__.sort()
