"""Pyro's import path ``pyro.poutine.mask_messenger``: :class:`MaskMessenger`, the handler
behind ``poutine.mask`` (the code lives in :mod:`engine.poutine.weighting`).

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.poutine.mask_messenger import MaskMessenger
>>> from engine.poutine.trace_messenger import TraceMessenger
>>> with TraceMessenger() as tracer, MaskMessenger(mask=torch.tensor([True, False])):
...     with pyro.plate("data", 2):
...         _ = pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor([0.0, 9.0]))
>>> round(tracer.trace.log_prob_sum().item(), 4)  # only the first point counts
-0.9189
"""

from engine.poutine.weighting import MaskMessenger

__all__ = ["MaskMessenger"]
