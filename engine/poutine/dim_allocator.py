"""Which batch dims the active plates hold, per thread.

A vectorised plate takes the rightmost free batch dim when it is entered (or the dim it asks for)
and gives it back on exit. Two active plates may never share a dim or a name.

>>> dims = DimAllocator()
>>> dims.allocate("outer"), dims.allocate("inner")
(-1, -2)
"""

from __future__ import annotations

import threading

from engine.errors import PlateError


class DimAllocator(threading.local):
    """The dims held by the active plates of one thread."""

    def __init__(self) -> None:
        self.holders: dict[int, str] = {}

    def allocate(self, name: str, dim: int | None = None) -> int:
        """Hold ``dim`` (or the rightmost free one) for plate ``name``."""
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
            raise PlateError(
                f"Plate '{name}' asks for dim {dim}, which plate '{self.holders[dim]}' already "
                f"holds. Give one of them another dim (plates now use dims "
                f"{sorted(self.holders)}), or leave `dim` out to get a free one."
            )
        self.holders[dim] = name
        return dim

    def free(self, dim: int) -> None:
        del self.holders[dim]


PLATE_DIMS = DimAllocator()
