"""``engine.ops``: tensor helpers for model code (``engine.ops.indexing.Vindex``), Pyro's
``pyro.ops.newton`` (``newton_step``) and the quantiles of ``pyro.ops.stats``."""

from engine.ops import indexing, newton, stats

__all__ = ["indexing", "newton", "stats"]
