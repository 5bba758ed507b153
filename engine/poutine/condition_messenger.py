"""Pyro's import path ``pyro.poutine.condition_messenger``: :class:`ConditionMessenger`, the
handler behind ``poutine.condition`` (the code lives in :mod:`engine.poutine.conditioning`).

As Pyro's effect-handlers tutorial uses it: the sites named in ``data`` are observed.

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.poutine.condition_messenger import ConditionMessenger
>>> from engine.poutine.trace_messenger import TraceMessenger
>>> with TraceMessenger() as tracer, ConditionMessenger(data={"z": torch.tensor(1.0)}):
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
>>> z, tracer.trace.nodes["z"]["is_observed"]
(tensor(1.), True)
"""

from engine.poutine.conditioning import ConditionMessenger

__all__ = ["ConditionMessenger"]
