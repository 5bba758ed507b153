"""Pyro's import path ``pyro.poutine.uncondition_messenger``: :class:`UnconditionMessenger`,
the handler behind ``poutine.uncondition`` (the code lives in
:mod:`engine.poutine.conditioning`).

Observed sites are sampled again, as latent sites.

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.poutine.uncondition_messenger import UnconditionMessenger
>>> from engine.poutine.trace_messenger import TraceMessenger
>>> with TraceMessenger() as tracer, UnconditionMessenger():
...     x = pyro.sample("x", dist.Normal(100.0, 1e-3), obs=torch.tensor(0.0))
>>> round(float(x)), tracer.trace.nodes["x"]["is_observed"]
(100, False)
"""

from engine.poutine.conditioning import UnconditionMessenger

__all__ = ["UnconditionMessenger"]
