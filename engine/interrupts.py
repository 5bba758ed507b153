"""Keeping a short stretch of work whole when the user presses stop.

The notebook's stop button (and Ctrl-C) sends SIGINT, which Python turns into a
``KeyboardInterrupt`` between any two bytecodes of the main thread. Most of an SVI step may be
cut short safely: the param-store transaction undoes it. But the few lines that commit a step
(the optimizer's update of params and moments, the step count, the loss, telling the listeners)
must happen all together or not at all, or the run is left half a step ahead in one place and
behind in another. :func:`deferred_interrupt` holds a SIGINT that arrives inside its block and
delivers it as soon as the block ends.

>>> import signal
>>> try:
...     with deferred_interrupt():
...         signal.raise_signal(signal.SIGINT)  # the stop button, in the middle of the block
...         finished = True
... except KeyboardInterrupt:
...     print("interrupted after the block; finished:", finished)
interrupted after the block; finished: True
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

try:
    # The C functions behind ``signal``, without its enum conversions: ten times cheaper, and
    # this runs at every SVI step.
    import _signal as _raw
except ImportError:  # pragma: no cover - not CPython
    _raw = signal


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Run the block whole: a SIGINT arriving inside it is handed to the handler that was in
    place (normally: a ``KeyboardInterrupt`` is raised) right after the block.

    Signals only ever reach the main thread, so elsewhere this does nothing; nor does it where
    SIGINT is ignored or left to the system. Nested blocks deliver at the end of the outermost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = _raw.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN or SIG_DFL: nothing of ours runs on a SIGINT
        yield
        return
    received: list[int] = []
    _raw.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        _raw.signal(signal.SIGINT, previous)
        if received:
            previous(signal.SIGINT, None)
