"""The spline coupling flow.

Pyro's module path ``pyro.distributions.transforms.spline_coupling``;
the code lives in :mod:`engine.distributions.spline_coupling`.
"""

from engine.distributions.spline_coupling import SplineCoupling, spline_coupling

__all__ = ["SplineCoupling", "spline_coupling"]
