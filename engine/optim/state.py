"""The saved form of an optimizer wrapper's state, and its files.

A state is plain data and tensors only, keyed by param name, so it loads with
``torch.load(..., weights_only=True)`` and applies to a fresh process's params::

    {"format": "pplkernel-optim-1",
     "groups": [{"params": [names], "hyper": {"lr": ..., ...}, "scheduler": {...}}, ...],
     "state": {name: {"step": ..., "exp_avg": tensor, ...}}}

``hyper`` holds a param group's current hyper-parameters (a decayed or scheduled ``lr``
included); ``scheduler`` appears for LR-scheduler wrappers only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from engine.atomic_file import atomic_torch_save, content_error, load_state_file
from engine.errors import OptimError, fmt_shape

FORMAT = "pplkernel-optim-1"

# A group's implementation flags are chosen for the device at hand, never restored from a file.
_CHOSEN_PER_DEVICE = frozenset({"params", "fused", "foreach"})


def snapshot(value: Any) -> Any:
    """A copy of ``value`` that later optimizer steps cannot change: tensors are detached and
    cloned inside dicts, lists and tuples.

    >>> x = torch.zeros(1)
    >>> copied = snapshot({"a": [x]})
    >>> copied["a"][0] is x, torch.equal(copied["a"][0], x)
    (False, True)
    """
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: snapshot(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(snapshot(item) for item in value)
    return value


def hyper_parameters(group: dict[str, Any]) -> dict[str, Any]:
    """A torch param group's hyper-parameters worth saving: all but its params and the
    implementation flags chosen for the device.

    >>> hyper_parameters({"params": [], "lr": 0.1, "fused": True})
    {'lr': 0.1}
    """
    return {key: snapshot(value) for key, value in group.items() if key not in _CHOSEN_PER_DEVICE}


def param_state_for(
    state: dict[str, Any], param: torch.Tensor, group: dict[str, Any]
) -> dict[str, Any]:
    """A copy of one param's saved optimizer state, placed as torch's ``load_state_dict`` places
    it: floating tensors take the param's device and dtype, other tensors its device, and
    ``step`` stays as saved unless the group is fused or capturable (then float32 on the device).

    >>> p = torch.zeros(2, dtype=torch.float64)
    >>> placed = param_state_for({"exp_avg": torch.ones(2), "step": torch.tensor(3.0)}, p, {})
    >>> placed["exp_avg"].dtype, placed["step"].dtype
    (torch.float64, torch.float32)
    """

    def place(value: Any, key: Any) -> Any:
        if isinstance(value, torch.Tensor):
            if key == "step":
                if group.get("fused") or group.get("capturable"):
                    return value.to(dtype=torch.float32, device=param.device, copy=True)
                return value.detach().clone()
            if value.is_floating_point():
                return value.to(dtype=param.dtype, device=param.device, copy=True)
            return value.to(device=param.device, copy=True)
        if isinstance(value, dict):
            return {k: place(v, k) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(place(v, key) for v in value)
        return value

    return {key: place(value, key) for key, value in state.items()}


# Per-param optimizer state that is not shaped like its param: scalars (step counts, ASGD's eta
# and mu, NAdam's mu_product) and Adafactor's factored second moments of params with two or more
# dims (row statistics with the last dim reduced to 1, column statistics with the one before it).
_SCALAR_KEYS = frozenset({"step", "eta", "mu", "mu_product"})
_FACTORED_KEYS = {"row_var": -1, "col_var": -2}


def state_misfit(saved: dict[str, Any], param: torch.Tensor) -> str | None:
    """Why one param's saved optimizer state cannot be ``param``'s (its tensors are shaped for a
    param of another shape), or None when it fits. torch's fused and foreach kernels do not
    check, so a misfit would silently update the wrong numbers.

    >>> state_misfit({"step": torch.tensor(1.0), "exp_avg": torch.zeros(3)}, torch.zeros(2))
    "its 'exp_avg' has shape (3,) but the param has shape (2,)"
    >>> state_misfit({"row_var": torch.zeros(4, 1)}, torch.zeros(4, 5)) is None
    True
    """
    for key, value in saved.items():
        if not isinstance(value, torch.Tensor) or key in _SCALAR_KEYS:
            continue
        expected = list(param.shape)
        if key in _FACTORED_KEYS and param.dim() >= 2:
            expected[_FACTORED_KEYS[key]] = 1
        if list(value.shape) != expected:
            return (
                f"its {key!r} has shape {fmt_shape(value.shape)} but the param has shape "
                f"{fmt_shape(param.shape)}"
            )
    return None


def check_state(state: Any) -> None:
    """Raise :class:`OptimError` unless ``state`` has the form ``get_state`` returns.

    >>> check_state({"format": FORMAT, "groups": [], "state": {}})
    >>> check_state({"loc": {}})
    Traceback (most recent call last):
    ...
    engine.errors.OptimError: not an optimizer state written by engine.optim's get_state ...
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise OptimError(
            "not an optimizer state written by engine.optim's get_state or save: it lacks the "
            f"format marker {FORMAT!r} (Pyro's own optimizer states pickle other objects and "
            "cannot be read). Keys found: "
            f"{sorted(map(str, state))[:10] if isinstance(state, dict) else type(state).__name__}"
        )
    groups, per_param = state.get("groups"), state.get("state")
    if not isinstance(per_param, dict) or not all(isinstance(s, dict) for s in per_param.values()):
        raise OptimError("malformed optimizer state: 'state' must map param names to dicts")
    well_formed = isinstance(groups, list) and all(
        isinstance(g, dict)
        and isinstance(g.get("params"), list)
        and isinstance(g.get("hyper"), dict)
        for g in groups
    )
    if not well_formed:
        raise OptimError(
            "malformed optimizer state: 'groups' must be a list of "
            "{'params': [names], 'hyper': {...}} dicts"
        )


def save_state(state: dict[str, Any], filename: str | os.PathLike[str]) -> None:
    """Write ``state`` to ``filename`` atomically (a crash never leaves a half-written file; a
    failure is a :class:`~engine.errors.StateFileAccessError` naming ``filename``).

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "optim.pt")
    >>> save_state({"format": FORMAT, "groups": [], "state": {}}, path)
    >>> load_state(path)["format"]
    'pplkernel-optim-1'
    """
    atomic_torch_save(state, filename, what="the optimizer state")


def load_state(
    filename: str | os.PathLike[str],
    map_location: str | torch.device | dict | Callable | None = None,
) -> dict[str, Any]:
    """Read a state written by :func:`save_state`, with ``weights_only=True`` (no code runs).
    A file that cannot be read or used raises a :class:`~engine.errors.StateFileError` naming it.
    """
    path = os.fspath(filename)
    state = load_state_file(path, FORMAT, map_location)
    try:
        check_state(state)
    except OptimError as err:
        raise content_error(path, FORMAT, err.message) from err
    return state
