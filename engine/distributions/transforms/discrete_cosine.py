"""The discrete cosine transform.

Pyro's module path ``pyro.distributions.transforms.discrete_cosine``;
the code lives in :mod:`engine.distributions.orthonormal_transforms`.
"""

from engine.distributions.orthonormal_transforms import DiscreteCosineTransform

__all__ = ["DiscreteCosineTransform"]
