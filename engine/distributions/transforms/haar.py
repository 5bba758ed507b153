"""The Haar wavelet transform.

Pyro's module path ``pyro.distributions.transforms.haar``;
the code lives in :mod:`engine.distributions.orthonormal_transforms`.
"""

from engine.distributions.orthonormal_transforms import HaarTransform

__all__ = ["HaarTransform"]
