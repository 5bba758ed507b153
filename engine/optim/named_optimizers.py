"""The named optimizer wrappers: ``engine.optim.Adam``, ``SGD``, ... one per optimizer in
``torch.optim`` (found by looping over it, so a newer torch brings its new optimizers), plus
``ClippedAdam``. Each is a :class:`~engine.optim.optimizer.PyroOptim` built Pyro-style:
``Adam({"lr": 0.01, "betas": (0.9, 0.999)})``.

``LBFGS`` is left out, as Pyro leaves it out: its step re-evaluates the loss through a closure
several times, which an SVI step (one loss, one gradient, one update) cannot give it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.optim import Optimizer

from engine.optim import clipped_adam
from engine.optim.optimizer import OptimArgs, PyroOptim


class NamedOptim(PyroOptim):
    """A :class:`PyroOptim` over the torch optimizer class ``torch_optimizer``.

    >>> class MySGD(NamedOptim):
    ...     torch_optimizer = torch.optim.SGD
    >>> MySGD({"lr": 0.1})
    MySGD({'lr': 0.1}) over 0 params in 0 groups
    """

    torch_optimizer: ClassVar[type[Optimizer]]

    def __init__(self, optim_args: OptimArgs, clip_args: OptimArgs | None = None):
        super().__init__(self.torch_optimizer, optim_args, clip_args)


class ClippedAdam(NamedOptim):
    """Pyro's ``ClippedAdam``: Adam with gradient clamping (``clip_norm``, default 10) and a
    learning rate multiplied by ``lrd`` every step (see :mod:`engine.optim.clipped_adam`).

    >>> ClippedAdam({"lr": 0.01, "clip_norm": 5.0, "lrd": 0.999})
    ClippedAdam({'lr': 0.01, 'clip_norm': 5.0, 'lrd': 0.999}) over 0 params in 0 groups
    """

    torch_optimizer = clipped_adam.ClippedAdam


def _named(name: str, optimizer: type[Optimizer]) -> type[NamedOptim]:
    doc = (
        f"Pyro-style wrapper of :class:`torch.optim.{name}`: ``{name}(optim_args, "
        "clip_args=None)``, with ``optim_args`` a dict of its keyword arguments or a function "
        "of the param name returning one (see :class:`~engine.optim.optimizer.PyroOptim`).\n\n"
        f">>> {name}({{'lr': 0.01}})\n{name}({{'lr': 0.01}}) over 0 params in 0 groups\n"
    )
    attributes = {"torch_optimizer": optimizer, "__doc__": doc, "__module__": __name__}
    return type(name, (NamedOptim,), {**attributes, "__qualname__": name})


TORCH_OPTIMIZERS: dict[str, type[NamedOptim]] = {
    name: _named(name, cls)
    for name, cls in vars(torch.optim).items()
    if isinstance(cls, type)
    and issubclass(cls, Optimizer)
    and cls not in (Optimizer, torch.optim.LBFGS)
}
globals().update(TORCH_OPTIMIZERS)
