"""Affine autoregressive (inverse autoregressive) flows, plain and conditional.

Pyro's module path ``pyro.distributions.transforms.affine_autoregressive``;
the code lives in :mod:`engine.distributions.affine_autoregressive`.
"""

from engine.distributions.affine_autoregressive import (
    AffineAutoregressive,
    ConditionalAffineAutoregressive,
    affine_autoregressive,
    conditional_affine_autoregressive,
)

__all__ = [
    "AffineAutoregressive",
    "ConditionalAffineAutoregressive",
    "affine_autoregressive",
    "conditional_affine_autoregressive",
]
