"""``engine.optim``: Pyro-style optimizer wrappers over the param store, one fused step each.

``Adam({"lr": 0.01})`` and its siblings (every ``torch.optim`` optimizer but LBFGS),
``ClippedAdam``, the LR schedulers (every ``torch.optim.lr_scheduler`` class, e.g.
``ExponentialLR``), and the generic ``PyroOptim`` and ``PyroLRScheduler``;
``engine.optim.multi`` holds Pyro's ``MultiOptimizer`` family (stepped with the loss itself).
An optimizer is called as ``optim(params)`` on unconstrained param-store leaves with gradients;
it saves and loads its state by param name.

>>> import torch, engine, engine.optim as optim
>>> engine.clear_param_store()
>>> loc = engine.param("loc", torch.zeros(3)).unconstrained()
>>> adam = optim.Adam({"lr": 0.1})
>>> loc.grad = torch.ones(3)
>>> adam([loc])
>>> loc.detach()
tensor([-0.1000, -0.1000, -0.1000])
>>> engine.clear_param_store()
"""

from engine.errors import OptimError
from engine.optim import multi
from engine.optim.named_optimizers import TORCH_OPTIMIZERS, ClippedAdam
from engine.optim.optimizer import PyroOptim
from engine.optim.schedulers import TORCH_SCHEDULERS, PyroLRScheduler

globals().update(TORCH_OPTIMIZERS)
globals().update(TORCH_SCHEDULERS)

__all__ = [
    "ClippedAdam",
    "OptimError",
    "PyroLRScheduler",
    "PyroOptim",
    "multi",
    *TORCH_OPTIMIZERS,
    *TORCH_SCHEDULERS,
]
