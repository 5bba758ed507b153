"""``ConjugateReparam``: draw a latent site from its prior fused with a hand-written likelihood.

When the data's likelihood of a latent ``z`` is known up to a constant as a density ``g(z)`` of
the prior's conjugate family (``Beta(1 + heads, 1 + tails)`` for coin flips), the prior ``p(z)``
times ``g(z)`` is, normalised, the posterior ``u(z)``: ``p(z) g(z) = Z u(z)`` (see
:meth:`~engine.distributions.Distribution.conjugate_update`). This reparameterizer draws the site
from ``u`` instead of ``p`` and gives it the importance weight ``p(z) / u(z) = Z / g(z)``, so the
model's joint density is unchanged. With an exact ``g`` the weight times the downstream
likelihood no longer depends on ``z``: an empty guide is then exact for SVI, and nothing is left
for MCMC to explore.

The draw from ``u`` is hidden randomness of the model, like ``torch.randn`` in model code: it is
not a sample site of its own (a guide or MCMC has nothing to infer about it), and the rewritten
site becomes a deterministic one whose point mass carries the weight.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> heads, tails = torch.tensor(7.0), torch.tensor(3.0)
>>> def model():
...     p = engine.sample("p", dist.Beta(2.0, 2.0))
...     engine.sample("heads", dist.Binomial(heads + tails, p), obs=heads)
>>> reparam_model = poutine.reparam(model, {"p": ConjugateReparam(dist.Beta(1 + heads, 1 + tails))})
>>> with engine.plate("draws", 40000):
...     p = poutine.trace(reparam_model).get_trace().nodes["p"]["value"]
>>> round(p.mean().item(), 2)  # the posterior Beta(9, 5) has mean 9 / 14 = 0.643
0.64
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from engine.distributions import Delta
from engine.distributions.util import sum_rightmost
from engine.errors import ArgumentError, ReparamError
from engine.infer.reparam.reparam import (
    Reparam,
    ReparamMessage,
    ReparamResult,
    unwrap_independent,
    wrap_event,
)
from engine.poutine.broadcast_messenger import broadcast_to_frames
from engine.poutine.runtime import get_plates


class ConjugateReparam(Reparam):
    """Draw a latent site from its prior conjugate-updated with ``guide``, weighted back to the
    prior; see the module docstring.

    ``guide`` is the likelihood written as a density over the site: a distribution, or a function
    of the model's arguments returning one (then ``poutine.reparam`` must wrap the model,
    ``poutine.reparam(model, config)``, so that the arguments reach it). Its family must be one the
    prior's ``conjugate_update`` accepts (Beta with Beta, Gamma with Gamma, Dirichlet with
    Dirichlet). It may be approximate: the weight keeps the model exact, only the variance of
    estimates grows.

    >>> import engine, engine.distributions as dist
    >>> with engine.poutine.trace() as tracer:
    ...     with engine.poutine.reparam(config={"r": ConjugateReparam(dist.Gamma(3.0, 2.0))}):
    ...         _ = engine.sample("r", dist.Gamma(2.0, 1.0))
    >>> list(tracer.trace.nodes), tracer.trace.nodes["r"]["infer"]["_deterministic"]
    (['r'], True)
    """

    def __init__(self, guide: Any | Callable[..., Any]):
        if not (isinstance(guide, torch.distributions.Distribution) or callable(guide)):
            raise ReparamError(
                "ConjugateReparam(guide) takes a distribution over the site (the likelihood as a "
                "density of the latent) or a function of the model's arguments returning one; "
                f"got a {type(guide).__name__}."
            )
        self.guide = guide

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw the site from the updated prior (keep its value, if it has one) and return a point
        mass carrying the log weight ``log Z - log g(z)``."""
        name = msg["name"]
        if msg["is_observed"]:
            raise ReparamError(
                f"Site '{name}' is observed, and ConjugateReparam rewrites latent sites: an "
                "observed prior has nothing to update. Leave the site out of poutine.reparam's "
                "config."
            )
        guide = self._guide_distribution(name)
        prior, event_dim = unwrap_independent(msg["fn"])
        if prior is not msg["fn"]:
            # conjugate_update is a property of the family: fuse the base distributions, and sum
            # the constant over the dims the Independent wrappers made part of one event.
            guide, _ = unwrap_independent(guide)
        try:
            posterior, log_normalizer = prior.conjugate_update(guide)
        except (NotImplementedError, ArgumentError) as error:
            raise ReparamError(
                f"Site '{name}': ConjugateReparam could not make the conjugate update of its "
                f"{type(prior).__name__} prior with the guide's {type(guide).__name__}: {error}"
            ) from error
        if not posterior.has_rsample:
            raise ReparamError(
                f"Site '{name}': the updated {type(posterior).__name__} cannot be drawn "
                "reparameterized (rsample), which ConjugateReparam needs for its gradients."
            )
        folded = event_dim - len(prior.event_shape)
        value = msg["value"]
        if value is None:
            value = _draw_in_plates(name, wrap_event(posterior, event_dim))
        log_weight = log_normalizer - guide.log_prob(value)
        return {
            "fn": Delta(value, sum_rightmost(log_weight, folded), event_dim=event_dim),
            "value": value,
            "is_observed": True,
        }

    def _guide_distribution(self, name: str) -> Any:
        """The guide distribution (the guide called on the model's arguments, if a function)."""
        guide = self.guide
        if isinstance(guide, torch.distributions.Distribution):
            return guide
        if self.args_kwargs is None:
            # Under a with block the model's arguments are unknown: only a guide without any
            # can be called.
            args, kwargs = (), {}
        else:
            args, kwargs = self.args_kwargs
        try:
            result = guide(*args, **kwargs)
        except TypeError as error:
            if self.args_kwargs is not None:
                raise
            raise ReparamError(
                f"Site '{name}': ConjugateReparam's guide is a function of the model's arguments, "
                "which only reach it when poutine.reparam wraps the model: write "
                "poutine.reparam(model, config) instead of a with block."
            ) from error
        if not isinstance(result, torch.distributions.Distribution):
            raise ReparamError(
                f"Site '{name}': ConjugateReparam's guide function returned a "
                f"{type(result).__name__}; it must return a distribution over the site."
            )
        return result


def _draw_in_plates(name: str, fn: Any) -> torch.Tensor:
    """A reparameterized draw of ``fn`` expanded to every plate enclosing the site: the draw is not
    a sample site, so the plates would not broadcast it otherwise."""
    msg = {"name": name, "fn": fn, "value": None, "is_observed": False, "cond_indep_stack": ()}
    frames = get_plates()
    msg["cond_indep_stack"] = frames
    broadcast_to_frames(msg, frames)
    return msg["fn"].rsample()
