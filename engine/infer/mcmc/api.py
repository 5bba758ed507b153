"""Pyro's import path ``pyro.infer.mcmc.api``: :class:`MCMC`, the driver that runs a kernel
(``NUTS``, ``HMC``) for warm-up and sampling (the code lives in :mod:`engine.infer.mcmc.mcmc`),
and :class:`StreamingMCMC`, which keeps running statistics instead of the draws
(:mod:`engine.infer.mcmc.streaming`).

As Pyro's GMM tutorial imports it:

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.infer.mcmc import NUTS
>>> from engine.infer.mcmc.api import MCMC
>>> def model():
...     pyro.sample("x", dist.Normal(0.0, 1.0))
>>> mcmc = MCMC(NUTS(model), num_samples=20, warmup_steps=10, disable_progbar=True)
>>> mcmc.run()
>>> mcmc.get_samples()["x"].shape
torch.Size([20])
"""

from engine.infer.mcmc.mcmc import MCMC
from engine.infer.mcmc.streaming import StreamingMCMC

__all__ = ["MCMC", "StreamingMCMC"]
