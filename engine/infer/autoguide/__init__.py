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
from engine.infer.autoguide import guides, initialization
from engine.infer.autoguide.discrete import AutoDiscreteParallel
from engine.infer.autoguide.effect import (
    AutoHierarchicalNormalMessenger,
    AutoMessenger,
    AutoNormalMessenger,
    AutoRegressiveMessenger,
)

# The guide classes are listed once, in ``guides`` (the module path Pyro users import them from),
# the init strategies in ``initialization``; the package re-exports both lists and adds the rest.
from engine.infer.autoguide.guides import *  # noqa: F403
from engine.infer.autoguide.initialization import *  # noqa: F403

__all__ = [
    "AutoDiscreteParallel",
    "AutoGuideError",
    "AutoHierarchicalNormalMessenger",
    "AutoMessenger",
    "AutoNormalMessenger",
    "AutoRegressiveMessenger",
]
__all__ += guides.__all__ + initialization.__all__
__all__.sort()
