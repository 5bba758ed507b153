"""The magics' error types, :class:`MagicError` (what a magic reports) and :class:`CellError` (a
``%%model``/``%%guide`` cell that defines no function), and the wording their messages share.

It lives apart from the modules that raise it (:mod:`pplkernel.session`,
:mod:`pplkernel.model_cells`, :mod:`pplkernel.magic_args`) so each of them can use it without
importing the others. :mod:`pplkernel.extension` shows one as ``Kind: message`` with no
traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CellError(ValueError):
    """A ``%%model`` or ``%%guide`` cell that does not define a function (a bad magic line, a
    syntax error, an empty body); the message says why and how to fix it."""


class MagicError(Exception):
    """An error a magic reports as one short message (no traceback): bad flags, an unknown
    model, and the engine's own errors (re-raised as this, with the original as the cause).

    ``kind`` is the word shown before the message: ``UsageError`` for a badly written magic
    line, ``SyntaxError``/``NameError`` where Python would say that, else the original error's
    type name.

    >>> error = MagicError("--steps must be a positive integer", "UsageError")
    >>> error.kind, str(error)
    ('UsageError', '--steps must be a positive integer')
    """

    def __init__(self, message: str, kind: str = "Error"):
        super().__init__(message)
        self.kind = kind


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the known word closest to a misspelt one, else ``""``.

    >>> did_you_mean("--step", ["--steps", "--lr"])
    " Did you mean '--steps'?"
    >>> did_you_mean("zzz", ["--steps"])
    ''
    """
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
