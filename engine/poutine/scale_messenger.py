"""Pyro's import path ``pyro.poutine.scale_messenger``: :class:`ScaleMessenger`, the handler
behind ``poutine.scale`` (the code lives in :mod:`engine.poutine.weighting`).

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.poutine.scale_messenger import ScaleMessenger
>>> from engine.poutine.trace_messenger import TraceMessenger
>>> with TraceMessenger() as tracer, ScaleMessenger(scale=10.0):
...     _ = pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
>>> round(tracer.trace.log_prob_sum().item(), 4)  # 10 * log N(0 | 0, 1)
-9.1894
"""

from engine.poutine.weighting import ScaleMessenger

__all__ = ["ScaleMessenger"]
