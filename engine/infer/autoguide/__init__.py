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
from engine.infer.autoguide import guides
from engine.infer.autoguide.discrete import AutoDiscreteParallel
from engine.infer.autoguide.effect import (
    AutoHierarchicalNormalMessenger,
    AutoMessenger,
    AutoNormalMessenger,
    AutoRegressiveMessenger,
)

# The guide classes are listed once, in ``guides`` (the module path Pyro users import them from);
# the package re-exports that list and adds what ``guides`` does not hold.
from engine.infer.autoguide.guides import *  # noqa: F403
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

__all__ = [
    "AutoDiscreteParallel",
    "AutoGuideError",
    "AutoHierarchicalNormalMessenger",
    "AutoMessenger",
    "AutoNormalMessenger",
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
__all__ += guides.__all__
__all__.sort()
