"""Loading pplkernel into IPython: the magics, the injected names, and short error messages.

A :class:`~pplkernel.session.MagicError` is shown as ``Kind: message`` and nothing else: the
frames of the magic machinery help nobody. The original error stays chained as ``__cause__``
(``%tb`` shows it).
"""

from __future__ import annotations

from typing import Any

from pplkernel.magics import PPLMagics, inject_names
from pplkernel.session import MagicError, Session


def _short_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset=None) -> list:
    kind = getattr(value, "kind", etype.__name__)
    lines = [f"{kind}: {value}"]
    shell._showtraceback(etype, value, lines)
    return lines


def load(shell: Any) -> PPLMagics:
    """Register the magics on ``shell`` (once) and return them."""
    magics = getattr(shell, "_pplkernel_magics", None)
    if magics is None:
        magics = PPLMagics(shell, Session())
        shell.register_magics(magics)
        shell.set_custom_exc((MagicError,), _short_error)
        shell._pplkernel_magics = magics
    inject_names(shell.user_ns)
    return magics
