"""Every concrete ``torch.distributions`` class, re-made as a subclass carrying Pyro's mixin.

``Normal`` here is ``class Normal(_TorchHooks, torch.distributions.Normal, TorchDistributionMixin)``
with one added ``__init__`` that forwards to torch's and rewords its validation errors. Building
them in a loop keeps the list complete for whatever torch version is installed; each keeps
torch's signature and docstring, so ``help(dist.Normal)`` reads like torch's.

>>> import torch
>>> d = Normal(0.0, 1.0)
>>> isinstance(d, torch.distributions.Normal), isinstance(d, TorchDistributionMixin)
(True, True)
"""

from __future__ import annotations

import re

import torch

from engine.distributions.torch_distribution import (
    TorchDistributionMixin,
    _TorchHooks,
    register_wrapper,
    translating_init,
)
from engine.distributions.torch_transform import clear_transform_cache

# torch's examples print random draws: shown in our docstrings without their prompts, so doctest
# does not collect them as tests that could never pass.
_EXAMPLE_PROMPT = re.compile(r"^(\s*)>>> ", re.MULTILINE)

# Abstract bases: nothing to construct, and ``Distribution`` is Pyro's name for its own base.
_ABSTRACT = (torch.distributions.Distribution, torch.distributions.ExponentialFamily)


def clear_cache(self: torch.distributions.TransformedDistribution) -> None:
    """Forget the cached ``(x, y)`` pair of each transform (Pyro's ``clear_cache``: a flow
    trained in a loop calls it after each optimizer step).

    >>> flow = TransformedDistribution(Normal(0.0, 1.0), [torch.distributions.ExpTransform(1)])
    >>> y = flow.rsample(); flow.clear_cache()
    >>> flow.transforms[0]._cached_x_y
    (None, None)
    """
    for transform in self.transforms:
        clear_transform_cache(transform)


def wrap_torch_distribution(torch_cls: type) -> type:
    """Make the engine's subclass of one torch distribution class.

    >>> wrap_torch_distribution(torch.distributions.Gamma).__mro__[2] is torch.distributions.Gamma
    True
    """
    namespace = {
        "__init__": translating_init(torch_cls.__init__),
        "__module__": __name__,
        "__qualname__": torch_cls.__name__,
        "__doc__": (
            f"torch.distributions.{torch_cls.__name__} with Pyro's methods (``expand_by``, "
            f"``to_event``, ``mask``, ``shape``, calling to draw).\n\n"
            + _EXAMPLE_PROMPT.sub(r"\1", torch_cls.__doc__ or "")
        ),
    }
    if issubclass(torch_cls, torch.distributions.TransformedDistribution):
        namespace["clear_cache"] = clear_cache
    return type(torch_cls.__name__, (_TorchHooks, torch_cls, TorchDistributionMixin), namespace)


__all__: list[str] = []
for _name in torch.distributions.__all__:
    _torch_cls = getattr(torch.distributions, _name)
    if (
        isinstance(_torch_cls, type)
        and issubclass(_torch_cls, torch.distributions.Distribution)
        and _torch_cls not in _ABSTRACT
    ):
        _wrapper = wrap_torch_distribution(_torch_cls)
        register_wrapper(_torch_cls, _wrapper)
        globals()[_name] = _wrapper
        __all__.append(_name)
__all__.sort()
