"""``engine.ops``: tensor helpers for model code (``engine.ops.indexing.Vindex``)."""

from engine.ops import indexing

__all__ = ["indexing"]
