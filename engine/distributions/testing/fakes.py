"""Pyro's ``pyro.distributions.testing.fakes``: distributions that pretend not to be
reparameterizable (``has_rsample = False``), so inference must use score-function gradients for
them. Pyro's SVI part III tutorial builds its guide from :class:`NonreparameterizedBeta` to show
``TraceGraph_ELBO``'s variance reduction.

Draws are the same as the real distribution's, only without a path for gradients:

>>> import torch
>>> alpha = torch.tensor(2.0, requires_grad=True)
>>> NonreparameterizedBeta(alpha, torch.tensor(3.0))().requires_grad
False
>>> import engine.distributions as dist
>>> dist.Beta(alpha, torch.tensor(3.0))().requires_grad
True
"""

from __future__ import annotations

from engine.distributions import Beta, Dirichlet, Gamma, Normal


class NonreparameterizedBeta(Beta):
    """``Beta`` whose draws carry no gradient (``has_rsample = False``)."""

    has_rsample = False


class NonreparameterizedGamma(Gamma):
    """``Gamma`` whose draws carry no gradient (``has_rsample = False``)."""

    has_rsample = False


class NonreparameterizedDirichlet(Dirichlet):
    """``Dirichlet`` whose draws carry no gradient (``has_rsample = False``)."""

    has_rsample = False


class NonreparameterizedNormal(Normal):
    """``Normal`` whose draws carry no gradient (``has_rsample = False``)."""

    has_rsample = False


__all__ = [
    "NonreparameterizedBeta",
    "NonreparameterizedDirichlet",
    "NonreparameterizedGamma",
    "NonreparameterizedNormal",
]
