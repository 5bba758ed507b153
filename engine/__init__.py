"""The engine: an effect-handler probabilistic programming language on PyTorch with Pyro's API.

``import engine as pyro`` and ``import engine.distributions as dist`` make Pyro code run as is.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def coin(flips):
...     p = pyro.sample("p", dist.Beta(2.0, 2.0))
...     with pyro.plate("flips", len(flips)):
...         pyro.sample("obs", dist.Bernoulli(p), obs=flips)
>>> trace = pyro.poutine.trace(coin).get_trace(torch.tensor([1.0, 0.0, 1.0]))
>>> trace.stochastic_nodes, trace.observation_nodes
(['p'], ['obs'])
"""

from engine import distributions, infer, nn, ops, optim, poutine, util
from engine.distributions.validation import (
    enable_validation,
    is_validation_enabled,
    validation_enabled,
)
from engine.infer.render import render_model
from engine.params import get_param_store
from engine.poutine.handlers import condition, do, markov
from engine.primitives import (
    clear_param_store,
    deterministic,
    factor,
    module,
    param,
    plate,
    plate_stack,
    random_module,
    sample,
    subsample,
)
from engine.rng import set_rng_seed

__version__ = "0.1.0"

__all__ = [
    "clear_param_store",
    "condition",
    "deterministic",
    "distributions",
    "do",
    "enable_validation",
    "factor",
    "get_param_store",
    "infer",
    "is_validation_enabled",
    "markov",
    "module",
    "nn",
    "ops",
    "optim",
    "param",
    "plate",
    "plate_stack",
    "poutine",
    "random_module",
    "render_model",
    "sample",
    "set_rng_seed",
    "subsample",
    "util",
    "validation_enabled",
]
