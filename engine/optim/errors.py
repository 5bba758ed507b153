"""The error the optimizer wrappers raise: bad arguments, and states or files they cannot use."""

from __future__ import annotations

from engine.errors import PPLError


class OptimError(PPLError, ValueError):
    """Optimizer arguments, a saved optimizer state or an optimizer file that cannot be used.

    A ``ValueError`` too, like the other engine errors.

    >>> isinstance(OptimError("bad lr"), ValueError)
    True
    """
