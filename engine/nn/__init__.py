"""``engine.nn``: Pyro's ``pyro.nn``: module classes for Bayesian treatment of ``torch.nn``
models, and the networks normalizing flows use.

``PyroModule`` (and ``PyroModule[nn.Linear]`` for any torch class) makes a module's attributes
params and sample sites named by their attribute path; ``PyroParam`` declares a constrained
param, ``PyroSample`` a prior. :mod:`engine.nn.module` has the details. ``AutoRegressiveNN`` and
``ConditionalAutoRegressiveNN`` (MADE) feed autoregressive flows; ``DenseNN`` and
``ConditionalDenseNN`` feed coupling and conditional flows.

>>> import torch, engine, engine.distributions as dist
>>> from engine.nn import DenseNN, PyroModule, PyroSample
>>> linear = PyroModule[torch.nn.Linear](3, 1)
>>> linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 3]).to_event(2))
>>> isinstance(linear, torch.nn.Linear), linear(torch.ones(2, 3)).shape
(True, torch.Size([2, 1]))
>>> DenseNN(2, [4], param_dims=[3])(torch.zeros(2)).shape
torch.Size([3])
"""

from engine.nn import module
from engine.nn.auto_reg_nn import AutoRegressiveNN, ConditionalAutoRegressiveNN, MaskedLinear
from engine.nn.dense_nn import ConditionalDenseNN, DenseNN
from engine.nn.module import *  # noqa: F403

# ``engine.nn.module`` lists the module classes once; the package adds the networks.
__all__ = [
    "AutoRegressiveNN",
    "ConditionalAutoRegressiveNN",
    "ConditionalDenseNN",
    "DenseNN",
    "MaskedLinear",
    *module.__all__,
]
