"""``Trace_ELBO``: the Monte Carlo ELBO, with pathwise gradients for reparameterised guide sites
and a score-function (REINFORCE) surrogate for the others.

For a non-reparameterised guide site z the gradient of E_q[log p - log q] has the extra term
E_q[(log p - log q) * grad log q(z)], so the surrogate adds ``log q(z) * cost.detach()``, where
the cost is the ELBO reduced to what z's plates let it influence (element i of a plate only
meets element i of the costs in that plate: see :mod:`engine.infer.rao_blackwell`); its own
``-log q(z)`` term has zero expected gradient and is left out. That ``log q(z)`` is taken
*without* the site's scale: the ELBO it multiplies already carries every scale (a mini-batch
factor N/B, a ``poutine.scale``), and scaling both would count it twice.

>>> import torch, engine, engine.distributions as dist
>>> def model():
...     engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
>>> round(Trace_ELBO().loss(model, lambda: None), 4)
0.9189
"""

from __future__ import annotations

import torch

from engine.infer.batched_log_prob import log_prob_total
from engine.infer.elbo import ELBO, PARTICLE_PLATE
from engine.infer.rao_blackwell import cost_seen_by, independent_sites
from engine.infer.util import sum_except_plate
from engine.poutine.trace_struct import Trace, compute_site_log_prob, scale_and_mask
from engine.runtime import Message


def particle_total(values: torch.Tensor, site: Message) -> torch.Tensor:
    """Sum a site's per-element ``values`` over everything but the vectorised-particle dim."""
    return sum_except_plate(values, site, PARTICLE_PLATE)


def site_total(site: Message) -> torch.Tensor:
    """A site's log-prob summed over everything but the vectorised-particle dim (if any)."""
    for frame in site["cond_indep_stack"]:
        if frame.name == PARTICLE_PLATE:
            return particle_total(site["log_prob"], site)
    return site["log_prob_sum"]


def score_log_prob(site: Message) -> torch.Tensor:
    """The log-density a score-function term differentiates: masked, but not scaled."""
    return scale_and_mask(site["unscaled_log_prob"], 1.0, site["mask"])


def is_reparameterized(site: Message) -> bool:
    """Whether a guide site's value carries a pathwise gradient."""
    return bool(getattr(site["fn"], "has_rsample", False))


def total_seen_by(site: Message, costs: list[tuple[Message, torch.Tensor]]) -> torch.Tensor:
    """The sum of the costs that ``site`` can influence, each reduced to ``site``'s plates."""
    seen = torch.zeros(())
    for cost_site, cost in costs:
        if not independent_sites(site, cost_site):
            seen = seen + cost_seen_by(site, cost_site, cost)
    return seen


def stacked_sum(terms: list[torch.Tensor]) -> torch.Tensor:
    """Sum equally-shaped terms in one op: one autograd node instead of a chain of additions."""
    if not terms:
        return torch.zeros(())
    return terms[0] if len(terms) == 1 else torch.stack(terms).sum(0)


class Trace_ELBO(ELBO):
    """The standard ELBO estimator; see the module docstring.

    >>> Trace_ELBO(num_particles=10, vectorize_particles=True).num_particles
    10
    """

    def _particle_elbo(
        self, model_trace: Trace, guide_trace: Trace
    ) -> tuple[torch.Tensor, torch.Tensor]:
        model_sites = [site for _, site in model_trace.sample_sites()]
        guide_sites = [site for _, site in guide_trace.iter_stochastic_nodes()]
        return self._score_sites(model_sites, guide_sites)

    @staticmethod
    def _score_sites(
        model_sites: list[Message], guide_sites: list[Message]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ELBO and surrogate contributed by these model and guide (latent) sites."""
        if all(is_reparameterized(site) for site in guide_sites):
            # Only the total is needed: same-family sites are scored in batches.
            elbo = log_prob_total(model_sites) - log_prob_total(guide_sites)
            return elbo, elbo
        for site in (*model_sites, *guide_sites):
            if "log_prob" not in site:
                compute_site_log_prob(site)
        costs = [(site, site["log_prob"]) for site in model_sites]
        costs += [(site, -site["log_prob"]) for site in guide_sites]
        elbo = stacked_sum([site_total(site) for site in model_sites])
        elbo = elbo - stacked_sum([site_total(site) for site in guide_sites])
        surrogate = elbo.sum()
        for site in guide_sites:
            if is_reparameterized(site):
                continue
            # Cancel the site's own -log q (no useful gradient) and add its score term, weighted
            # by the part of the ELBO its plates let it influence.
            cost = total_seen_by(site, costs).detach()
            surrogate = surrogate + site_total(site).sum() + (score_log_prob(site) * cost).sum()
        return elbo.sum(), surrogate
