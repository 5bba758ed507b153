"""The affine map ``y = loc + scale_tril @ x``.

Pyro's module path ``pyro.distributions.transforms.lower_cholesky_affine``;
the code lives in :mod:`engine.distributions.lower_cholesky_affine`.
"""

from engine.distributions.lower_cholesky_affine import LowerCholeskyAffine

__all__ = ["LowerCholeskyAffine"]
