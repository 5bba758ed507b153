"""``engine.ops``: tensor helpers for model code (``engine.ops.indexing.Vindex``) and Pyro's
``pyro.ops.newton`` (``newton_step``)."""

from engine.ops import indexing, newton

__all__ = ["indexing", "newton"]
