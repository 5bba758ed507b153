"""``TraceMeanField_ELBO``: the ELBO with analytic KL divergences where they are known.

For a mean-field guide (each latent site's guide and prior independent of the other latent
sites' values), E_q[log p(z) - log q(z)] at a site is -KL(q || p). Where torch or the engine
registers that KL for the pair of distributions it is computed exactly, removing that site's
Monte Carlo noise; elsewhere the site is estimated as in :class:`Trace_ELBO`.

>>> import engine, engine.distributions as dist
>>> def model():
...     engine.sample("z", dist.Normal(0.0, 1.0))
>>> def guide():
...     engine.sample("z", dist.Normal(1.0, 1.0))
>>> TraceMeanField_ELBO().loss(model, guide)  # KL(N(1,1) || N(0,1)) = 1/2
0.5
"""

from __future__ import annotations

import warnings

import torch

from engine.distributions import kl_divergence
from engine.distributions.validation import structure_checks_enabled
from engine.infer.trace_elbo import (
    Trace_ELBO,
    is_reparameterized,
)
from engine.poutine.trace_struct import Trace, scale_and_mask
from engine.runtime import Message


def analytic_kl(guide_site: Message, model_site: Message) -> torch.Tensor | None:
    """KL(q || p) for one site, scaled and masked as the guide site is (Pyro's convention; the
    two sides agree unless a ``poutine.scale`` or ``mask`` wraps only one), or None when unknown."""
    try:
        kl = kl_divergence(guide_site["fn"], model_site["fn"])
    except NotImplementedError:
        return None
    return scale_and_mask(kl, guide_site["scale"], guide_site["mask"])


def warn_if_not_mean_field(model_trace: Trace, guide_trace: Trace) -> None:
    """Warn, naming the sites, when model and guide meet their shared sample sites in another
    order: the cheap check (as Pyro's) that the guide may not be mean-field, where a site's
    closed-form KL would be taken against a prior whose parents the guide draws later.

    >>> import warnings, engine, engine.distributions as dist
    >>> from engine import poutine
    >>> def model():
    ...     engine.sample("a", dist.Normal(0.0, 1.0))
    ...     engine.sample("b", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     engine.sample("b", dist.Normal(0.0, 1.0))
    ...     engine.sample("a", dist.Normal(0.0, 1.0))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_not_mean_field(poutine.trace(model).get_trace(),
    ...                            poutine.trace(guide).get_trace())
    >>> "(model: ['a', 'b'], guide: ['b', 'a'])" in str(caught[0].message)
    True
    """
    model_order = [
        name
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample" and name in guide_trace.nodes
    ]
    guide_order = [
        name
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and name in model_trace.nodes
    ]
    if model_order != guide_order:
        warnings.warn(
            "TraceMeanField_ELBO could not verify that the guide is mean-field: the model and "
            "the guide meet their shared sample sites in different orders (model: "
            f"{model_order}, guide: {guide_order}). Its closed-form KL "
            "terms are exact only for a guide whose sites do not depend on each other in "
            "another order than the model's; sample them in the model's order (or use "
            "Trace_ELBO).",
            UserWarning,
            stacklevel=3,
        )


class TraceMeanField_ELBO(Trace_ELBO):
    """The ELBO with closed-form KL terms; see the module docstring."""

    def _particle_elbo(
        self, model_trace: Trace, guide_trace: Trace
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if structure_checks_enabled():
            warn_if_not_mean_field(model_trace, guide_trace)
        exact = {}
        for name, guide_site in guide_trace.iter_stochastic_nodes():
            model_site = model_trace.nodes.get(name)
            if not is_reparameterized(guide_site) or model_site is None:
                continue  # auxiliary guide sites have no model counterpart: scored below
            kl = analytic_kl(guide_site, model_site)
            if kl is not None:
                # A KL masked out everywhere is a plain 0.0 (nothing was evaluated).
                exact[name] = torch.as_tensor(kl).sum()
        # Every other site is estimated exactly as Trace_ELBO does.
        elbo, surrogate = self._score_sites(
            [site for name, site in model_trace.sample_sites() if name not in exact],
            [site for name, site in guide_trace.iter_stochastic_nodes() if name not in exact],
        )
        kl_total = torch.stack(list(exact.values())).sum() if exact else 0.0
        return elbo.sum() - kl_total, surrogate - kl_total
