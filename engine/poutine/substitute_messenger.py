"""Pyro's import path ``pyro.poutine.substitute_messenger``: :class:`SubstituteMessenger`, the
handler behind ``poutine.substitute`` (the code lives in :mod:`engine.poutine.conditioning`).

Sample and param sites named in ``data`` take those values and stay latent.

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.poutine.substitute_messenger import SubstituteMessenger
>>> from engine.poutine.trace_messenger import TraceMessenger
>>> with TraceMessenger() as tracer, SubstituteMessenger(data={"z": torch.tensor(2.0)}):
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
>>> z, tracer.trace.nodes["z"]["is_observed"]
(tensor(2.), False)
"""

from engine.poutine.conditioning import SubstituteMessenger

__all__ = ["SubstituteMessenger"]
