"""Pyro's import path for the runtime (``from pyro.poutine.runtime import effectful``); the code
lives in :mod:`engine.runtime`, and :class:`NonlocalExit` (what ``escape`` raises) in
:mod:`engine.poutine.block_messenger`.

It also holds the two questions model code may ask its handlers: ``get_mask()`` (the mask the
enclosing ``poutine.mask`` handlers put on a site here) and ``get_plates()`` (the enclosing plates).

>>> from engine.poutine.runtime import am_i_wrapped
>>> am_i_wrapped()
False
"""

from __future__ import annotations

import torch

from engine.poutine.block_messenger import NonlocalExit
from engine.runtime import (
    CondIndepStackFrame,
    apply_stack,
    default_process_message,
    effectful,
    handlers_active,
    new_message,
)
from engine.runtime import handlers_active as am_i_wrapped


def _nothing() -> None:
    return None


def get_mask() -> bool | torch.Tensor | None:
    """The mask a sample site would get here from the enclosing ``poutine.mask`` handlers: None
    when there is none, else a bool or a bool tensor (their logical and).

    Model code can skip an expensive log-density term when nothing will score it, e.g. under
    ``poutine.mask(mask=False)``: ``if get_mask() is not False: pyro.factor(...)``.

    >>> from engine import poutine
    >>> get_mask() is None
    True
    >>> with poutine.mask(mask=False):
    ...     get_mask()
    False
    """
    if not handlers_active():
        return None
    msg = apply_stack(new_message("get_mask", None, _nothing))
    return msg["mask"]


def get_plates() -> tuple[CondIndepStackFrame, ...]:
    """The plates a sample site would sit in here, as ``CondIndepStackFrame`` s (outermost first).

    >>> import engine
    >>> with engine.plate("rows", 4):
    ...     [frame.name for frame in get_plates()]
    ['rows']
    """
    if not handlers_active():
        return ()
    msg = apply_stack(new_message("get_plates", None, _nothing))
    return tuple(msg["cond_indep_stack"])


__all__ = [
    "CondIndepStackFrame",
    "NonlocalExit",
    "am_i_wrapped",
    "apply_stack",
    "default_process_message",
    "effectful",
    "get_mask",
    "get_plates",
    "new_message",
]
