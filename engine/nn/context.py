"""The call context a tree of ``PyroModule``s shares: is a call under way, and what was drawn in it.

Every ``PyroModule`` of one tree holds the same :class:`CallContext` (the root's). Calling any
of them enters it; the ``PyroSample`` values drawn while it is entered are cached by their full
name, so reading ``self.weight`` twice in one call gives one draw and one sample site. Leaving
the outermost call empties the cache, so the next call draws afresh.

Depth and cache are kept per thread: a model stepped by SVI in a background thread and the same
model called in the notebook never see each other's draws.

>>> import torch
>>> context = CallContext()
>>> with context:
...     context.set("w", torch.tensor(1.0))
...     with context:  # a nested module's call: the same draws
...         inner = context.get("w")
>>> inner, context.get("w"), context.used
(tensor(1.), None, True)
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

import torch

__all__ = ["CallContext"]


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.depth = 0
        self.cache: dict[str, torch.Tensor] = {}


class CallContext:
    """How deep the calls into one module tree are nested, and the draws cached in them.

    ``used`` turns True at the first call and stays so: from then on the tree's parameter names
    may be in the param store, so deleting an attribute removes its param there too.

    >>> context = CallContext()
    >>> context.active, context.used
    (False, False)
    """

    def __init__(self) -> None:
        self.used = False
        self._local = _PerThread()

    @property
    def active(self) -> bool:
        """Whether a call into the tree is under way in this thread."""
        return self._local.depth > 0

    def __enter__(self) -> CallContext:
        self._local.depth += 1
        self.used = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        local = self._local
        local.depth -= 1
        if local.depth == 0:
            local.cache.clear()

    def get(self, fullname: str) -> torch.Tensor | None:
        """The value drawn for ``fullname`` in the current call, or None (also outside a call).

        >>> CallContext().get("w") is None
        True
        """
        local = self._local
        return local.cache.get(fullname) if local.depth else None

    def set(self, fullname: str, value: torch.Tensor) -> None:
        """Remember ``value`` for ``fullname`` until the outermost call returns (outside a call
        nothing is remembered, so every read draws anew)."""
        local = self._local
        if local.depth:
            local.cache[fullname] = value

    # Thread-local state cannot be pickled or deep-copied; a copy starts with no call under way.
    def __getstate__(self) -> dict[str, Any]:
        return {"used": self.used}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.used = state["used"]
        self._local = _PerThread()
