"""``TraceTMC_ELBO``: Tensor Monte Carlo, an estimate of ``log p(x)`` in which a site's several
draws are summed out like the values of an enumerated site.

A site marked ``infer={"enumerate": "parallel", "num_samples": k}`` (``config_enumerate(model,
num_samples=k)`` marks every latent site so) takes ``k`` draws in an enumeration dim of its own,
from the guide when the guide samples it, from its prior in the model otherwise (see
:class:`~engine.poutine.enum_messenger.EnumMessenger` for how draws of dependent sites are
paired). Every site then contributes a factor over the draws and values it depends on:

- an observed or enumerated model site its log-density ``log p``;
- a guide site ``log p - log q`` (the model's factor minus its own), times the weight of each of
  its draws, ``1/k``; a site the guide enumerates exhaustively weighs each value by ``q``, so the
  guide cancels and the value is summed out exactly;
- a model site drawn from its own prior ``p / p = 1``, times ``1/k``.

The sum over every combination of draws and values of the product of the factors (the
sum-product of :mod:`engine.infer.enum.sum_product`, which needs no table of every combination
as long as nothing outside a plate depends on what is inside it) is an unbiased estimate of
``p(x)`` when each site's draws are drawn given the draws of the sites it depends on; its log is
the ELBO here, a lower bound of ``log p(x)`` in expectation that tightens as ``k`` grows. The
gradient: reparameterised draws carry it through their values, and a draw that is not
reparameterised adds ``log q - stop_gradient(log q)`` to its factor (zero in value, the score
function in gradient, as DiCE writes it).

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import config_enumerate
>>> def model(x):
...     z = engine.sample("z", dist.Normal(0.0, 1.0))
...     engine.sample("x", dist.Normal(z, 1.0), obs=x)
>>> engine.set_rng_seed(0)
>>> tmc = TraceTMC_ELBO().loss(config_enumerate(model, num_samples=20000), lambda x: None,
...                            torch.tensor(1.0))
>>> exact = -dist.Normal(0.0, 2.0**0.5).log_prob(torch.tensor(1.0)).item()  # z summed out
>>> abs(tmc - exact) < 0.02
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from engine.errors import EnumerationNotSupportedError, describe_site
from engine.infer.elbo import checked_pair
from engine.infer.enum.elbo import EnumeratingELBO, enumerated_traces, first_enum_dim
from engine.infer.enum.factors import enumerated_sites, log_density, site_factor, trace_plates
from engine.infer.enum.sum_product import Factor, contract, plate_total
from engine.infer.trace_elbo import is_reparameterized
from engine.poutine.trace_struct import Trace
from engine.runtime import Message


class TraceTMC_ELBO(EnumeratingELBO):
    """The Tensor Monte Carlo estimate of ``log p(x)`` (see the module docstring); its negative
    is the loss.

    Mark the sites to draw several times with ``infer={"enumerate": "parallel",
    "num_samples": k}`` (or ``config_enumerate(fn, num_samples=k)``, on the model, the guide or
    both); sites marked ``"parallel"`` without ``num_samples`` are enumerated exhaustively, and
    guide sites with no mark are drawn once. A model site missing from the guide must be marked.
    ``num_particles`` averages independent estimates (of ``log p(x)``, as the other ELBOs average
    theirs). Sequential enumeration is not offered: mark those sites ``"parallel"``.

    >>> import torch, engine, engine.distributions as dist
    >>> from engine.infer import config_enumerate
    >>> @config_enumerate
    ... def model():
    ...     z = engine.sample("z", dist.Bernoulli(0.25))
    ...     engine.sample("x", dist.Normal(4.0 * z, 1.0), obs=torch.tensor(4.0))
    >>> loss = TraceTMC_ELBO().loss(model, lambda: None)  # z has two values: summed out exactly
    >>> exact = -torch.logsumexp(torch.stack([
    ...     torch.tensor(0.75).log() + dist.Normal(0.0, 1.0).log_prob(torch.tensor(4.0)),
    ...     torch.tensor(0.25).log() + dist.Normal(4.0, 1.0).log_prob(torch.tensor(4.0))]), 0)
    >>> abs(loss - exact.item()) < 1e-6
    True
    """

    def _particle_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> Iterator[tuple[Trace, Trace]]:
        model_trace, guide_trace = enumerated_traces(
            model, guide, first_enum_dim(self), args, kwargs
        )
        for role, tr in (("guide", guide_trace), ("model", model_trace)):
            for _, site in tr.iter_stochastic_nodes():
                if site["infer"].get("enumerate") == "sequential":
                    raise _sequential_error(site, role)
        pair = checked_pair(model_trace, guide_trace)
        self._warn_if_nothing_enumerated(model_trace, guide_trace)
        yield pair

    def _particle_elbo(
        self, model_trace: Trace, guide_trace: Trace
    ) -> tuple[torch.Tensor, torch.Tensor]:
        estimate = tmc_estimate(model_trace, guide_trace)
        return estimate, estimate  # its gradient is the estimator's (the DiCE terms)


def tmc_estimate(model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
    """The log of the Tensor Monte Carlo estimate of ``p(x)`` from one enumerated trace pair."""
    guide_variables = enumerated_sites(guide_trace)
    model_variables = {
        name: variable
        for name, variable in enumerated_sites(model_trace).items()
        if name not in guide_variables
    }
    variables = {**guide_variables, **model_variables}
    plates = trace_plates(model_trace, guide_trace)
    factors: list[Factor] = []
    for name, site in model_trace.sample_sites():
        # An enumerated site's own probabilities stay unmasked: they must sum to one.
        masked = name not in model_variables
        log_p = site_factor(site, log_density(site, masked), variables, plates)
        factors.append(log_p)
        if name in model_variables and site["infer"].get("num_samples") is not None:
            factors.extend(_drawn(site, log_p))  # drawn from its prior: p over the proposal
    for name, site in guide_trace.iter_stochastic_nodes():
        log_q = site_factor(site, log_density(site), variables, plates)
        if name in guide_variables and site["infer"].get("num_samples") is None:
            # Exhaustively enumerated: each value weighs q (unmasked, unscaled), cancelling the
            # guide, so the value is summed out exactly.
            weight = site_factor(site, log_density(site, masked=False), variables, plates)
            factors.extend([_negated(log_q), Factor(weight.tensor, weight.labels, weight.sites)])
        else:
            factors.extend(_drawn(site, log_q))
    total = torch.zeros(())
    for factor in contract(factors, variables, plates, set(variables)):
        total = total + plate_total(factor, plates)
    return total


def _drawn(site: Message, log_density: Factor) -> list[Factor]:
    """The factors of a drawn site (``k`` draws, or one): minus the log-density of the proposal
    its draws came from, and the weight ``1/k`` of each draw, with the score function in its
    gradient when the draw is not reparameterised.

    A site whose distribution depends on a sampled site was drawn given one of that site's
    draws per draw (see :meth:`~engine.poutine.enum_messenger.EnumMessenger._sample`): its
    proposal is the mixture of its density over those draws, ``(1/k) sum_j p(w | z_j)``, which
    weighs every pairing ``(w_i, z_j)`` without bias (drawing ``w_i`` given ``z_i`` is a
    stratified draw from that mixture). Without such a site the proposal is the density itself.
    """
    num_samples = site["infer"].get("num_samples") or 1
    parents = [name for name in site["infer"].get("_tmc_parents", ()) if name in log_density.labels]
    proposal, own = log_density, log_density
    if parents:
        diagonal = (site["infer"].get("tmc") or "diagonal") == "diagonal"
        axes = [log_density.labels.index(name) for name in parents]
        if diagonal:
            # one joint index over the parents' draws: draw i of each goes with draw i
            paired = _diagonal(log_density, axes)
            proposal = _logmeanexp(paired, [0])
            own_axis = log_density.labels.index(site["name"])
            own = _diagonal(log_density, [own_axis, *axes])  # density of w_i given z_i
        else:
            proposal = own = _logmeanexp(log_density, axes)  # each draw's ancestor at random
    factors = [_negated(proposal)]
    reparameterized = is_reparameterized(site)
    if num_samples == 1 and reparameterized:
        return factors
    tensor = own.tensor
    if reparameterized:
        weight = torch.full_like(tensor, -math.log(num_samples))
    else:
        weight = tensor - tensor.detach() - math.log(num_samples)
    return [*factors, Factor(weight, own.labels, own.sites)]


def _negated(factor: Factor) -> Factor:
    return Factor(-factor.tensor, factor.labels, factor.sites, factor.scale)


def _diagonal(factor: Factor, axes: list[int]) -> Factor:
    """``factor`` on the diagonal of ``axes`` (all of one size): one axis, first, for all of
    them, labelled as the first of them."""
    rest = [axis for axis in range(factor.tensor.dim()) if axis not in axes]
    tensor = factor.tensor.permute([*axes, *rest])
    index = torch.arange(tensor.shape[0], device=tensor.device)
    tensor = tensor[(index,) * len(axes)]
    labels = (factor.labels[axes[0]], *(factor.labels[axis] for axis in rest))
    return Factor(tensor, labels, factor.sites, factor.scale)


def _logmeanexp(factor: Factor, axes: list[int]) -> Factor:
    """The log of the mean of ``exp(factor)`` over ``axes``."""
    count = math.prod(factor.tensor.shape[axis] for axis in axes)
    tensor = factor.tensor.logsumexp(axes) - math.log(count)
    labels = tuple(label for axis, label in enumerate(factor.labels) if axis not in axes)
    return Factor(tensor, labels, factor.sites, factor.scale)


def _sequential_error(site: Message, role: str) -> EnumerationNotSupportedError:
    return EnumerationNotSupportedError(
        f"TraceTMC_ELBO: the {role} marks site {describe_site(site)} for sequential "
        "enumeration, which it does not offer (its estimate sums every site out in one pass). "
        "Mark the site infer={'enumerate': 'parallel'} (config_enumerate(fn, 'parallel')), or "
        "use TraceEnum_ELBO."
    )
