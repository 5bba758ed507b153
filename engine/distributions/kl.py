"""KL divergences: torch's ``kl_divergence``/``register_kl`` plus rules for the engine's classes.

torch dispatches on the classes' MRO, so every wrapped class already uses torch's rule for its
torch parent. Added here: ``Independent`` pairs that reinterpret different numbers of dims, a
diagonal Normal or a point mass declared independent (``to_event(1)``) against a
``MultivariateNormal``, a point mass against anything, and masked or expanded pairs.

>>> import torch, engine.distributions as dist
>>> p = dist.Normal(torch.zeros(3), 1.0).to_event(1)
>>> q = dist.Normal(torch.ones(3), 1.0).to_event(1)
>>> kl_divergence(p, q)
tensor(1.5000)
"""

from __future__ import annotations

import torch
from torch.distributions import kl_divergence, register_kl

from engine.distributions.delta import Delta
from engine.distributions.torch_distribution import (
    ExpandedDistribution,
    MaskedDistribution,
    _and_masks,
)
from engine.distributions.torch_wrappers import Independent, MultivariateNormal
from engine.distributions.util import broadcast_shape, scale_and_mask, sum_rightmost


@register_kl(Independent, Independent)
def _kl_independent_independent(p: Independent, q: Independent) -> torch.Tensor:
    # Compare at the depth both share; the extra event dims of the deeper one stay in its base.
    shared = min(p.reinterpreted_batch_ndims, q.reinterpreted_batch_ndims)
    p_base = _reinterpreted(p.base_dist, p.reinterpreted_batch_ndims - shared)
    q_base = _reinterpreted(q.base_dist, q.reinterpreted_batch_ndims - shared)
    return sum_rightmost(kl_divergence(p_base, q_base), shared)


def _reinterpreted(
    d: torch.distributions.Distribution, ndims: int
) -> torch.distributions.Distribution:
    return Independent(d, ndims) if ndims else d


@register_kl(Independent, MultivariateNormal)
def _kl_independent_mvn(p: Independent, q: MultivariateNormal) -> torch.Tensor:
    """KL of a vector of independent coordinates against a multivariate normal.

    >>> import engine.distributions as dist
    >>> p = dist.Normal(torch.zeros(2), 1.0).to_event(1)
    >>> kl_divergence(p, dist.MultivariateNormal(torch.zeros(2), torch.eye(2)))
    tensor(0.)
    """
    base, ndims = p.base_dist, p.reinterpreted_batch_ndims
    if ndims == 1 and isinstance(base, Delta) and base.event_dim == 0:
        return -q.log_prob(base.v)  # as for any point mass (see _kl_delta)
    if ndims == 1 and isinstance(base, torch.distributions.Normal):
        # A diagonal Normal is the multivariate normal whose Cholesky factor is diag(scale).
        diagonal = MultivariateNormal(base.loc, scale_tril=torch.diag_embed(base.scale))
        return kl_divergence(diagonal, q)
    raise NotImplementedError(
        f"No KL divergence from Independent({type(base).__name__}, {ndims}) to "
        "MultivariateNormal: only a Normal or a Delta with one dim declared independent "
        "(.to_event(1)) has a closed form here."
    )


@register_kl(Delta, torch.distributions.Distribution)
def _kl_delta(p: Delta, q: torch.distributions.Distribution) -> torch.Tensor:
    # A point mass has no entropy term in the engine's convention: KL = -log q(v).
    return -q.log_prob(p.v)


@register_kl(MaskedDistribution, MaskedDistribution)
@register_kl(MaskedDistribution, torch.distributions.Distribution)
@register_kl(torch.distributions.Distribution, MaskedDistribution)
def _kl_masked(
    p: torch.distributions.Distribution, q: torch.distributions.Distribution
) -> torch.Tensor | float:
    """KL where either side is masked: the KL of the unmasked ones, zero where either mask is
    False (a float 0.0 when a mask is False everywhere, without evaluating anything).

    >>> import engine.distributions as dist
    >>> p = dist.Normal(torch.zeros(2), 1.0).mask(torch.tensor([True, False]))
    >>> kl_divergence(p, dist.Normal(torch.ones(2), 1.0))
    tensor([0.5000, 0.0000])
    """
    p_mask, p = (p._mask, p.base_dist) if isinstance(p, MaskedDistribution) else (True, p)
    q_mask, q = (q._mask, q.base_dist) if isinstance(q, MaskedDistribution) else (True, q)
    mask = _and_masks(p_mask, q_mask)
    if mask is False:
        return 0.0
    return scale_and_mask(kl_divergence(p, q), mask=mask)


# A point mass against a masked distribution: both rules above apply; the point-mass one is
# exact for it too (a masked log_prob is 0 where masked).
register_kl(Delta, MaskedDistribution)(_kl_delta)


@register_kl(ExpandedDistribution, ExpandedDistribution)
def _kl_expanded_expanded(p: ExpandedDistribution, q: ExpandedDistribution) -> torch.Tensor:
    kl = kl_divergence(p.base_dist, q.base_dist)
    return kl.expand(broadcast_shape(kl.shape, p.batch_shape, q.batch_shape))


__all__ = ["kl_divergence", "register_kl"]
