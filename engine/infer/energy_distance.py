"""``EnergyDistance``: a likelihood-free training objective for SVI.

Instead of the likelihood of the data it compares the data ``x`` with draws ``X`` from the
posterior predictive (``Z ~ guide``, ``X ~ model(Z)``) by the beta energy score::

    loss = E ||X - x||^beta  -  1/2 E ||X - X'||^beta  -  prior_scale * E log p(Z)

over independent predictive draws ``X, X'`` (Gneiting and Raftery, 2007; Szekely and Rizzo's
energy distance for ``beta = 1``). ``||.||`` is the Euclidean norm over all observed sites at
once, each element weighted by its site's scale and mask. The score is proper (minimised in
expectation by the true data distribution) for any ``beta`` in (0, 2) where ``E||X||^beta`` is
finite: take ``beta < 1`` for heavy-tailed data. It needs only draws, so it trains models whose
likelihood has no tractable density, but draws that gradients flow through: the guide and the
observed sites must be reparameterizable.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def model(data):
...     loc = pyro.param("loc", torch.tensor(0.0))
...     with pyro.plate("data", len(data)):
...         pyro.sample("x", dist.Normal(loc, 1.0), obs=data)
>>> def guide(data):
...     pass
>>> loss = EnergyDistance(num_particles=8)(model, guide, torch.tensor([1.0, 2.0]))
>>> loss.requires_grad, loss.shape
(True, torch.Size([]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from engine.distributions.util import scale_and_mask
from engine.errors import ArgumentError, ModelGuideMismatchError
from engine.infer.elbo import PARTICLE_PLATE
from engine.infer.util import guess_max_plate_nesting, plate_position, vectorize
from engine.poutine.conditioning import UnconditionMessenger
from engine.poutine.handlers import replay, trace
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, is_subsample_site


class EnergyDistance:
    """The posterior predictive energy score, optionally regularised by the prior.

    ``beta`` in (0, 2) is the exponent of the distances; ``prior_scale >= 0`` weights the
    expected log prior density of the latents (0 leaves the model's own latents untrained);
    ``num_particles >= 2`` predictive draws are made per step, vectorised along a dim left of
    the model's ``max_plate_nesting`` plates (read off one run when not given).

    Call it as ``loss = EnergyDistance()(model, guide, *args)`` (a differentiable tensor), or
    pass it to ``SVI`` as the loss; ``loss(model, guide, *args)`` gives its value as a float.

    >>> try:
    ...     EnergyDistance(beta=2.0)
    ... except ValueError as error:
    ...     print(str(error)[:45])
    EnergyDistance(beta=2.0): beta must lie in (0
    """

    def __init__(
        self,
        beta: float = 1.0,
        prior_scale: float = 0.0,
        num_particles: int = 2,
        max_plate_nesting: float | None = None,
    ):
        if not (isinstance(beta, int | float) and 0 < beta < 2):
            raise ArgumentError(
                f"EnergyDistance(beta={beta!r}): beta must lie in (0, 2), where the energy "
                "score is proper; beta=1 is the usual energy distance."
            )
        if not (isinstance(prior_scale, int | float) and prior_scale >= 0):
            raise ArgumentError(
                f"EnergyDistance(prior_scale={prior_scale!r}): the prior's weight must be >= 0."
            )
        if not (isinstance(num_particles, int) and num_particles >= 2):
            raise ArgumentError(
                f"EnergyDistance(num_particles={num_particles!r}): the score compares "
                "predictive draws with each other, so it needs num_particles >= 2."
            )
        self.beta = beta
        self.prior_scale = prior_scale
        self.num_particles = num_particles
        # Pyro's default is infinity, meaning "find out": both spellings read the model.
        unknown = max_plate_nesting is None or max_plate_nesting == math.inf
        self.max_plate_nesting = None if unknown else int(max_plate_nesting)

    def __call__(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The differentiable loss of one batch of ``num_particles`` predictive draws."""
        _, model_trace = self._traces(model, guide, args, kwargs)
        observed = [
            site
            for _, site in model_trace.sample_sites()
            if site["infer"].get("was_observed", False)
        ]
        if not observed:
            raise ArgumentError(
                "EnergyDistance compares predictive draws with observed data, but the model "
                "observes no site. Fix: pass the data as obs= to the model's likelihood sites."
            )
        pairs = torch.triu_indices(self.num_particles, self.num_particles, offset=1)
        to_data = 0.0
        between_draws = 0.0
        for site in observed:
            _check_reparameterized(site, "the model's observed site", "its likelihood")
            to_data = to_data + _squared_distances(site, site["infer"]["obs"], None)
            between_draws = between_draws + _squared_distances(site, None, pairs)
        half = self.beta / 2
        energy = to_data.pow(half).mean() - 0.5 * between_draws.pow(half).mean()
        if self.prior_scale > 0:
            energy = energy - self.prior_scale * _mean_log_prior(model_trace, self.num_particles)
        return energy

    def loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """The loss's value (no gradients), e.g. to watch training."""
        with torch.no_grad():
            return float(self(model, guide, *args, **kwargs))

    def _traces(self, model, guide, args, kwargs) -> tuple[Trace, Trace]:
        nesting = self.max_plate_nesting
        if nesting is None:
            nesting = guess_max_plate_nesting(model, guide, args, kwargs)
        guide = vectorize(guide, self.num_particles, nesting, PARTICLE_PLATE)
        model = vectorize(model, self.num_particles, nesting, PARTICLE_PLATE)
        guide_trace = trace(guide).get_trace(*args, **kwargs)
        for _, site in guide_trace.sample_sites():
            if not site["is_observed"]:
                _check_reparameterized(site, "the guide's site", "the guide")
        # The model draws its observed sites instead (the data waits in infer["obs"]): these
        # draws, given the guide's latents, are the posterior predictive.
        predictive = UnconditionMessenger()(replay(model, trace=guide_trace))
        return guide_trace, trace(predictive).get_trace(*args, **kwargs)


def _check_reparameterized(site: Message, what: str, part: str) -> None:
    if not getattr(site["fn"], "has_rsample", False):
        raise ModelGuideMismatchError(
            f"EnergyDistance: {what} '{site['name']}' ({type(site['fn']).__name__}) cannot be "
            "drawn with reparameterized gradients, and the energy score's gradients flow "
            f"through draws only. Fix: write {part} with reparameterizable distributions "
            "(Normal, LogNormal, ...), or train it with an ELBO instead."
        )


def _squared_distances(site: Message, data: torch.Tensor | None, pairs: torch.Tensor | None):
    """Per draw, the scaled and masked squared distance of the site's draws from ``data``; or,
    with ``pairs`` (two rows of draw indices), per pair, the distance between the two draws."""
    value = site["value"]
    dim = plate_position(site, PARTICLE_PLATE)
    event_dims = len(getattr(site["fn"], "event_shape", ()))
    if pairs is None:
        diff = value - data
    else:
        diff = value.index_select(dim, pairs[0]) - value.index_select(dim, pairs[1])
    squared = diff.pow(2)
    if event_dims:
        squared = squared.flatten(-event_dims).sum(-1)
    scale, mask = site["scale"], site["mask"]
    if pairs is not None:
        # A scale or mask that varies with the draw: a pair keeps the first draw's scale, and
        # counts only where both draws count.
        scale = _per_pair(scale, squared.dim(), dim, pairs[0])
        if isinstance(mask, torch.Tensor):
            mask = _per_pair(mask, squared.dim(), dim, pairs[0]) & _per_pair(
                mask, squared.dim(), dim, pairs[1]
            )
    squared = scale_and_mask(squared, scale, mask)
    return squared.movedim(dim, 0).reshape(squared.shape[dim], -1).sum(-1)


def _per_pair(weights: Any, ndim: int, dim: int, index: torch.Tensor) -> Any:
    if not isinstance(weights, torch.Tensor) or weights.dim() < ndim - dim:
        return weights  # the same for every draw
    position = weights.dim() - (ndim - dim)
    if weights.shape[position] == 1:
        return weights
    return weights.index_select(position, index)


def _mean_log_prior(model_trace: Trace, num_particles: int) -> torch.Tensor:
    total = 0.0
    for _, site in model_trace.sample_sites():
        if site["is_observed"] or site["infer"].get("was_observed", False):
            continue
        if is_subsample_site(site):
            continue
        if "log_prob_sum" not in site:
            model_trace.compute_log_prob(lambda name, s, target=site: s is target)
        total = total + site["log_prob_sum"]
    # Each particle's log prior is summed into log_prob_sum: the mean over particles is E log p.
    return total / num_particles
