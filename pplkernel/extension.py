"""Loading pplkernel into IPython: the magics, the injected names, and short error messages.

A :class:`~pplkernel.session.MagicError` is shown as ``Kind: message`` and nothing else: the
frames of the magic machinery help nobody. The original error stays chained as ``__cause__``
(``%tb`` shows it).
"""

from __future__ import annotations

from typing import Any

from engine.params import MissingParamError
from pplkernel.magics import PPLMagics, inject_names
from pplkernel.session import MagicError, Session


def _short_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset=None) -> list:
    kind = getattr(value, "kind", etype.__name__)
    lines = [f"{kind}: {value}"]
    shell._showtraceback(etype, value, lines)
    return lines


def _error_shown(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset=None) -> list:
    """Magic errors in one line; a missing param with the usual traceback, plus where the
    runs that hold a param of that name keep it (each SVI run owns its params)."""
    if isinstance(value, MagicError):
        return _short_error(shell, etype, value, tb, tb_offset)
    lines = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    name = getattr(value, "param_name", None)
    holders = [
        run.name for run in shell._pplkernel_magics.session.runs.values() if name in run.params
    ]
    if holders:
        lines.append(
            f"Each %svi run keeps its params in its own store: '{name}' is in "
            + ", ".join(f"run '{holder}'" for holder in holders)
            + f". Read it from the run %svi returned: run.params['{name}']."
        )
    shell._showtraceback(etype, value, lines)
    return lines


def load(shell: Any) -> PPLMagics:
    """Register the magics on ``shell`` (once) and return them."""
    magics = getattr(shell, "_pplkernel_magics", None)
    if magics is None:
        magics = PPLMagics(shell, Session())
        shell.register_magics(magics)
        shell.set_custom_exc((MagicError, MissingParamError), _error_shown)
        shell._pplkernel_magics = magics
    inject_names(shell.user_ns)
    return magics
