"""Pyro's import path ``pyro.poutine.subsample_messenger``: :class:`SubsampleMessenger`, the plate
handler that draws mini-batch indices, which in the engine is the plate itself
(:class:`~engine.poutine.plate_messenger.PlateMessenger`, the class behind ``pyro.plate``).

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.poutine.subsample_messenger import SubsampleMessenger
>>> with SubsampleMessenger("data", size=100, subsample_size=10) as idx:
...     x = pyro.sample("x", dist.Normal(torch.zeros(100)[idx], 1.0))
>>> idx.shape, x.shape
(torch.Size([10]), torch.Size([10]))
"""

from engine.poutine.plate_messenger import PlateMessenger as SubsampleMessenger

__all__ = ["SubsampleMessenger"]
