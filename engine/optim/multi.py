"""Pyro's ``pyro.optim.multi``: optimizers that take the loss itself rather than gradients
already stored in ``.grad``, so they can differentiate it as they need (several optimizers on
one loss, Newton steps with second derivatives).

The interface: ``optim.step(loss, params)`` with ``params`` a dict from param name to its
unconstrained value in the param store; the values are updated in place. Pyro's
custom-objectives tutorial steps two params with two optimizers at once:

>>> import torch, engine as pyro, engine.optim
>>> pyro.clear_param_store()
>>> a, b = pyro.param("a", torch.tensor(0.0)), pyro.param("b", torch.tensor(0.0))
>>> adam, sgd = engine.optim.Adam({"lr": 0.1}), engine.optim.SGD({"lr": 0.01})
>>> optim = MixedMultiOptimizer([(["a"], adam), (["b"], sgd)])
>>> loss = (a - 1) ** 2 + (b - 1) ** 2
>>> optim.step(loss, {"a": pyro.param("a"), "b": pyro.param("b")})
>>> round(pyro.param("a").item(), 4), round(pyro.param("b").item(), 4)
(0.1, 0.02)
>>> pyro.clear_param_store()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from engine.errors import OptimError
from engine.ops.newton import newton_step
from engine.optim.optimizer import PyroOptim

Params = dict[str, torch.Tensor]


class MultiOptimizer:
    """Base class: subclasses define :meth:`get_step` (the updated values, differentiable)
    or override :meth:`step` (update in place)."""

    def step(self, loss: torch.Tensor, params: Params) -> None:
        """Update ``params`` (name -> unconstrained value) in place to lower ``loss``; the new
        values are detached from the loss's graph."""
        updated = self.get_step(loss, params)
        with torch.no_grad():
            for name, value in params.items():
                value.copy_(updated[name].detach())

    def get_step(self, loss: torch.Tensor, params: Params) -> Params:
        """The values ``params`` would take after one step, still differentiable."""
        raise NotImplementedError(
            f"{type(self).__name__} must define get_step(loss, params) or step(loss, params)"
        )


class PyroMultiOptimizer(MultiOptimizer):
    """A :class:`~engine.optim.PyroOptim` (``Adam({...})``, ``SGD({...})``, ...) behind the
    :class:`MultiOptimizer` interface: the gradients of ``loss`` are taken with
    ``torch.autograd.grad`` (keeping the graph, so other optimizers can differentiate the same
    loss), put into ``.grad``, and the wrapped optimizer steps."""

    def __init__(self, optim: PyroOptim):
        if not isinstance(optim, PyroOptim):
            raise TypeError(
                f"PyroMultiOptimizer wraps an engine.optim optimizer such as "
                f"engine.optim.Adam({{'lr': 0.01}}), got {type(optim).__name__}"
            )
        self.optim = optim

    def step(self, loss: torch.Tensor, params: Params) -> None:
        values = list(params.values())
        grads = torch.autograd.grad(loss, values, create_graph=True)
        for value, grad in zip(values, grads, strict=True):
            value.grad = grad.detach()
        self.optim(values)


class TorchMultiOptimizer(PyroMultiOptimizer):
    """A torch optimizer class with its arguments (``TorchMultiOptimizer(torch.optim.Adam,
    {"lr": 0.1})``) behind the :class:`MultiOptimizer` interface."""

    def __init__(self, optim_constructor: Callable[..., torch.optim.Optimizer], optim_args: Any):
        super().__init__(PyroOptim(optim_constructor, optim_args))


class MixedMultiOptimizer(MultiOptimizer):
    """Different optimizers for different params: ``parts`` is a list of ``(names, optim)``
    pairs, ``optim`` a :class:`MultiOptimizer` or a :class:`~engine.optim.PyroOptim`. A name
    given to two optimizers is an error."""

    def __init__(self, parts: Sequence[tuple[Sequence[str], MultiOptimizer | PyroOptim]]):
        owner: dict[str, MultiOptimizer] = {}
        self.parts: list[tuple[list[str], MultiOptimizer]] = []
        for names, optim in parts:
            if isinstance(optim, PyroOptim):
                optim = PyroMultiOptimizer(optim)
            if not isinstance(optim, MultiOptimizer):
                raise TypeError(
                    f"MixedMultiOptimizer: the optimizer for {list(names)} must be a "
                    f"MultiOptimizer or an engine.optim optimizer, got {type(optim).__name__}"
                )
            for name in names:
                if name in owner:
                    raise ValueError(
                        f"MixedMultiOptimizer: param {name!r} is given to two optimizers "
                        f"({owner[name]!r} and {optim!r}); give each param to one."
                    )
                owner[name] = optim
            self.parts.append((list(names), optim))

    def _part(self, names: list[str], params: Params) -> Params:
        missing = [name for name in names if name not in params]
        if missing:
            raise OptimError(
                f"MixedMultiOptimizer: params {missing} have an optimizer but are not in the "
                f"params passed to step (given: {sorted(params)})"
            )
        return {name: params[name] for name in names}

    def step(self, loss: torch.Tensor, params: Params) -> None:
        for names, optim in self.parts:
            optim.step(loss, self._part(names, params))

    def get_step(self, loss: torch.Tensor, params: Params) -> Params:
        updated: Params = {}
        for names, optim in self.parts:
            updated.update(optim.get_step(loss, self._part(names, params)))
        return updated


class Newton(MultiOptimizer):
    """Newton's method on batches of small variables (each param shaped ``batch + (d,)``),
    by :func:`engine.ops.newton.newton_step`. ``trust_radii`` maps param names to a trust
    radius (a step at most that long); params not named take the plain Newton step.
    :meth:`get_step` is differentiable; :meth:`step` detaches the new values.

    >>> import torch
    >>> x = torch.tensor([[3.0]], requires_grad=True)
    >>> Newton().step(((x - 1.0) ** 2).sum(), {"x": x})
    >>> x.tolist()
    [[1.0]]
    """

    def __init__(self, trust_radii: dict[str, float] | None = None):
        self.trust_radii = dict(trust_radii or {})

    def get_step(self, loss: torch.Tensor, params: Params) -> Params:
        return {
            name: newton_step(loss, value, self.trust_radii.get(name))[0]
            for name, value in params.items()
        }


__all__ = [
    "MixedMultiOptimizer",
    "MultiOptimizer",
    "Newton",
    "PyroMultiOptimizer",
    "TorchMultiOptimizer",
]
