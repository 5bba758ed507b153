"""Pyro's ``pyro.distributions.torch``: the wrapped ``torch.distributions`` classes by name.

Code written for Pyro imports ``from pyro.distributions.torch import Normal`` or checks
``isinstance(d, pyro.distributions.torch.ExponentialFamily)``; here the same names are the engine's
wrapped classes (torch's class with Pyro's methods), the very objects ``engine.distributions``
exports. ``ExponentialFamily`` is torch's abstract base of the exponential families, with the
mixin, for user subclasses.

>>> import engine.distributions as dist
>>> from engine.distributions.torch import Normal
>>> Normal is dist.Normal
True
"""

from __future__ import annotations

import torch

from engine.distributions.torch_distribution import TorchDistributionMixin as TorchDistributionMixin
from engine.distributions.torch_wrappers import *  # noqa: F403  (the names themselves)
from engine.distributions.torch_wrappers import __all__ as _wrapped
from engine.distributions.torch_wrappers import wrap_torch_distribution

ExponentialFamily = wrap_torch_distribution(torch.distributions.ExponentialFamily)
ExponentialFamily.__module__ = __name__

__all__ = sorted([*_wrapped, "ExponentialFamily", "TorchDistributionMixin"])
