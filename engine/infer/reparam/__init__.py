"""``engine.infer.reparam``: reparameterizers for ``poutine.reparam``.

Each rewrites one kind of sample site into auxiliary sites and a deterministic function of them,
for a geometry that inference handles better (non-centred hierarchies for HMC, Gumbel noise for
relaxed categoricals, a learned flow for NeuTra, conditionally Normal Stable sites, a conjugate
posterior drawn directly). ``strategies`` chooses them automatically.

>>> from engine.infer.reparam import LocScaleReparam, Reparam
>>> isinstance(LocScaleReparam(0.0), Reparam)
True
"""

from engine.infer.reparam.basis import DiscreteCosineReparam, HaarReparam
from engine.infer.reparam.conjugate import ConjugateReparam
from engine.infer.reparam.hmm import LinearHMMReparam
from engine.infer.reparam.loc_scale import LocScaleReparam
from engine.infer.reparam.neutra import NeuTraReparam
from engine.infer.reparam.projected_normal import ProjectedNormalReparam
from engine.infer.reparam.reparam import Reparam
from engine.infer.reparam.softmax import GumbelSoftmaxReparam, SoftmaxReparam
from engine.infer.reparam.split import SplitReparam
from engine.infer.reparam.stable import (
    LatentStableReparam,
    StableReparam,
    SymmetricStableReparam,
)
from engine.infer.reparam.strategies import AutoReparam, MinimalReparam, Strategy
from engine.infer.reparam.structured import StructuredReparam
from engine.infer.reparam.studentt import StudentTReparam
from engine.infer.reparam.transform import TransformReparam
from engine.infer.reparam.unit_jacobian import UnitJacobianReparam

__all__ = [
    "AutoReparam",
    "ConjugateReparam",
    "DiscreteCosineReparam",
    "GumbelSoftmaxReparam",
    "HaarReparam",
    "LatentStableReparam",
    "LinearHMMReparam",
    "LocScaleReparam",
    "MinimalReparam",
    "NeuTraReparam",
    "ProjectedNormalReparam",
    "Reparam",
    "SoftmaxReparam",
    "SplitReparam",
    "StableReparam",
    "Strategy",
    "StructuredReparam",
    "StudentTReparam",
    "SymmetricStableReparam",
    "TransformReparam",
    "UnitJacobianReparam",
]
