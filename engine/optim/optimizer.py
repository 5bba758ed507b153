"""``PyroOptim``: one fused torch optimizer over every param that inference hands it.

Pyro gives each parameter its own optimizer object, so a step over 100 scalar params is 100
Python-level optimizer steps (about 15 % of Pyro's SVI step). Here params with equal optimizer
arguments share one param group of a single torch optimizer, stepped by one fused (or foreach)
kernel call per group. Params are admitted when they first appear, dropped once the param store
no longer holds them, and their state is saved and restored by param name.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer

from engine.atomic_file import content_error
from engine.errors import OptimError
from engine.optim.grad_clipping import clip_grads_
from engine.optim.implementation import fastest_flags
from engine.optim.state import (
    FORMAT,
    check_state,
    hyper_parameters,
    load_state,
    param_state_for,
    save_state,
    snapshot,
    state_misfit,
)
from engine.params import (
    MODULE_DIVIDER,
    get_param_store,
    module_from_param_with_module_name,
    user_param_name,
)

OptimArgs = dict[str, Any] | Callable[..., dict[str, Any]]

_CLIP_KEYS = frozenset({"clip_norm", "clip_value"})


@dataclass
class ParamGroup:
    """One param group of a wrapper: the params sharing optimizer arguments (``key`` names the
    arguments, device and dtype), and the torch optimizer and param-group dict holding them."""

    key: str
    optimizer: Optimizer
    torch_group: dict[str, Any]


def _check_finite(args: dict[str, Any], what: str) -> None:
    """Refuse an optimizer argument that is NaN or infinite: ``lr=inf`` would turn every
    parameter into inf or NaN at the first step.

    >>> _check_finite({"lr": 0.1, "betas": (0.9, 0.999)}, "optim_args")
    >>> try:
    ...     _check_finite({"lr": float("inf")}, "optim_args")
    ... except OptimError as error:
    ...     print(str(error)[:32])
    optim_args: 'lr' is inf; every o
    """
    for key, value in args.items():
        numbers = value if isinstance(value, list | tuple) else (value,)
        for number in numbers:
            if isinstance(number, float) and not math.isfinite(number):
                raise OptimError(
                    f"{what}: {key!r} is {value!r}; every optimizer argument must be a finite "
                    "number (for example {'lr': 0.01})."
                )


def _describe(args: OptimArgs) -> str:
    if callable(args):
        return getattr(args, "__name__", None) or repr(args)
    return repr(args)


class PyroOptim:
    """Pyro's optimizer wrapper: ``optim(params)`` steps the param-store leaves in ``params``.

    ``optim_constructor`` is a torch optimizer class (or any callable building one from a param
    list and keyword arguments); ``optim_args`` is a dict of its arguments, or a function giving
    them per param, called as Pyro calls it: ``f(module_name, param_name)`` (for a param of
    ``engine.module("net", ...)`` named ``"net$$$0.weight"``: ``("net", "0.weight")``; for a
    plain param ``"loc"``: ``("loc", "loc")``), or ``f(name)`` with ``"net.0.weight"`` when it
    takes one argument. ``clip_args`` (a dict or such a function) gives ``clip_norm`` and/or
    ``clip_value``: each param's gradient is clipped on its own, norm first, before the step.

    All params with equal arguments (and device and dtype) form one param group; all groups live
    in one torch optimizer, fused where torch has a fused kernel. Only the params passed to a call
    are stepped; one no longer in the param store when a call leaves it out is dropped with its
    state. :meth:`get_state`/:meth:`set_state` and :meth:`save`/:meth:`load` key the state by
    param name; state for params not seen yet is applied when they first appear.

    >>> import engine
    >>> engine.clear_param_store()
    >>> loc = engine.param("loc", torch.zeros(2)).unconstrained()
    >>> optim = PyroOptim(torch.optim.SGD, {"lr": 0.5})
    >>> loc.grad = torch.ones(2)
    >>> optim([loc])
    >>> loc.tolist()
    [-0.5, -0.5]
    >>> engine.clear_param_store()
    """

    def __init__(
        self,
        optim_constructor: Callable[..., Optimizer],
        optim_args: OptimArgs,
        clip_args: OptimArgs | None = None,
    ):
        if not callable(optim_constructor):
            raise OptimError(
                "optim_constructor must be a torch optimizer class such as torch.optim.Adam, "
                f"got {optim_constructor!r}"
            )
        for what, args in (("optim_args", optim_args), ("clip_args", clip_args)):
            if args is not None and not (callable(args) or isinstance(args, dict)):
                raise OptimError(
                    f"{what} must be a dict such as {{'lr': 0.01}} or a function of the param "
                    f"name returning one, got {type(args).__name__}: {args!r}"
                )
            if isinstance(args, dict):
                _check_finite(args, what)
        self.optim_constructor = optim_constructor
        self.optim_args: OptimArgs = optim_args if callable(optim_args) else dict(optim_args)
        self.clip_args: OptimArgs = (
            {} if clip_args is None else clip_args if callable(clip_args) else dict(clip_args)
        )
        self._optimizers: list[Optimizer] = []
        self._groups: dict[str, ParamGroup] = {}
        self._group_of: dict[torch.Tensor, ParamGroup] = {}
        self._clip_of: dict[torch.Tensor, tuple[float | None, float | None]] = {}
        self._flags: dict[str, dict[str, bool]] = {}
        # Saved state for params this optimizer has not seen yet, by name (Pyro semantics).
        self._pending_state: dict[str, dict[str, Any]] = {}
        self._pending_group: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        groups = len(self._groups)
        return (
            f"{type(self).__name__}({_describe(self.optim_args)}) over {len(self._group_of)} "
            f"params in {groups} group{'' if groups == 1 else 's'}"
        )

    # -- stepping ----------------------------------------------------------------------------

    def __call__(self, params: Iterable[torch.Tensor]) -> None:
        """Take one step on ``params`` (unconstrained leaves whose ``.grad`` is set; those whose
        grad is None are skipped). New params join the optimizer, keeping the others' state."""
        passed = dict.fromkeys(params)
        if not passed:
            return
        known = self._group_of
        if len(passed) != len(known) or not all(p in known for p in passed):
            self._update_membership(passed)
        # torch steps every param of a group that has a grad; hide the grads of the params this
        # call leaves out, as Pyro's per-param optimizers leave them alone.
        idle = []
        if len(known) > len(passed):
            idle = [(p, p.grad) for p in known if p not in passed and p.grad is not None]
        try:
            for p, _ in idle:
                p.grad = None
            if self._clip_of:
                self._clip(passed)
            for optimizer in self._optimizers:
                optimizer.step()
            # torch's fused kernels write the params in place without bumping their version
            # counters (foreach and per-tensor steps do bump them); bump them here so whatever
            # keys on versions sees the update: autograd's check of saved tensors, and the
            # cached (x, y) pair of a normalizing flow (engine.distributions.torch_transform).
            torch.autograd.graph.increment_version(list(passed))
        finally:
            for p, grad in idle:
                p.grad = grad

    def _clip(self, passed: dict[torch.Tensor, None]) -> None:
        by_setting: dict[tuple[float | None, float | None], list[torch.Tensor]] = {}
        for p in passed:
            setting = self._clip_of.get(p)
            if setting is not None and p.grad is not None:
                by_setting.setdefault(setting, []).append(p.grad)
        for (clip_norm, clip_value), grads in by_setting.items():
            clip_grads_(grads, clip_norm, clip_value)

    # -- membership --------------------------------------------------------------------------

    def _update_membership(self, passed: dict[torch.Tensor, None]) -> None:
        store = get_param_store()
        # Drop first: a param replaced in the store (e.g. by load) then leaves an empty group
        # behind, and its successor starts a fresh group that can take the saved hyper-parameters.
        for p in [p for p in self._group_of if p not in passed]:
            if store.param_name(p) is None:
                self._drop(p)
        new = [p for p in passed if p not in self._group_of]
        if new:
            self._admit(new, {p: store.param_name(p) for p in new})

    def _admit(self, new: list[torch.Tensor], names: dict[torch.Tensor, str | None]) -> None:
        batches: dict[str, tuple[dict[str, Any], list[torch.Tensor]]] = {}
        clips: dict[torch.Tensor, tuple[float | None, float | None]] = {}
        for p in new:
            if not isinstance(p, torch.Tensor):
                raise OptimError(
                    f"the optimizer steps tensors (unconstrained param-store leaves); got a "
                    f"{type(p).__name__}: {p!r:.100}"
                )
            args = self._args_for(p, names[p], self.optim_args, "optim_args")
            key = f"{sorted(args.items())!r} on {p.device} {p.dtype}"
            batches.setdefault(key, (args, []))[1].append(p)
            clip = self._args_for(p, names[p], self.clip_args, "clip_args")
            unknown = clip.keys() - _CLIP_KEYS
            if unknown:
                raise OptimError(
                    f"clip_args for param {names[p]!r} has unknown keys {sorted(unknown)}; it "
                    "takes 'clip_norm' and/or 'clip_value'"
                )
            if clip:
                clips[p] = (clip.get("clip_norm"), clip.get("clip_value"))
        for key, (args, batch) in batches.items():
            group = self._groups.get(key)
            fresh = group is None
            if fresh:
                if key not in self._flags:
                    self._flags[key] = fastest_flags(
                        self.optim_constructor, args, batch[0].device, batch[0].dtype
                    )
                group = self._open_group(key, batch, {**args, **self._flags[key]})
                self._groups[key] = group
            else:
                group.torch_group["params"].extend(batch)
            for p in batch:
                self._group_of[p] = group
                if p in clips:
                    self._clip_of[p] = clips[p]
            self._take_pending(group, [(p, names[p]) for p in batch], fresh)

    def _args_for(
        self, p: torch.Tensor, name: str | None, spec: OptimArgs, what: str
    ) -> dict[str, Any]:
        if not callable(spec):
            return spec
        if name is None:
            raise OptimError(
                f"{what} is a function of the param name, but a tensor of shape "
                f"{tuple(p.shape)} given to the optimizer is not in the param store, so it has "
                "no name. Create params with engine.param (or engine.module), or pass a dict."
            )
        if len(inspect.signature(spec).parameters) == 1:
            result = spec(name.replace(MODULE_DIVIDER, "."))
        else:
            result = spec(module_from_param_with_module_name(name), user_param_name(name))
        if not isinstance(result, dict):
            raise OptimError(
                f"{what} for param {name!r} returned {type(result).__name__} {result!r:.100}; "
                "it must return a dict such as {'lr': 0.01}"
            )
        _check_finite(result, f"{what} for param {name!r}")
        return dict(result)

    def _drop(self, p: torch.Tensor) -> None:
        group = self._group_of.pop(p)
        self._clip_of.pop(p, None)
        group.optimizer.state.pop(p, None)
        # Identity, not ==: tensors compare elementwise.
        remaining = [q for q in group.torch_group["params"] if q is not p]
        group.torch_group["params"] = remaining
        if not remaining:
            del self._groups[group.key]
            self._close_group(group)

    def _open_group(self, key: str, params: list[torch.Tensor], args: dict[str, Any]) -> ParamGroup:
        """Create the param group ``key`` for ``params``; ``args`` are complete constructor args."""
        # Building an optimizer for the new params validates their arguments and completes them
        # with the constructor's own defaults, which add_param_group would otherwise take from
        # the first group's arguments.
        built = self.optim_constructor(params, **args)
        torch_group = built.param_groups[0]
        if self._optimizers:
            self._optimizers[0].add_param_group(torch_group)
        else:
            self._optimizers.append(built)
        return ParamGroup(key, self._optimizers[0], torch_group)

    def _close_group(self, group: ParamGroup) -> None:
        """Remove an emptied param group."""
        group.optimizer.param_groups[:] = [
            g for g in group.optimizer.param_groups if g is not group.torch_group
        ]

    # -- state -------------------------------------------------------------------------------

    def _take_pending(
        self, group: ParamGroup, members: list[tuple[torch.Tensor, str | None]], fresh: bool
    ) -> None:
        # A group that already ran keeps its own hyper-parameters; a new one takes the saved ones.
        restore_group = fresh
        for p, name in members:
            if name is None:
                continue
            saved_group = self._pending_group.pop(name, None)
            if saved_group is not None and restore_group:
                self._restore_group(group, saved_group)
                restore_group = False
            saved = self._pending_state.pop(name, None)
            misfit = None if saved is None else state_misfit(saved, p)
            if misfit is not None:
                warnings.warn(
                    f"the optimizer state loaded for param {name!r} is dropped: {misfit} (it "
                    "was saved for another model, or before the param changed shape). The param's "
                    "optimizer state starts afresh.",
                    stacklevel=5,  # whoever stepped the optimizer (SVI.step, or the user)
                )
            elif saved is not None:
                group.optimizer.state[p] = param_state_for(saved, p, group.torch_group)

    def _restore_group(self, group: ParamGroup, saved: dict[str, Any]) -> None:
        """Apply a saved group entry (``{"hyper": ..., ...}``) to a live group."""
        group.torch_group.update(hyper_parameters(saved["hyper"]))

    def _group_extras(self, group: ParamGroup) -> dict[str, Any]:
        """What a subclass saves per group besides its hyper-parameters."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """The whole optimizer state, as tensors and plain data keyed by param name: per-param
        state (step counts included), each group's current hyper-parameters, and saved state
        still waiting for its params. A snapshot: later steps do not change it.

        >>> import engine
        >>> engine.clear_param_store()
        >>> loc = engine.param("loc", torch.zeros(1)).unconstrained()
        >>> optim = PyroOptim(torch.optim.Adam, {"lr": 0.1})
        >>> loc.grad = torch.ones(1)
        >>> optim([loc])
        >>> state = optim.get_state()
        >>> list(state["state"]), state["groups"][0]["hyper"]["lr"]
        (['loc'], 0.1)
        >>> engine.clear_param_store()
        """
        store = get_param_store()
        groups: list[dict[str, Any]] = []
        per_param: dict[str, Any] = {}
        for group in self._groups.values():
            names = []
            for p in group.torch_group["params"]:
                name = store.param_name(p)
                if name is None:
                    continue  # replaced or deleted: dropped at the next step
                names.append(name)
                if group.optimizer.state.get(p):
                    per_param[name] = snapshot(group.optimizer.state[p])
            if names:
                hyper = hyper_parameters(group.torch_group)
                groups.append({"params": names, "hyper": hyper, **self._group_extras(group)})
        waiting: dict[int, dict[str, Any]] = {}
        for name, saved in self._pending_group.items():
            entry = waiting.setdefault(id(saved), {**snapshot(saved), "params": []})
            entry["params"].append(name)
        groups.extend(waiting.values())
        per_param.update(snapshot(self._pending_state))
        return {"format": FORMAT, "groups": groups, "state": per_param}

    def set_state(self, state: dict[str, Any], *, exact: bool = False) -> None:
        """Restore a :meth:`get_state` result: params already stepped take their saved state at
        once, the others when they first appear. Names the state does not mention keep theirs,
        except with ``exact=True``, which first drops all saved state still waiting for its
        params (a rollback to an earlier :meth:`get_state` of this optimizer).

        >>> import engine
        >>> engine.clear_param_store()
        >>> loc = engine.param("loc", torch.zeros(1)).unconstrained()
        >>> first = PyroOptim(torch.optim.Adam, {"lr": 0.1})
        >>> loc.grad = torch.ones(1)
        >>> first([loc])
        >>> second = PyroOptim(torch.optim.Adam, {"lr": 0.1})
        >>> second.set_state(first.get_state())
        >>> second([loc])
        >>> second.get_state()["state"]["loc"]["step"]
        tensor(2.)
        >>> engine.clear_param_store()
        """
        check_state(state)
        store = get_param_store()
        live = {}
        for p in self._group_of:
            name = store.param_name(p)
            if name is not None:
                live[name] = p
        # Checked before anything changes: a state that does not fit is not applied at all.
        for name, saved in state["state"].items():
            misfit = None if name not in live else state_misfit(saved, live[name])
            if misfit is not None:
                raise OptimError(
                    f"the optimizer state for param {name!r} does not fit it: {misfit}. It was "
                    "saved for other params (another model, or before the param changed shape): "
                    "load the param store saved with it, or start with a fresh optimizer."
                )
        if exact:
            self._pending_state.clear()
            self._pending_group.clear()
        for entry in state["groups"]:
            saved = snapshot({key: value for key, value in entry.items() if key != "params"})
            restored = False
            for name in entry["params"]:
                p = live.get(name)
                if p is None:
                    self._pending_group[name] = saved
                elif not restored:
                    self._restore_group(self._group_of[p], saved)
                    restored = True
        for name, saved in state["state"].items():
            p = live.get(name)
            if p is None:
                self._pending_state[name] = snapshot(saved)
            else:
                group = self._group_of[p]
                group.optimizer.state[p] = param_state_for(saved, p, group.torch_group)

    def save(self, filename: str | os.PathLike[str]) -> None:
        """Write :meth:`get_state` to ``filename`` atomically; it loads with
        ``torch.load(filename, weights_only=True)``."""
        save_state(self.get_state(), filename)

    def load(
        self,
        filename: str | os.PathLike[str],
        map_location: str | torch.device | dict | Callable | None = None,
    ) -> None:
        """Restore a state written by :meth:`save` (``map_location`` as in ``torch.load``).

        >>> import engine, os, tempfile
        >>> engine.clear_param_store()
        >>> loc = engine.param("loc", torch.zeros(1)).unconstrained()
        >>> optim = PyroOptim(torch.optim.Adam, {"lr": 0.1})
        >>> loc.grad = torch.ones(1)
        >>> optim([loc])
        >>> path = os.path.join(tempfile.mkdtemp(), "optim.pt")
        >>> optim.save(path)
        >>> fresh = PyroOptim(torch.optim.Adam, {"lr": 0.1})
        >>> fresh.load(path, map_location="cpu")
        >>> list(fresh.get_state()["state"])
        ['loc']
        >>> engine.clear_param_store()

        A file that cannot be read or used, or whose state does not fit the params, raises a
        :class:`~engine.errors.StateFileError` naming it; the optimizer then stays as it was.
        """
        path = os.fspath(filename)
        state = load_state(path, map_location)
        try:
            self.set_state(state)
        except OptimError as err:
            raise content_error(path, FORMAT, err.message.rstrip(".")) from err
