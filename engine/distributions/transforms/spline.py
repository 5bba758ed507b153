"""Monotonic rational-quadratic spline flows, plain and conditional.

Pyro's module path ``pyro.distributions.transforms.spline``;
the code lives in :mod:`engine.distributions.spline`.
"""

from engine.distributions.spline import (
    ConditionalSpline,
    ConditionedSpline,
    Spline,
    conditional_spline,
    spline,
)

__all__ = ["ConditionalSpline", "ConditionedSpline", "Spline", "conditional_spline", "spline"]
