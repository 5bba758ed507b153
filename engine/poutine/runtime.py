"""Pyro's import path for the runtime (``from pyro.poutine.runtime import effectful``); the code
lives in :mod:`engine.runtime`, and :class:`NonlocalExit` (what ``escape`` raises) in
:mod:`engine.poutine.block_messenger`.

>>> from engine.poutine.runtime import am_i_wrapped
>>> am_i_wrapped()
False
"""

from engine.poutine.block_messenger import NonlocalExit
from engine.runtime import (
    CondIndepStackFrame,
    apply_stack,
    default_process_message,
    effectful,
    new_message,
)
from engine.runtime import handlers_active as am_i_wrapped

__all__ = [
    "CondIndepStackFrame",
    "NonlocalExit",
    "am_i_wrapped",
    "apply_stack",
    "default_process_message",
    "effectful",
    "new_message",
]
