"""LR schedulers as optimizers: ``PyroLRScheduler`` and one named wrapper per class in
``torch.optim.lr_scheduler``, Pyro-style::

    scheduler = ExponentialLR({"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1},
                               "gamma": 0.9})
    svi = SVI(model, guide, scheduler, Trace_ELBO())
    for epoch in range(epochs):
        svi.step(data)
        scheduler.step()          # ReduceLROnPlateau: scheduler.step(metric)

A scheduler acts on a whole torch optimizer, so each param group (params with equal optimizer
arguments) gets its own torch optimizer and scheduler; usually there is one. A group created
after the others starts its schedule from the beginning, as each param's scheduler does in Pyro.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from engine.errors import OptimError
from engine.optim.implementation import keyword_names
from engine.optim.optimizer import OptimArgs, ParamGroup, PyroOptim
from engine.optim.state import snapshot


class PyroLRScheduler(PyroOptim):
    """Pyro's scheduler wrapper. ``optim_args`` holds ``"optimizer"`` (a torch optimizer class),
    ``"optim_args"`` (its arguments: a dict, or a function of the param name) and the
    scheduler's own keyword arguments. ``SequentialLR`` and ``ChainedScheduler`` take
    ``"schedulers"`` as functions of the optimizer, e.g.
    ``functools.partial(torch.optim.lr_scheduler.StepLR, step_size=10)``.

    >>> import engine
    >>> engine.clear_param_store()
    >>> loc = engine.param("loc", torch.zeros(1)).unconstrained()
    >>> scheduler = PyroLRScheduler(
    ...     torch.optim.lr_scheduler.StepLR,
    ...     {"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}, "step_size": 1, "gamma": 0.5},
    ... )
    >>> for epoch in range(2):
    ...     loc.grad = torch.ones(1)
    ...     scheduler([loc])
    ...     scheduler.step()
    >>> loc.item()
    -1.5
    >>> engine.clear_param_store()
    """

    def __init__(
        self,
        scheduler_constructor: Any,
        optim_args: dict[str, Any],
        clip_args: OptimArgs | None = None,
    ):
        if not isinstance(optim_args, dict) or not {"optimizer", "optim_args"} <= optim_args.keys():
            raise OptimError(
                "a scheduler takes a dict with 'optimizer' (a torch optimizer class), "
                "'optim_args' (its arguments) and the scheduler's own arguments, e.g. "
                "{'optimizer': torch.optim.SGD, 'optim_args': {'lr': 0.1}, 'gamma': 0.9}; got "
                f"{optim_args!r:.200}"
            )
        scheduler_args = dict(optim_args)
        optimizer = scheduler_args.pop("optimizer")
        inner_args = scheduler_args.pop("optim_args")
        super().__init__(optimizer, inner_args, clip_args)
        self.scheduler_constructor = scheduler_constructor
        self.scheduler_args = scheduler_args
        self._schedulers: dict[str, Any] = {}

    def step(self, *args: Any, **kwargs: Any) -> None:
        """Advance every schedule by one epoch; the arguments go to the torch scheduler's
        ``step`` (``ReduceLROnPlateau`` takes the metric)."""
        for scheduler in self._schedulers.values():
            scheduler.step(*args, **kwargs)

    def _build_scheduler(self, optimizer: Optimizer) -> Any:
        kwargs = dict(self.scheduler_args)
        if "schedulers" in kwargs:
            kwargs["schedulers"] = [
                s if isinstance(s, LRScheduler) else s(optimizer) for s in kwargs["schedulers"]
            ]
        # ChainedScheduler takes the optimizer second, as a keyword; every torch scheduler names
        # it "optimizer". Pyro passes it first, positionally, which other constructors may expect.
        if "optimizer" in keyword_names(self.scheduler_constructor):
            return self.scheduler_constructor(optimizer=optimizer, **kwargs)
        return self.scheduler_constructor(optimizer, **kwargs)

    def _open_group(self, key: str, params: list[torch.Tensor], args: dict[str, Any]) -> ParamGroup:
        optimizer = self.optim_constructor(params, **args)
        self._optimizers.append(optimizer)
        self._schedulers[key] = self._build_scheduler(optimizer)
        return ParamGroup(key, optimizer, optimizer.param_groups[0])

    def _close_group(self, group: ParamGroup) -> None:
        self._optimizers[:] = [o for o in self._optimizers if o is not group.optimizer]
        del self._schedulers[group.key]

    def _restore_group(self, group: ParamGroup, saved: dict[str, Any]) -> None:
        super()._restore_group(group, saved)
        if "scheduler" in saved:
            self._schedulers[group.key].load_state_dict(snapshot(saved["scheduler"]))

    def _group_extras(self, group: ParamGroup) -> dict[str, Any]:
        return {"scheduler": snapshot(self._schedulers[group.key].state_dict())}


class NamedScheduler(PyroLRScheduler):
    """A :class:`PyroLRScheduler` over the torch scheduler class ``torch_scheduler``.

    >>> class Halving(NamedScheduler):
    ...     torch_scheduler = torch.optim.lr_scheduler.ExponentialLR
    >>> Halving({"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1}, "gamma": 0.5})
    Halving({'lr': 0.1}) over 0 params in 0 groups
    """

    torch_scheduler: ClassVar[type]

    def __init__(self, optim_args: dict[str, Any], clip_args: OptimArgs | None = None):
        super().__init__(self.torch_scheduler, optim_args, clip_args)


def _named(name: str, scheduler: type) -> type[NamedScheduler]:
    doc = (
        f"Pyro-style wrapper of :class:`torch.optim.lr_scheduler.{name}`: "
        f'``{name}({{"optimizer": torch.optim.SGD, "optim_args": {{"lr": 0.1}}, ...}})``, the '
        f"dots being {name}'s own arguments; call ``.step()`` once per epoch (see "
        ":class:`PyroLRScheduler`)."
    )
    attributes = {"torch_scheduler": scheduler, "__doc__": doc, "__module__": __name__}
    return type(name, (NamedScheduler,), {**attributes, "__qualname__": name})


# The abstract bases are no schedulers of their own.
_BASES = (LRScheduler, getattr(torch.optim.lr_scheduler, "_LRScheduler", LRScheduler))

TORCH_SCHEDULERS: dict[str, type[NamedScheduler]] = {
    name: _named(name, cls)
    for name, cls in vars(torch.optim.lr_scheduler).items()
    if isinstance(cls, type)
    and (issubclass(cls, LRScheduler) or name == "ReduceLROnPlateau")
    and cls not in _BASES
}
globals().update(TORCH_SCHEDULERS)
