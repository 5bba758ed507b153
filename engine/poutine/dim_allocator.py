"""Which batch dims the active plates hold, per thread.

A vectorised plate takes the rightmost free batch dim when it is entered (or the dim it asks for)
and gives it back on exit. Two active plates may never share a dim or a name.

>>> dims = DimAllocator()
>>> dims.allocate("outer"), dims.allocate("inner")
(-1, -2)
>>> try:
...     dims.allocate("other", -1, size=3)
... except PlateError as error:
...     error.holder
'outer'
"""

from __future__ import annotations

import threading

from engine.errors import PlateError


class DimAllocator(threading.local):
    """The dims held by the active plates of one thread."""

    def __init__(self) -> None:
        self.holders: dict[int, str] = {}
        self.sizes: dict[int, int | None] = {}

    def allocate(self, name: str, dim: int | None = None, size: int | None = None) -> int:
        """Hold ``dim`` (or the rightmost free one) for plate ``name`` (of ``size``, which the
        message of a clash names).

        A clash raises a :class:`PlateError` whose ``holder`` is the plate already at ``dim``
        (and ``asking`` the new one, quoted and sized), so that code which entered that plate
        for the user (vectorised particles) can say why it is there."""
        for held_dim, holder in self.holders.items():
            if holder == name:
                raise PlateError(
                    f"Plate '{name}' is entered while a plate of the same name is already "
                    f"active (at dim {held_dim}). Nested plates need different names."
                )
        if dim is None:
            dim = -1
            while dim in self.holders:
                dim -= 1
        elif dim in self.holders:
            error = PlateError(
                f"Plate '{name}'{_sized(size)} asks for dim {dim}, which plate "
                f"'{self.holders[dim]}'{_sized(self.sizes[dim])} already holds. The two plates "
                f"collide at dim={dim}: give one of them another dim (plates now use dims "
                f"{sorted(self.holders)}), or leave `dim` out to get a free one."
            )
            error.holder = self.holders[dim]
            error.asking = f"'{name}'{_sized(size)}"
            raise error
        self.holders[dim] = name
        self.sizes[dim] = size
        return dim

    def free(self, dim: int) -> None:
        del self.holders[dim]
        del self.sizes[dim]


def _sized(size: int | None) -> str:
    return "" if size is None else f" (size {size})"


PLATE_DIMS = DimAllocator()
