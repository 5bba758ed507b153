"""Pyro's import path ``pyro.poutine.do_messenger``: :class:`DoMessenger`, the handler behind
``poutine.do`` (the code lives in :mod:`engine.poutine.conditioning`).

An intervention: code after the site sees the given value, the site itself is not evidence.

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.poutine.do_messenger import DoMessenger
>>> def model():
...     x = pyro.sample("x", dist.Normal(0.0, 1.0))
...     return pyro.sample("y", dist.Normal(x, 1e-4))
>>> with DoMessenger(data={"x": torch.tensor(5.0)}):
...     y = model()
>>> round(float(y))
5
"""

from engine.poutine.conditioning import DoMessenger

__all__ = ["DoMessenger"]
