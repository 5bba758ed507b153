"""Batching progress events into at most a few updates per second.

Inference steps can come every few hundred microseconds; a frontend wants at most ~20 updates a
second. :class:`Throttle` collects items and hands them over in batches, when enough time has
passed since the last batch or when asked to flush. It never touches a device tensor: callers
pass plain floats.

>>> clock = iter([0.0, 0.01, 0.02, 0.03, 0.2, 0.2]).__next__
>>> batches = []
>>> throttle = Throttle(batches.append, interval_s=0.05, clock=clock)
>>> throttle.add(1); throttle.add(2); throttle.add(3)
>>> batches
[]
>>> throttle.add(4)  # 0.2 s after the start: the batch goes out
>>> batches
[[1, 2, 3, 4]]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Throttle:
    """Collect items; call ``send(batch)`` at most once per ``interval_s`` (and on
    :meth:`flush`)."""

    def __init__(
        self,
        send: Callable[[list[Any]], None],
        interval_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._send = send
        self.interval_s = interval_s
        self._clock = clock
        self._pending: list[Any] = []
        self._last = clock()

    def add(self, item: Any) -> None:
        self._pending.append(item)
        if self._clock() - self._last >= self.interval_s:
            self.flush()

    def take_pending(self) -> list[Any]:
        """Hand the pending items to the caller instead of sending them (it sends them its own
        way, with :meth:`mark_sent`)."""
        batch, self._pending = self._pending, []
        return batch

    def mark_sent(self) -> None:
        """Count a message the caller sent itself: the next batch waits a full interval, so
        the two together stay within the rate."""
        self._last = self._clock()

    def flush(self) -> None:
        """Send whatever is pending now."""
        self._last = self._clock()
        if self._pending:
            batch, self._pending = self._pending, []
            self._send(batch)
