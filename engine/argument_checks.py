"""Checks of the plain arguments users pass to the primitives and to inference: names, the
``fn`` of a sample site, and counts (plate sizes, numbers of steps).

torch and Python accept many of these quietly and go wrong later (``plate("data", 3.5)`` would
have three elements, ``pyro.sample(3, ...)`` would record a site named 3) or fail deep inside
with a message about tensors (``'Tensor' object is not callable``). Here each is refused at the
call, naming the argument and what to pass instead. Every check is one ``isinstance`` on the
success path.

>>> as_count(3.0, "size", minimum=1)
3
>>> check_name(3, "sample site")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
engine.errors.ArgumentError: A sample site name must be a string, got the int 3. Fix: ...
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from engine.errors import ArgumentError, PPLError, fmt_shape


def check_name(name: Any, kind: str) -> None:
    """Refuse a site, param or plate name that is not a string.

    Traces, the param store, saved files and the widgets all key on names, and names are
    combined into new ones (``f"{name}_unobserved"``), so a number or a tuple would be recorded
    as given and break later, far from here.
    """
    if isinstance(name, str):
        return
    raise ArgumentError(
        f"A {kind} name must be a string, got the {type(name).__name__} {name!r}. "
        f"Fix: name it with a string, e.g. {str(name)!r} (f-strings build names in loops: "
        "f'x_{i}')."
    )


def check_sample_fn(name: str, fn: Any) -> None:
    """Refuse a ``sample`` site's second argument when it is not a distribution instance.

    Any callable stays allowed (Pyro calls ``fn`` to draw); what is refused is what cannot be
    drawn from: a tensor or a number (often data meant for ``obs=``) and a distribution class
    that was never given its parameters.
    """
    if isinstance(fn, torch.distributions.Distribution):
        return
    if isinstance(fn, type) and issubclass(fn, torch.distributions.Distribution):
        raise ArgumentError(
            f"Site {name!r}: sample needs a distribution instance, got the class "
            f"{fn.__name__} itself. Fix: give it its parameters, e.g. "
            f"pyro.sample({name!r}, dist.{fn.__name__}(...))."
        )
    if callable(fn):
        return
    if isinstance(fn, torch.Tensor):
        given = f"a tensor of shape {fmt_shape(fn.shape)}"
    else:
        given = f"the {type(fn).__name__} {fn!r}"
    raise ArgumentError(
        f"Site {name!r}: the second argument of sample must be a distribution, got {given}. "
        f"Fix: pass the distribution the value comes from, e.g. pyro.sample({name!r}, "
        f"dist.Normal(loc, scale)); to observe data at this site, give the data as obs=: "
        f"pyro.sample({name!r}, dist.Normal(loc, scale), obs=data)."
    )


def as_count(
    value: Any,
    what: str,
    minimum: int,
    error: type[PPLError] = ArgumentError,
    fix: str = "",
) -> int:
    """``value`` as an ``int`` of at least ``minimum``, or ``error`` naming ``what``.

    Accepted, as Pyro accepts them: ints, numpy integers, floats and one-element tensors that
    hold a whole number (``3.0``, ``torch.tensor(3)``). Refused: a fraction (``3.5`` would be cut
    to 3), a bool (a comparison passed by mistake), anything else that is not a number, and a
    number below ``minimum``. ``fix`` is appended to the message.

    >>> as_count(torch.tensor(4), "num_steps", minimum=0)
    4
    >>> as_count(2.5, "num_steps", minimum=0)
    Traceback (most recent call last):
    ...
    engine.errors.ArgumentError: num_steps=2.5 is not a whole number.
    """
    if type(value) is int and value >= minimum:
        return value  # the usual case, decided without the numeric tower's checks
    count = _whole_number(value)
    tail = f" {fix}" if fix else ""
    if count is None:
        shown = repr(value)
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            shown = f"<tensor of shape {fmt_shape(value.shape)}>"
        kind = f" (a {type(value).__name__})" if not _is_number(value) else ""
        raise error(f"{what}={shown} is not a whole number{kind}.{tail}")
    if count < minimum:
        raise error(f"{what}={count} must be at least {minimum}.{tail}")
    return count


def _is_number(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.is_complex()
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole_number(value: Any) -> int | None:
    """The int ``value`` stands for, or None when it is not a whole number."""
    if isinstance(value, bool) or not _is_number(value):
        return None
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool:
            return None
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    return int(number) if math.isfinite(number) and number.is_integer() else None
