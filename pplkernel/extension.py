"""Loading pplkernel into IPython: the magics, the injected names, and short error messages.

A :class:`~pplkernel.session.MagicError` is shown as ``Kind: message`` and nothing else: the
frames of the magic machinery help nobody. The original error stays chained as ``__cause__``
(``%tb`` shows it).
"""

from __future__ import annotations

from typing import Any

from engine.errors import MissingParamError
from engine.params import get_param_store
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


class ShadowedParamNote:
    """After a cell of plain code, a note when it created, in the notebook's param store, a
    param that an SVI run holds fitted in its own store: calling a ``%%guide`` function
    directly makes its params afresh from their initial values, which is rarely what was
    meant after ``%svi`` (``run.guide(...)`` reads the run's params)."""

    def __init__(self, session: Session):
        self._session = session
        self._names_before: set[str] | None = None

    def before(self, info: Any) -> None:
        cell = getattr(info, "raw_cell", "") or ""
        magic_cell = cell.lstrip().startswith("%%")  # a %%model cell may make params on purpose
        self._names_before = None if magic_cell else set(get_param_store().keys())

    def after(self, result: Any) -> None:
        if self._names_before is None:
            return
        new = [name for name in get_param_store() if name not in self._names_before]
        self._names_before = None
        for name in new:
            holders = [run.name for run in self._session.runs.values() if name in run.params]
            if holders:
                print(
                    f"Note: this cell created param '{name}' in the notebook's param store from "
                    f"its initial value, but run '{holders[-1]}' holds a fitted '{name}' of its "
                    f"own. To use the fitted params, call the run's guide: run.guide(...)."
                )


def load(shell: Any) -> PPLMagics:
    """Register the magics on ``shell`` (once) and return them."""
    magics = getattr(shell, "_pplkernel_magics", None)
    if magics is None:
        magics = PPLMagics(shell, Session())
        shell.register_magics(magics)
        shell.set_custom_exc((MagicError, MissingParamError), _error_shown)
        note = ShadowedParamNote(magics.session)
        shell.events.register("pre_run_cell", note.before)
        shell.events.register("post_run_cell", note.after)
        shell._pplkernel_magics = magics
    inject_names(shell.user_ns)
    return magics
