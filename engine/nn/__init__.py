"""``engine.nn``: Pyro's ``pyro.nn`` module classes, for Bayesian treatment of ``torch.nn`` models.

``PyroModule`` (and ``PyroModule[nn.Linear]`` for any torch class) makes a module's attributes
params and sample sites named by their attribute path; ``PyroParam`` declares a constrained
param, ``PyroSample`` a prior. :mod:`engine.nn.module` has the details.

>>> import torch, engine, engine.distributions as dist
>>> from engine.nn import PyroModule, PyroSample
>>> linear = PyroModule[torch.nn.Linear](3, 1)
>>> linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 3]).to_event(2))
>>> isinstance(linear, torch.nn.Linear), linear(torch.ones(2, 3)).shape
(True, torch.Size([2, 1]))
"""

from engine.nn.declarations import PyroParam, PyroSample
from engine.nn.module import (
    PyroModule,
    PyroModuleList,
    clear,
    pyro_method,
    to_pyro_module_,
)

__all__ = [
    "PyroModule",
    "PyroModuleList",
    "PyroParam",
    "PyroSample",
    "clear",
    "pyro_method",
    "to_pyro_module_",
]
