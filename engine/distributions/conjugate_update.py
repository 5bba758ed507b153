"""``conjugate_update``: fuse two densities of one family over the same variable (Pyro's method).

The product of two Beta, two Dirichlet or two Gamma densities in ``x`` is again, up to a constant,
a density of the same family: exponents add. ``f.conjugate_update(g)`` returns that normalised
density ``fg`` and the log of the constant, so that for every ``x``

    f.log_prob(x) + g.log_prob(x) == fg.log_prob(x) + log_normalizer

Typical use: ``g`` is a likelihood written as a density over the latent (``Beta(1 + heads,
1 + tails)`` for coin flips) and ``fg`` the posterior, ``log_normalizer`` the log evidence.
With ``log B(c) = sum lgamma(c_i) - lgamma(sum c_i)`` the multivariate Beta function:

* Dirichlet(c1) x Dirichlet(c2) = Dirichlet(c1 + c2 - 1), constant ``log B(c) - log B(c1) -
  log B(c2)``; Beta is the two-component case.
* Gamma(a1, r1) x Gamma(a2, r2) = Gamma(a1 + a2 - 1, r1 + r2), constant
  ``a1 log r1 + a2 log r2 - lgamma(a1) - lgamma(a2) - a log r + lgamma(a)``.

Only parameters broadcast; the batch shape of ``fg`` is the broadcast of both batch shapes.

>>> import torch, engine.distributions as dist
>>> prior, likelihood = dist.Beta(2.0, 2.0), dist.Beta(1.0 + 7, 1.0 + 3)  # 7 heads, 3 tails
>>> posterior, log_evidence = prior.conjugate_update(likelihood)
>>> posterior.concentration1.item(), posterior.concentration0.item()
(9.0, 5.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from engine.errors import ArgumentError


def _check_family(self: Any, other: Any, family: type) -> None:
    if not isinstance(other, family):
        raise ArgumentError(
            f"{type(self).__name__}.conjugate_update(other) fuses two {family.__name__} "
            f"densities, got other = {type(other).__name__}. Fix: pass a {family.__name__}."
        )


def _log_multivariate_beta(concentration: torch.Tensor) -> torch.Tensor:
    """``log B(c)`` over the last dim."""
    return torch.lgamma(concentration).sum(-1) - torch.lgamma(concentration.sum(-1))


def _fuse_concentrations(c1: torch.Tensor, c2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concentrations of the fused Dirichlet and the log normaliser (see the module docstring)."""
    c = c1 + c2 - 1
    log_normalizer = (
        _log_multivariate_beta(c) - _log_multivariate_beta(c1) - _log_multivariate_beta(c2)
    )
    return c, log_normalizer


def dirichlet_conjugate_update(self: Any, other: Any) -> tuple[Any, torch.Tensor]:
    """Fuse two Dirichlet densities: ``Dirichlet(c1 + c2 - 1)`` and the log normaliser.

    >>> import torch, engine.distributions as dist
    >>> flat, counts = dist.Dirichlet(torch.ones(3)), dist.Dirichlet(torch.tensor([2.0, 3, 4]))
    >>> fg, _ = flat.conjugate_update(counts)
    >>> fg.concentration
    tensor([2., 3., 4.])
    """
    _check_family(self, other, torch.distributions.Dirichlet)
    c, log_normalizer = _fuse_concentrations(self.concentration, other.concentration)
    return type(self)(c), log_normalizer


def beta_conjugate_update(self: Any, other: Any) -> tuple[Any, torch.Tensor]:
    """Fuse two Beta densities (two-component Dirichlets): exponents add.

    >>> import torch, engine.distributions as dist
    >>> fg, log_normalizer = dist.Beta(1.0, 1.0).conjugate_update(dist.Beta(3.0, 2.0))
    >>> (fg.concentration1.item(), fg.concentration0.item()), log_normalizer.item()
    ((3.0, 2.0), 0.0)
    """
    _check_family(self, other, torch.distributions.Beta)
    c1 = torch.stack(torch.broadcast_tensors(self.concentration1, self.concentration0), -1)
    c2 = torch.stack(torch.broadcast_tensors(other.concentration1, other.concentration0), -1)
    c, log_normalizer = _fuse_concentrations(c1, c2)
    return type(self)(c[..., 0], c[..., 1]), log_normalizer


def gamma_conjugate_update(self: Any, other: Any) -> tuple[Any, torch.Tensor]:
    """Fuse two Gamma densities: ``Gamma(a1 + a2 - 1, r1 + r2)`` and the log normaliser.

    >>> import torch, engine.distributions as dist
    >>> fg, _ = dist.Gamma(2.0, 1.0).conjugate_update(dist.Gamma(4.0, 3.0))
    >>> fg.concentration.item(), fg.rate.item()
    (5.0, 4.0)
    """
    _check_family(self, other, torch.distributions.Gamma)
    a1, r1, a2, r2 = self.concentration, self.rate, other.concentration, other.rate
    a, r = a1 + a2 - 1, r1 + r2
    log_normalizer = (
        a1 * r1.log()
        + a2 * r2.log()
        - torch.lgamma(a1)
        - torch.lgamma(a2)
        - a * r.log()
        + torch.lgamma(a)
    )
    return type(self)(a, r), log_normalizer


# The torch families that have a conjugate update, and the method each wrapper class gets.
CONJUGATE_UPDATES: dict[type, Callable[[Any, Any], tuple[Any, torch.Tensor]]] = {
    torch.distributions.Beta: beta_conjugate_update,
    torch.distributions.Dirichlet: dirichlet_conjugate_update,
    torch.distributions.Gamma: gamma_conjugate_update,
}
