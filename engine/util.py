"""Pyro's ``pyro.util``: seeding, NaN and inf warnings, and the small context helpers Pyro's
examples import (``set_rng_seed``, ``ignore_jit_warnings``, ``warn_if_nan``, ``optional``,
``ignore_experimental_warning``). The random-state helpers live in :mod:`engine.rng`.

>>> import torch
>>> from engine.util import set_rng_seed
>>> set_rng_seed(0); a = torch.rand(2)
>>> set_rng_seed(0); bool((torch.rand(2) == a).all())
True
"""

from __future__ import annotations

import contextlib
import math
import numbers
import sys
import timeit
import warnings
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch

# The model/guide checks live with the ELBOs that run them; Pyro users import them from here.
from engine.infer.model_guide_checks import check_model_guide_match
from engine.rng import get_rng_state, set_rng_seed, set_rng_state

_Value = torch.Tensor | numbers.Number


def torch_isnan(x: _Value) -> bool | torch.Tensor:
    """Whether ``x`` (a number or a tensor) holds a NaN: a bool for a number, a 0-dim bool
    tensor for a tensor.

    >>> torch_isnan(float("nan")), bool(torch_isnan(torch.tensor([1.0, float("nan")])))
    (True, True)
    """
    if isinstance(x, numbers.Number):
        return x != x
    return torch.isnan(x).any()


def torch_isinf(x: _Value) -> bool | torch.Tensor:
    """Whether ``x`` (a number or a tensor) holds ``+inf`` or ``-inf``.

    >>> torch_isinf(-math.inf), bool(torch_isinf(torch.tensor([0.0, 1.0])))
    (True, False)
    """
    if isinstance(x, numbers.Number):
        return x in (math.inf, -math.inf)
    return torch.isinf(x).any()


def _caller(depth: int = 2) -> tuple[str, int]:
    """The file and line of the code that called our caller (where a warning should point)."""
    try:
        frame = sys._getframe(depth)
    except ValueError:  # a shallower stack than asked for
        return "sys", 1
    return frame.f_code.co_filename, frame.f_lineno


def _warn_at(message: str, msg: str, where: tuple[str, int]) -> None:
    warnings.warn_explicit(message + (f": {msg}" if msg else "."), UserWarning, *where)


def warn_if_nan(
    value: _Value,
    msg: str = "",
    *,
    filename: str | None = None,
    lineno: int | None = None,
) -> _Value:
    """Return ``value`` unchanged, warning (``UserWarning``, pointing at the caller's line) when
    it holds a NaN; for a tensor that requires grad, its gradient is checked too, during the
    backward pass ("backward " + ``msg``).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = warn_if_nan(torch.tensor(float("nan")), "loss")
    >>> str(caught[0].message)
    'Encountered NaN: loss'
    """
    where = (filename, lineno) if filename is not None else _caller()
    if isinstance(value, torch.Tensor) and value.requires_grad:
        value.register_hook(
            lambda grad: warn_if_nan(
                grad, "backward " + msg, filename=where[0], lineno=int(where[1] or 1)
            )
        )
    if torch_isnan(value):
        _warn_at("Encountered NaN", msg, (where[0], int(where[1] or 1)))
    return value


def warn_if_inf(
    value: _Value,
    msg: str = "",
    allow_posinf: bool = False,
    allow_neginf: bool = False,
    *,
    filename: str | None = None,
    lineno: int | None = None,
) -> _Value:
    """Return ``value`` unchanged, warning when it holds ``+inf`` (unless ``allow_posinf``) or
    ``-inf`` (unless ``allow_neginf``); gradients of a tensor that requires grad are checked
    during the backward pass, as :func:`warn_if_nan` does.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = warn_if_inf(torch.tensor([-math.inf, 1.0]), allow_neginf=True)
    ...     _ = warn_if_inf(-math.inf, "log p")
    >>> [str(w.message) for w in caught]
    ['Encountered -inf: log p']
    """
    where = (filename, lineno) if filename is not None else _caller()
    line = (where[0], int(where[1] or 1))
    if isinstance(value, torch.Tensor) and value.requires_grad:
        value.register_hook(
            lambda grad: warn_if_inf(
                grad,
                "backward " + msg,
                allow_posinf,
                allow_neginf,
                filename=line[0],
                lineno=line[1],
            )
        )
    if isinstance(value, numbers.Number):
        has_posinf, has_neginf = value == math.inf, value == -math.inf
    else:
        has_posinf, has_neginf = bool((value == math.inf).any()), bool((value == -math.inf).any())
    if has_posinf and not allow_posinf:
        _warn_at("Encountered +inf", msg, line)
    if has_neginf and not allow_neginf:
        _warn_at("Encountered -inf", msg, line)
    return value


