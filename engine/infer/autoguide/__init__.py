"""``engine.infer.autoguide``: guides built automatically from a model, with Pyro's names.

``AutoNormal`` and ``AutoDelta`` give each latent site its own parameters (and subsample local
sites with their plates); ``AutoDiagonalNormal``, ``AutoMultivariateNormal``,
``AutoLowRankMultivariateNormal`` and ``AutoLaplaceApproximation`` place one distribution over
the flat vector of all latent sites; ``AutoGuideList`` combines guides for different sites. The
``init_to_*`` strategies choose where they start.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer.autoguide import AutoNormal, init_to_median
>>> engine.clear_param_store()
>>> def model(x):
...     mu = engine.sample("mu", dist.Normal(0.0, 10.0))
...     with engine.plate("data", len(x)):
...         engine.sample("x", dist.Normal(mu, 1.0), obs=x)
>>> guide = AutoNormal(model, init_loc_fn=init_to_median, model_args=(torch.zeros(5),))
>>> sorted(engine.get_param_store())
['AutoNormal.locs.mu', 'AutoNormal.scales.mu']
"""

from engine.errors import AutoGuideError
from engine.infer.autoguide.continuous import AutoContinuous
from engine.infer.autoguide.delta import AutoDelta
from engine.infer.autoguide.discrete import AutoDiscreteParallel
from engine.infer.autoguide.effect import (
    AutoHierarchicalNormalMessenger,
    AutoMessenger,
    AutoNormalMessenger,
    AutoRegressiveMessenger,
)
from engine.infer.autoguide.flows import AutoIAFNormal, AutoNormalizingFlow
from engine.infer.autoguide.guide import AutoGuide
from engine.infer.autoguide.guide_list import AutoCallable, AutoGuideList
from engine.infer.autoguide.initialization import (
    InitMessenger,
    init_to_feasible,
    init_to_generated,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)
from engine.infer.autoguide.laplace import AutoLaplaceApproximation
from engine.infer.autoguide.multivariate import (
    AutoDiagonalNormal,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
)
from engine.infer.autoguide.normal import AutoNormal

__all__ = [
    "AutoCallable",
    "AutoContinuous",
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoDiscreteParallel",
    "AutoGuide",
    "AutoGuideError",
    "AutoGuideList",
    "AutoHierarchicalNormalMessenger",
    "AutoIAFNormal",
    "AutoLaplaceApproximation",
    "AutoLowRankMultivariateNormal",
    "AutoMessenger",
    "AutoMultivariateNormal",
    "AutoNormal",
    "AutoNormalMessenger",
    "AutoNormalizingFlow",
    "AutoRegressiveMessenger",
    "InitMessenger",
    "init_to_feasible",
    "init_to_generated",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
]
