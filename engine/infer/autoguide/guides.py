"""``engine.infer.autoguide.guides``: the module path Pyro users import the guide classes from
(``from pyro.infer.autoguide.guides import AutoNormalizingFlow``); the classes live in their own
modules.

>>> from engine.infer.autoguide.guides import AutoNormal
>>> AutoNormal.__module__
'engine.infer.autoguide.normal'
"""

from engine.infer.autoguide.continuous import AutoContinuous
from engine.infer.autoguide.delta import AutoDelta
from engine.infer.autoguide.flows import AutoIAFNormal, AutoNormalizingFlow
from engine.infer.autoguide.gaussian import AutoGaussian
from engine.infer.autoguide.guide import AutoGuide
from engine.infer.autoguide.guide_list import AutoCallable, AutoGuideList
from engine.infer.autoguide.laplace import AutoLaplaceApproximation
from engine.infer.autoguide.multivariate import (
    AutoDiagonalNormal,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
)
from engine.infer.autoguide.normal import AutoNormal
from engine.infer.autoguide.structured import AutoStructured

__all__ = [
    "AutoCallable",
    "AutoContinuous",
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoGaussian",
    "AutoGuide",
    "AutoGuideList",
    "AutoIAFNormal",
    "AutoLaplaceApproximation",
    "AutoLowRankMultivariateNormal",
    "AutoMultivariateNormal",
    "AutoNormal",
    "AutoNormalizingFlow",
    "AutoStructured",
]
