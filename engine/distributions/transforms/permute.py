"""Permutations of one dim.

Pyro's module path ``pyro.distributions.transforms.permute``;
the code lives in :mod:`engine.distributions.orthonormal_transforms`.
"""

from engine.distributions.orthonormal_transforms import Permute, permute

__all__ = ["Permute", "permute"]
