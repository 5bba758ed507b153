"""A run's history for the monitors' traits, kept to a fixed number of rows however long it runs.

A saved notebook holds the monitors' traits, and the kernel holds what they are built from: both
must stay the same size whether a run takes a thousand steps or a million. :class:`Thinned`
keeps every row while they fit in ``max_rows``; from then on every second row, then every
fourth, and so on: always the rows whose index is a multiple of the current stride (the
smallest power of two that fits), so the kept rows are evenly spaced over the whole run and
start with the first; the latest row is always there as well. A chart drawn from them is the
run's curve sampled evenly.

>>> history = Thinned(max_rows=4)
>>> history.extend(range(10))
>>> history.rows(), history.count
([0, 4, 8, 9], 10)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

Row = TypeVar("Row")


class Thinned(Generic[Row]):
    """At most ``max_rows`` rows of a growing series, evenly spaced (see the module docstring)."""

    def __init__(self, max_rows: int, *, label: str = "max_rows"):
        # ``label``: the caller's name for max_rows, for the error message.
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 2:
            raise ValueError(
                f"{label} must be an integer of at least 2 (room for the first and the latest "
                f"point), got {max_rows!r}"
            )
        self.max_rows = max_rows
        self.clear()

    def clear(self) -> None:
        """Forget every row."""
        self._kept: list[Row] = []
        self._latest: list[Row] = []  # the last row appended, when the stride skipped it
        self._stride = 1
        self.count = 0  # rows appended since the start (or the last clear)

    def append(self, row: Row) -> None:
        index, self.count = self.count, self.count + 1
        if index % self._stride == 0:
            self._kept.append(row)
            self._latest = []
        else:
            self._latest = [row]
        while len(self._kept) + len(self._latest) > self.max_rows:
            self._kept = self._kept[::2]
            self._stride *= 2
            if index % self._stride and not self._latest:  # the row just kept fell out
                self._latest = [row]

    def extend(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.append(row)

    def rows(self) -> list[Row]:
        """The kept rows in order, then the latest row if it is not among them."""
        return self._kept + self._latest
