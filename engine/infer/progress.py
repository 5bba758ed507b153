"""The one progress protocol every long-running algorithm reports through.

An algorithm owns a :class:`Progress` hub and calls :meth:`Progress.emit` once per step with a
:class:`ProgressEvent`. Anything may subscribe (a live widget, a progress bar, a test); the
engine never knows who listens. A listener that raises is unsubscribed and the error is kept on
the hub (``listener_errors``) instead of breaking the inference it watches.

>>> hub = Progress()
>>> seen = []
>>> unsubscribe = hub.subscribe(lambda event: seen.append((event.step, event.loss)))
>>> hub.emit(ProgressEvent("svi", step=1, loss=2.5))
>>> seen
[(1, 2.5)]
>>> unsubscribe()
>>> hub.emit(ProgressEvent("svi", step=2, loss=2.0))
>>> len(seen)
1
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ProgressEvent:
    """One step of an algorithm.

    ``algorithm`` is ``"svi"`` or ``"mcmc"``; ``step`` counts from 1; ``loss`` is the step's loss
    (SVI); ``params`` holds detached constrained parameter values when a listener asked for them;
    ``info`` carries algorithm-specific diagnostics (for MCMC, per chain: phase, step size, tree
    depth, divergences, acceptance; for SVI, a skipped non-finite step's report).
    """

    algorithm: str
    step: int
    loss: float | None = None
    params: dict[str, torch.Tensor] | None = None
    info: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[ProgressEvent], None]


class Progress:
    """A hub of listeners for one algorithm's progress events."""

    def __init__(self) -> None:
        self._listeners: list[tuple[Listener, bool]] = []
        self.listener_errors: list[BaseException] = []

    def subscribe(self, listener: Listener, wants_params: bool = False) -> Callable[[], None]:
        """Call ``listener(event)`` on every step; returns a function that unsubscribes it.

        ``wants_params=True`` asks the algorithm to include parameter snapshots in the events,
        which costs a copy of every parameter per step: only live views need them.
        """
        entry = (listener, wants_params)
        self._listeners.append(entry)

        def unsubscribe() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return unsubscribe

    @property
    def active(self) -> bool:
        """Whether anyone listens (algorithms skip building events when nobody does)."""
        return bool(self._listeners)

    @property
    def wants_params(self) -> bool:
        return any(wants for _, wants in self._listeners)

    def emit(self, event: ProgressEvent) -> None:
        for entry in list(self._listeners):
            listener = entry[0]
            try:
                listener(event)
            except Exception as error:  # a broken view must not break the inference it watches
                self.listener_errors.append(error)
                self._listeners.remove(entry)