@contextlib.contextmanager
def ignore_jit_warnings(filter: Iterable[str | tuple[str, type[Warning]]] | None = None):
    """Silence ``torch.jit`` tracer warnings inside the block while a function is being traced
    by ``torch.jit.trace`` (outside tracing it changes nothing). ``filter`` narrows it to
    warnings whose message matches one of its entries: a message pattern, or a
    ``(pattern, warning class)`` pair.

    >>> def first(x):
    ...     with ignore_jit_warnings():
    ...         return x[0] * 2 if x.sum() > 0 else x[0]  # a tracer warning, silenced
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     traced = torch.jit.trace(first, torch.ones(2))
    >>> [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    []
    """
    if not torch.jit.is_tracing():
        yield
        return
    with warnings.catch_warnings():
        if filter is None:
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        else:
            for entry in filter:
                message, category = entry if isinstance(entry, tuple) else (entry, None)
                warnings.filterwarnings(
                    "ignore", message=message, category=category or torch.jit.TracerWarning
                )
        yield


def jit_iter(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The slices of ``tensor`` along its first dim, as a list, without torch's warnings about
    iterating over a tensor while tracing.

    >>> [t.tolist() for t in jit_iter(torch.arange(4).reshape(2, 2))]
    [[0, 1], [2, 3]]
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Iterating over a tensor")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return list(tensor)


class optional:
    """Enter ``context_manager`` only when ``condition`` holds: ``with optional(cm, flag):``
    is ``with cm:`` when ``flag`` is true and no context at all otherwise.

    >>> import engine as pyro
    >>> with optional(pyro.plate("data", 3), condition=False) as plate:
    ...     plate is None
    True
    """

    def __init__(self, context_manager: AbstractContextManager, condition: bool):
        self.context_manager = context_manager
        self.condition = condition

    def __enter__(self) -> Any:
        if self.condition:
            return self.context_manager.__enter__()
        return None

    def __exit__(self, exc_type, exc_value, traceback) -> bool | None:
        if self.condition:
            return self.context_manager.__exit__(exc_type, exc_value, traceback)
        return None


class ExperimentalWarning(UserWarning):
    """A feature Pyro marks as experimental was used."""


@contextlib.contextmanager
def ignore_experimental_warning() -> Iterator[None]:
    """Silence :class:`ExperimentalWarning` inside the block.

    >>> with ignore_experimental_warning():
    ...     warnings.warn("new", ExperimentalWarning)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        yield


class timed:
    """Time a block: ``with timed() as t: ...`` then ``t.elapsed`` (seconds; ``t.start`` and
    ``t.end`` are the timer readings).

    >>> with timed() as t:
    ...     pass
    >>> t.elapsed >= 0.0
    True
    """

    def __enter__(self) -> timed:
        self.start = timeit.default_timer()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.end = timeit.default_timer()
        self.elapsed = self.end - self.start


def torch_float(x: torch.Tensor | float | int) -> torch.Tensor | float:
    """``x`` as a float: ``x.float()`` for a tensor, ``float(x)`` for a number.

    >>> torch_float(2), torch_float(torch.tensor(2)).dtype
    (2.0, torch.float32)
    """
    return x.float() if isinstance(x, torch.Tensor) else float(x)


__all__ = [
    "ExperimentalWarning",
    "check_model_guide_match",
    "get_rng_state",
    "ignore_experimental_warning",
    "ignore_jit_warnings",
    "jit_iter",
    "optional",
    "set_rng_seed",
    "set_rng_state",
    "timed",
    "torch_float",
    "torch_isinf",
    "torch_isnan",
    "warn_if_inf",
    "warn_if_nan",
]
