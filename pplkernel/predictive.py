"""What ``%ppc`` and ``%prior`` need from the session: the run a check draws from, and the
hyperparameters ``%prior`` explores (model arguments, or notebook constants the model reads).

A notebook constant is explored by rebinding it in the model's globals (the notebook
namespace) for the length of one draw, and putting it back afterwards, error or not: the
namespace is never left changed.

>>> namespace = {"mu0": 1.0}
>>> with rebound(namespace, {"mu0": 5.0, "new": 2}):
...     namespace["mu0"], namespace["new"]
(5.0, 2)
>>> namespace
{'mu0': 1.0}
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
import math
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from pplkernel.errors import MagicError, did_you_mean
from pplkernel.session import Session
from widgets.prior_explorer import Hyperparameter

_MISSING = object()


def find_run(session: Session, model: str, name: str | None) -> Any:
    """The run ``%ppc MODEL [--run NAME]`` checks: the SVI run named ``name`` (``mcmc``: the
    latest MCMC run of the model, unless an SVI run has that name); without a name, the latest
    SVI run of the model, else its latest MCMC run, else None (a prior predictive check)."""
    svi = [run for run in session.runs.values() if run.model_entry.name == model]
    chains = [mcmc for owner, mcmc in session.mcmc_runs if owner == model]
    if name is None:
        latest = session.runs.get(session.latest_run or "")
        if latest in svi:
            return latest  # a continued run is the newest, wherever it sits in the table
        return svi[-1] if svi else (chains[-1] if chains else None)
    run = session.runs.get(name)
    if run is not None:
        if run.model_entry.name != model:
            raise MagicError(
                f"SVI run '{name}' is a run of model '{run.model_entry.name}', not '{model}': "
                f"write `%ppc {run.model_entry.name} --run {name}`, or name a run of '{model}'.",
                "UsageError",
            )
        return run
    if name == "mcmc" and chains:
        return chains[-1]
    names = [run.name for run in svi]
    known = ", ".join(names) or "none"
    mcmc_note = f"; MCMC runs: {len(chains)} (`--run mcmc` takes the latest)" if chains else ""
    raise MagicError(
        f"No run named '{name}' of model '{model}' (SVI runs of '{model}': {known}"
        f"{mcmc_note}).{did_you_mean(name, [*names, *(['mcmc'] if chains else [])])} Start one "
        f"with `%svi {model} --name {name}`, or leave --run out for the latest run.",
        "NameError",
    )


def mcmc_arguments(mcmc: Any) -> tuple[Callable, tuple, dict[str, Any]]:
    """The model and the arguments an MCMC run was set up with (the data it conditioned on)."""
    potential = getattr(mcmc.kernel, "potential", None)
    if mcmc.kernel.model is None or potential is None:
        raise MagicError(
            "This MCMC run samples a potential function, not a model: there is no data to "
            "replicate. Run `%mcmc MODEL` on a model.",
            "UsageError",
        )
    return mcmc.kernel.model, potential.model_args, dict(potential.model_kwargs)


@contextlib.contextmanager
def rebound(namespace: dict[str, Any], values: Mapping[str, Any]) -> Iterator[None]:
    """Set ``values`` in ``namespace`` inside the block; afterwards every name holds what it
    held before (and names that were absent are removed), however the block ends."""
    saved = {name: namespace.get(name, _MISSING) for name in values}
    try:
        namespace.update(values)
        yield
    finally:
        for name, old in saved.items():
            if old is _MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = old


def global_names(fn: Callable) -> set[str]:
    """The global names the code of ``fn`` reads (nested comprehensions and lambdas too).

    >>> def model():
    ...     return [mu0 * k for k in range(3)]
    >>> sorted(global_names(model))
    ['mu0', 'range']
    """
    names: set[str] = set()
    stack = [getattr(fn, "__code__", None)]
    while stack:
        code = stack.pop()
        if code is None:
            continue
        names.update(code.co_names)
        stack.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    return names


@dataclass(frozen=True)
class Explored:
    """One hyperparameter of ``%prior``: where it goes (``"argument"`` or ``"constant"``), its
    slider, and the value it held (to give a slider's number the same type)."""

    kind: str
    slider: Hyperparameter
    current: Any

    def typed(self, value: float) -> Any:
        """The slider's ``value`` in the form the model had (a tensor, an int, a float).

        >>> Explored("argument", Hyperparameter("n", 1, 9, 5, whole=True), 5).typed(7)
        7
        >>> Explored("argument", Hyperparameter("s", 0, 1, 0.5), torch.tensor(0.5)).typed(0.25)
        tensor(0.2500)
        """
        current = self.current
        if isinstance(current, torch.Tensor):
            return torch.tensor(value, dtype=current.dtype, device=current.device).reshape(
                current.shape
            )
        return round(value) if self.slider.whole else float(value)


def explored(
    fn: Callable,
    model: str,
    ranges: Mapping[str, tuple[float, float]],
    arguments: Mapping[str, Any],
) -> dict[str, Explored]:
    """Read ``--explore name=low:high`` against the model: each name is an argument of ``fn``
    (its current value from ``arguments``: --args, the notebook, or its default) or a global
    name the model's code reads (a notebook constant). The slider starts at the current value
    when that lies in the range, else at the midpoint."""
    parameters = inspect.signature(fn).parameters
    constants = global_names(fn) - set(dir(builtins))
    namespace = getattr(fn, "__globals__", {})
    found = {}
    for name, (low, high) in ranges.items():
        if name in parameters:
            kind, current = "argument", arguments.get(name)
        elif name in constants:
            kind, current = "constant", namespace.get(name)
        else:
            readable = sorted(n for n in constants if _number(namespace.get(n)) is not None)
            raise MagicError(
                f"--explore {name}: '{model}' has no argument '{name}' and does not read a "
                f"notebook constant of that name (its arguments: {', '.join(parameters) or 'none'}"
                f"; numeric constants it reads: {', '.join(readable) or 'none'})."
                f"{did_you_mean(name, [*parameters, *readable])} Explore one of those, or make "
                f"'{name}' an argument of the model.",
                "NameError",
            )
        number = _number(current)
        if current is not None and number is None:
            shape = tuple(current.shape) if isinstance(current, torch.Tensor) else None
            held = f"a tensor of shape {shape}" if shape is not None else type(current).__name__
            raise MagicError(
                f"--explore {name}: '{name}' holds {held}, not one number; a slider moves a "
                "single number. Explore a scalar hyperparameter.",
                "TypeError",
            )
        whole = isinstance(current, int) and not isinstance(current, bool)
        whole = whole and float(low).is_integer() and float(high).is_integer()
        start = number if number is not None and low <= number <= high else (low + high) / 2
        if whole:
            low, high, start = int(low), int(high), round(start)
        found[name] = Explored(kind, Hyperparameter(name, low, high, start, whole), current)
    return found


def _number(value: Any) -> float | None:
    """``value`` as one float, if it is one number (a Python number or a one-element tensor).

    >>> _number(3), _number(torch.tensor([2.0])), _number(torch.zeros(2)), _number("a")
    (3.0, 2.0, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return float(value.item())
    return None
