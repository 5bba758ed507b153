"""One SVI run, one thread at a time: the lock a background Run and the notebook share.

The SVI monitor's Run button steps in a background thread while the notebook stays free, so a
cell may step, save or read the same run meanwhile. Every step, and every read or write of the
run's params from elsewhere, holds the run's :class:`RunLock`: each sees the params after a whole
step, never halfway through one, and two threads never step the same SVI at once.

A plain lock is not enough: Python's locks are not fair, and the background loop, taking the
lock again straight after each step, would keep a waiting cell out for many steps. The loop
takes its turns with :meth:`RunLock.background_turn`, which lets anyone waiting go first.

>>> lock = RunLock()
>>> with lock.hold():
...     with lock.hold():  # re-entrant: a step inside a read of the same thread
...         pass
>>> with lock.background_turn():
...     pass
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from engine.interrupts import deferred_interrupt


class RunLock:
    """A re-entrant lock whose background turns give way to everyone else (see the module
    docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._turns = threading.Condition()
        self._waiting = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the run for a step or a read; waits (at most about one step) for a background
        turn under way."""
        acquired = False
        try:
            # A stop pressed while waiting is delivered once the lock is ours and the count of
            # waiters right again, so neither is left wrong for ever.
            with deferred_interrupt():
                with self._turns:
                    self._waiting += 1
                try:
                    acquired = self._lock.acquire()
                finally:
                    with self._turns:
                        self._waiting -= 1
                        self._turns.notify_all()
        except BaseException:
            if acquired:
                self._lock.release()
            raise
        try:
            yield
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def background_turn(self) -> Iterator[None]:
        """Hold the run for one step of a background loop, once nobody else is waiting."""
        with self._turns:
            self._turns.wait_for(lambda: self._waiting == 0)
        with self._lock:
            yield
