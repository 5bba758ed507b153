"""``RenyiELBO``: the variational Renyi bound of Li and Turner (2016).

With ``K = num_particles`` draws ``z_k`` of the guide and their log weights
``l_k = log p(x, z_k) - log q(z_k)``, the bound is::

    L_alpha = 1 / (1 - alpha) * log( 1/K * sum_k exp((1 - alpha) * l_k) )

``alpha = 0`` gives the importance-weighted bound of Burda et al. (IWAE), which tightens as ``K``
grows; ``alpha -> 1`` would be the usual ELBO (use ``Trace_ELBO`` for that); ``alpha < 0``
gives looser, mass-covering bounds. The loss is ``-L_alpha``. Reparameterized guide sites pass
their gradient through the draws; the other guide sites add a score-function term with the
whole bound as its reward.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def model():
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
...     pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(0.0))
>>> loss = RenyiELBO(num_particles=2).loss(model, model)
>>> isinstance(loss, float)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from engine.errors import ArgumentError
from engine.infer.elbo import ELBO
from engine.infer.trace_elbo import is_reparameterized, site_total, stacked_sum
from engine.poutine.trace_struct import Trace, compute_site_log_prob


def particle_log_weights(model_trace: Trace, guide_trace: Trace) -> tuple[torch.Tensor, list]:
    """The log weights ``log p(x, z) - log q(z)`` of a trace pair, one per particle (a
    vectorised pair holds all of them), and the guide's latent sites.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("z", dist.Normal(0.0, 1.0))
    >>> guide_trace = engine.poutine.trace(model).get_trace()
    >>> model_trace = engine.poutine.trace(engine.poutine.replay(model, guide_trace)).get_trace()
    >>> particle_log_weights(model_trace, guide_trace)[0]  # q = p
    tensor([0.])
    """
    log_p, log_q, guide_sites = particle_log_densities(model_trace, guide_trace)
    return log_p - log_q, guide_sites


def particle_log_densities(
    model_trace: Trace, guide_trace: Trace
) -> tuple[torch.Tensor, torch.Tensor, list]:
    """``log p(x, z)`` and ``log q(z)`` of a trace pair, one value per particle each (a
    vectorised pair holds all of them), and the guide's latent sites: the two halves of
    :func:`particle_log_weights`, for estimators that treat them apart (reweighted wake-sleep).

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("z", dist.Normal(0.0, 1.0))
    >>> guide_trace = engine.poutine.trace(model).get_trace()
    >>> model_trace = engine.poutine.trace(engine.poutine.replay(model, guide_trace)).get_trace()
    >>> log_p, log_q, _ = particle_log_densities(model_trace, guide_trace)
    >>> log_p.shape, bool(log_p == log_q)
    (torch.Size([1]), True)
    """
    model_sites = [site for _, site in model_trace.sample_sites()]
    guide_sites = [site for _, site in guide_trace.iter_stochastic_nodes()]
    for site in (*model_sites, *guide_sites):
        if "log_prob" not in site:
            compute_site_log_prob(site)
    log_p = stacked_sum([site_total(s) for s in model_sites]).reshape(-1)
    log_q = stacked_sum([site_total(s) for s in guide_sites]).reshape(-1)
    return log_p, log_q, guide_sites


class RenyiELBO(ELBO):
    """The Renyi (alpha-divergence) bound; ``alpha`` must differ from 1 and ``num_particles``
    (the ``K`` of the bound) is best above 1: with one particle every alpha gives the ELBO.
    The other arguments are :class:`~engine.infer.elbo.ELBO`'s.

    >>> RenyiELBO(alpha=1.0)
    Traceback (most recent call last):
    ...
    engine.errors.ArgumentError: RenyiELBO(alpha=1.0): alpha = 1 is the usual ELBO; use Trace_ELBO.
    """

    def __init__(
        self,
        alpha: float = 0.0,
        num_particles: int = 2,
        max_plate_nesting: int | float = math.inf,
        vectorize_particles: bool = False,
        strict_enumeration_warning: bool = True,
    ):
        if alpha == 1:
            raise ArgumentError(
                f"RenyiELBO(alpha={alpha!r}): alpha = 1 is the usual ELBO; use Trace_ELBO."
            )
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
        )
        self.alpha = alpha

    def _elbo_and_surrogate(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_weights, log_scores = [], []
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            particle_log_w, guide_sites = particle_log_weights(model_trace, guide_trace)
            log_weights.append(particle_log_w)
            log_scores += [site_total(s).sum() for s in guide_sites if not is_reparameterized(s)]
        log_w = torch.cat(log_weights)
        scaled = (1.0 - self.alpha) * log_w
        bound = (scaled.logsumexp(0) - math.log(log_w.numel())) / (1.0 - self.alpha)
        # REINFORCE for the draws without a pathwise gradient: each one's score, times the
        # bound they jointly produce.
        if not log_scores:
            return bound, bound
        return bound, bound + bound.detach() * stacked_sum(log_scores)
