"""``TraceEnum_ELBO``: the ELBO with enumerated discrete sites summed out exactly.

Model sites marked ``infer={"enumerate": "parallel"}`` that the guide does not sample are
marginalised: the model's log-densities become labelled factors and the sum-product of
:mod:`engine.infer.enum.sum_product` sums them out, so the ELBO holds ``log sum_z p(x, z, ...)``
instead of a noisy draw of ``z``. Guide sites marked the same way are not drawn either: the ELBO
is the exact expectation over their values, each term weighted by the guide's probability of the
values it depends on (so their gradients are exact too); a guide site marked ``"parallel"``
with ``infer["num_samples"] = k`` takes k draws instead, and the ELBO averages over them (a
Monte Carlo estimate, with the score function of draws that are not reparameterised). Guide
sites marked ``"sequential"`` are enumerated one value per run of the guide (in a plate, one
value for all its elements), each cost weighted by the probability of the values it meets.
Every other site is handled as in ``Trace_ELBO``; non-reparameterised guide sites get a
score-function term.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import config_enumerate
>>> @config_enumerate
... def model(x):
...     z = engine.sample("z", dist.Bernoulli(0.3))
...     engine.sample("x", dist.Normal(2.0 * z, 1.0), obs=x)
>>> x = torch.tensor(1.5)
>>> loss = TraceEnum_ELBO().loss(model, lambda x: None, x)
>>> exact = -torch.logsumexp(torch.stack([
...     torch.tensor(0.7).log() + dist.Normal(0.0, 1.0).log_prob(x),
...     torch.tensor(0.3).log() + dist.Normal(2.0, 1.0).log_prob(x)]), 0)
>>> abs(loss - exact.item()) < 1e-6
True
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch

from engine.distributions import Distribution
from engine.distributions.validation import structure_checks_enabled
from engine.errors import EnumerationError, EnumerationNotSupportedError, describe_site
from engine.infer.batched_log_prob import log_prob_total
from engine.infer.elbo import ELBO, checked_pair
from engine.infer.enum.discrete import posterior_draw
from engine.infer.enum.factors import (
    enumerated_sites,
    log_density,
    refuse_sampled_sites,
    site_factor,
    trace_plates,
)
from engine.infer.enum.guide_expectation import expectations
from engine.infer.enum.marginals import posterior_marginals
from engine.infer.enum.sequential import SequentialEnumMessenger, sequential_branches
from engine.infer.enum.sum_product import (
    Factor,
    Plate,
    Variable,
    align,
    combine,
    contract,
    plate_total,
    reduce_plates,
)
from engine.infer.model_guide_checks import run_guide, run_model_on_guide
from engine.infer.trace_elbo import is_reparameterized
from engine.poutine.enum_messenger import EnumMessenger
from engine.poutine.handlers import block, replay, trace
from engine.poutine.trace_struct import Trace
from engine.runtime import Message


class EnumeratingELBO(ELBO):
    """An ELBO that enumerates discrete sites (TraceEnum_ELBO, TraceTMC_ELBO): enumeration
    dims go left of the model's plates, so even one particle needs ``max_plate_nesting``,
    read off the model before the first trace when not given.

    >>> issubclass(TraceEnum_ELBO, EnumeratingELBO)
    True
    """

    def _get_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> Iterator[tuple[Trace, Trace]]:
        # Enumeration dims go left of the model's plates: one particle needs the nesting too.
        self._guess_max_plate_nesting(model, guide, args, kwargs)
        yield from super()._get_traces(model, guide, args, kwargs)

    def _warn_if_nothing_enumerated(self, model_trace: Trace, guide_trace: Trace) -> None:
        """As Pyro, warn (unless ``strict_enumeration_warning=False``) when neither the model
        nor the guide marks a sample site for enumeration: the ELBO then is plain Trace_ELBO's,
        which is more often a forgotten ``config_enumerate`` than a choice."""
        if not (self.strict_enumeration_warning and structure_checks_enabled()):
            return
        for tr in (guide_trace, model_trace):
            for site in tr.nodes.values():
                if site["type"] == "sample" and site["infer"].get("enumerate"):
                    return
        name = type(self).__name__
        warnings.warn(
            f"{name} found no sample sites configured for enumeration in the model or the "
            "guide, so nothing is summed out. Mark the discrete sites to enumerate "
            "(@config_enumerate, or infer={'enumerate': 'parallel'} on a site), use "
            f"Trace_ELBO if you meant not to enumerate, or pass {name}("
            "strict_enumeration_warning=False) to silence this.",
            UserWarning,
            stacklevel=2,
        )


class TraceEnum_ELBO(EnumeratingELBO):
    """The ELBO that sums out enumerated sites exactly; see the module docstring.

    ``max_plate_nesting`` is read off the model when not given; enumeration dims start left of
    it (and left of the vectorised-particle dim).

    >>> TraceEnum_ELBO(max_plate_nesting=1).max_plate_nesting
    1
    """

    def _first_enum_dim(self) -> int:
        return first_enum_dim(self)

    def _particle_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> Iterator[tuple[Trace, Trace]]:
        """One (model, guide) trace pair per combination of the guide's sequential values."""
        for choices in sequential_branches():
            yield self._enumerated_traces(model, guide, choices, args, kwargs)

    def _enumerated_traces(
        self,
        model: Callable,
        guide: Callable,
        choices: SequentialEnumMessenger,
        args: tuple,
        kwargs: dict[str, Any],
    ) -> tuple[Trace, Trace]:
        model_trace, guide_trace = enumerated_traces(
            model, choices(guide), self._first_enum_dim(), args, kwargs, type(self).__name__
        )
        _refuse_sequential_model_sites(model_trace, guide_trace)
        pair = checked_pair(model_trace, guide_trace)
        self._warn_if_nothing_enumerated(model_trace, guide_trace)
        return pair

    # -- the posterior of the model's enumerated sites -----------------------------------------

    def compute_marginals(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> dict[str, Distribution]:
        """The posterior marginal of each site the model enumerates (not the guide), given one
        draw of the guide and the observations: a distribution per site name, batched over the
        site's plates (a ``Bernoulli``, ``Categorical`` or ``OneHotCategorical`` as the site;
        any other kind of site gets a ``Categorical`` over the positions of its
        ``enumerate_support()``).

        >>> import torch, engine, engine.distributions as dist
        >>> from engine.infer import config_enumerate
        >>> @config_enumerate
        ... def model():
        ...     z = engine.sample("z", dist.Categorical(torch.tensor([0.5, 0.5])))
        ...     engine.sample("x", dist.Normal(3.0 * z, 1.0), obs=torch.tensor(3.0))
        >>> marginals = TraceEnum_ELBO().compute_marginals(model, lambda: None)
        >>> marginals["z"].probs.round(decimals=4)  # likelihoods exp(-4.5) and exp(0)
        tensor([0.0110, 0.9890])
        """
        model_trace, _ = self._one_pair("compute_marginals", model, guide, args, kwargs)
        return posterior_marginals(model_trace)

    def sample_posterior(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run ``model`` once with the guide's draw for the guide's sites and a joint draw from
        the posterior for the sites the model enumerates (forward filtering, backward
        sampling, as ``infer_discrete``); returns what the model returns.

        >>> import torch, engine, engine.distributions as dist
        >>> from engine.infer import config_enumerate
        >>> @config_enumerate
        ... def model():
        ...     z = engine.sample("z", dist.Bernoulli(0.5))
        ...     engine.sample("x", dist.Normal(50.0 * z, 1.0), obs=torch.tensor(50.0))
        ...     return z
        >>> TraceEnum_ELBO().sample_posterior(model, lambda: None)  # z = 0 is e^-1250 as likely
        tensor(1.)
        """
        _, guide_trace = self._one_pair("sample_posterior", model, guide, args, kwargs)
        return posterior_draw(model, guide_trace, self._first_enum_dim(), args, kwargs)

    def _one_pair(
        self, method: str, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[Trace, Trace]:
        """One (model, guide) trace pair, out of sight of the caller's handlers; refused where
        the model's posterior given one guide draw is not what is asked."""
        if self.num_particles != 1:
            raise EnumerationNotSupportedError(
                f"TraceEnum_ELBO.{method}() conditions on one draw of the guide, but this ELBO "
                f"has num_particles={self.num_particles}. Call it on an ELBO with "
                "num_particles=1 (the default)."
            )
        with block():
            self._guess_max_plate_nesting(model, guide, args, kwargs)
            model_trace, guide_trace = next(iter(self._particle_traces(model, guide, args, kwargs)))
        refuse_enumerated_guide(guide_trace, f"TraceEnum_ELBO.{method}()")
        return model_trace, guide_trace

    # -- the ELBO ----------------------------------------------------------------------------

    def _particle_elbo(
        self, model_trace: Trace, guide_trace: Trace
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ELBO of one trace pair, its enumerated sites summed out, and its surrogate, in three
        steps: the factors (:func:`_factors`), the guide's weights (:func:`_guide_weights`) and
        the score-function surrogate (:func:`_score_surrogate`)."""
        labels = _Labels.of(model_trace, guide_trace)
        model_sites = [site for _, site in model_trace.sample_sites()]
        guide_sites = [site for _, site in guide_trace.iter_stochastic_nodes()]
        scored = [
            site
            for site in guide_sites
            if _drawn_at_random(site, labels.guide_variables) and not is_reparameterized(site)
        ]
        # Sites that ran while no site was enumerated cannot depend on one: their total is all
        # the ELBO needs, scored in batches as in Trace_ELBO. A score-function term needs every
        # cost element by element, so then every site goes the long way; so does every cost when
        # a sequential site sits in a plate, since each cost is then weighed by its own
        # elements' probabilities of this run's values (see _weigh_by_branch).
        plated_branch = _plated_sequential_sites(guide_sites)
        long_way = scored or plated_branch
        meets_enumeration = (lambda site: True) if long_way else _meets_enumeration
        plain_model, enumerated_model = _split(model_sites, meets_enumeration)
        plain_guide, enumerated_guide = _split(guide_sites, meets_enumeration)
        costs, guide_factors = _factors(labels, enumerated_model, enumerated_guide)
        weights, branch_weight = _guide_weights(labels, enumerated_guide, guide_factors)
        weigh = _no_branch
        if plated_branch:
            branch = [
                (labels.factor(site, masked=False), _number_of_values(site))
                for site in guide_sites
                if site["infer"].get("_sequential")
            ]
            weigh = functools.partial(_weigh_by_branch, branch=branch, plates=labels.plates)
            branch_weight = None  # each cost carries its share of it
        expected = [weigh(factor) for factor in expectations(costs, weights, labels.plates)]
        elbo = log_prob_total(plain_model) - log_prob_total(plain_guide)
        for factor in expected:
            elbo = elbo + plate_total(factor, labels.plates)
        if branch_weight is not None:
            elbo = branch_weight * elbo
        surrogate = _score_surrogate(
            labels, elbo, scored, costs, expected, weights, branch_weight, weigh
        )
        return elbo, surrogate


def first_enum_dim(elbo: ELBO) -> int:
    """The first enumeration dim of ``elbo``'s runs: left of the model's plates and of the
    vectorised-particle dim."""
    particle_dims = 1 if elbo.vectorize_particles and elbo.num_particles > 1 else 0
    return -int(elbo.max_plate_nesting) - particle_dims - 1


def enumerated_traces(
    model: Callable,
    guide: Callable,
    first_dim: int,
    args: tuple,
    kwargs: dict[str, Any],
    exact_for: str | None = None,
) -> tuple[Trace, Trace]:
    """The guide run with its marked sites enumerated (from ``first_dim`` leftwards), and the
    model replayed on it with its own marked sites enumerated left of the guide's (not yet
    checked: see :func:`~engine.infer.elbo.checked_pair`).

    With ``exact_for`` (the name of an algorithm that sums the model's enumerated sites out
    exactly), model sites with ``infer["num_samples"]`` (Tensor Monte Carlo draws, not the
    site's support) are refused, naming it. Guide sites with ``num_samples`` are Monte Carlo
    draws the ELBO averages over, and pass, unless their draws are paired with the draws of
    another sampled guide site (see :func:`refuse_paired_draws`)."""
    guide_enum = EnumMessenger(first_dim)
    guide_trace = run_guide(trace(guide_enum(guide)), args, kwargs)
    used = [site.dim for site in guide_enum.enumerated.values()]
    model_enum = EnumMessenger(
        min(used, default=first_dim + 1) - 1, enumerated_elsewhere=guide_enum.enumerated
    )
    model_run = trace(model_enum(replay(model, trace=guide_trace)))
    model_trace = run_model_on_guide(model_run, guide_trace, args, kwargs)
    if exact_for is not None:
        refuse_sampled_sites(model_enum.enumerated, "model", exact_for)
        refuse_paired_draws(guide_trace, exact_for)
    return model_trace, guide_trace


def refuse_paired_draws(guide_trace: Trace, what: str) -> None:
    """Refuse a guide site whose ``num_samples`` draws were each taken given one draw of another
    sampled guide site (``infer["tmc"]``'s pairing): ``what`` averages its costs over every
    combination of the sites' draws, which would weigh draws that were never drawn together."""
    for name, site in guide_trace.iter_stochastic_nodes():
        parents = site["infer"].get("_tmc_parents")
        if parents:
            raise EnumerationNotSupportedError(
                f"{what} averages its costs over every combination of the guide's sampled "
                f"draws, but the guide draws site {describe_site(site)} "
                f"(infer['num_samples']={site['infer']['num_samples']}) given the draws of "
                f"sampled site(s) {', '.join(repr(p) for p in parents)}, one draw each. Leave "
                f"num_samples out of '{name}' (it is then drawn once per draw of its parent), "
                "or use TraceTMC_ELBO, which pairs the draws."
            )


class TraceEnumSample_ELBO(TraceEnum_ELBO):
    """``TraceEnum_ELBO`` that keeps the guide draw of its last trace pair, so that
    :meth:`sample_saved` can draw the model's enumerated sites from their posterior given it:
    after ``loss``, ``loss_and_grads`` or an SVI step, ``elbo.sample_saved()`` is
    ``infer_discrete(replay(model, guide_trace), ...)`` on that draw and the same arguments.

    >>> import torch, engine, engine.distributions as dist
    >>> from engine.infer import config_enumerate
    >>> @config_enumerate
    ... def model(x):
    ...     z = engine.sample("z", dist.Bernoulli(0.5))
    ...     engine.sample("x", dist.Normal(50.0 * z, 1.0), obs=x)
    ...     return z
    >>> elbo = TraceEnumSample_ELBO()
    >>> loss = elbo.loss(model, lambda x: None, torch.tensor(0.0))
    >>> elbo.sample_saved()  # z = 1 is e^-1250 as likely as z = 0
    tensor(0.)
    """

    _saved: tuple[Callable, Trace, tuple, dict[str, Any]] | None = None

    def _particle_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> Iterator[tuple[Trace, Trace]]:
        for model_trace, guide_trace in super()._particle_traces(model, guide, args, kwargs):
            self._saved = (model, guide_trace, args, kwargs)
            yield model_trace, guide_trace

    def sample_saved(self) -> Any:
        """Run the model of the last ELBO computation once more, with the guide's draw and a
        joint posterior draw of the model's enumerated sites; what the model returns."""
        if self._saved is None:
            raise EnumerationError(
                "TraceEnumSample_ELBO.sample_saved() draws from the posterior given the guide "
                "draw of the last ELBO computation, and there has been none: call loss, "
                "loss_and_grads or svi.step first."
            )
        if self.vectorize_particles and self.num_particles > 1:
            raise EnumerationNotSupportedError(
                "TraceEnumSample_ELBO.sample_saved() needs one guide draw, but this ELBO "
                f"vectorises {self.num_particles} particles. Use vectorize_particles=False."
            )
        model, guide_trace, args, kwargs = self._saved
        refuse_enumerated_guide(guide_trace, "TraceEnumSample_ELBO.sample_saved()")
        return posterior_draw(model, guide_trace, self._first_enum_dim(), args, kwargs)


@dataclass(frozen=True)
class _Labels:
    """What names the dims of one trace pair's log-densities: its plates and its enumerated sites
    (the guide's, and the model's own)."""

    plates: dict[str, Plate]
    guide_variables: dict[str, Variable]
    model_variables: dict[str, Variable]
    variables: dict[str, Variable]  # both

    @classmethod
    def of(cls, model_trace: Trace, guide_trace: Trace) -> _Labels:
        guide_variables = enumerated_sites(guide_trace)
        model_variables = {  # replayed guide sites carry the guide's marks: not the model's
            name: variable
            for name, variable in enumerated_sites(model_trace).items()
            if name not in guide_variables
        }
        return cls(
            trace_plates(model_trace, guide_trace),
            guide_variables,
            model_variables,
            {**guide_variables, **model_variables},
        )

    def factor(self, site: Message, masked: bool = True) -> Factor:
        """``site``'s log-density (masked unless ``masked=False``) as a labelled factor."""
        return site_factor(site, log_density(site, masked=masked), self.variables, self.plates)


def _split(sites: list[Message], chosen: Callable[[Message], bool]) -> tuple[list, list]:
    """``sites`` in two lists, in their order: those not ``chosen``, and those chosen."""
    return [site for site in sites if not chosen(site)], [site for site in sites if chosen(site)]


def _factors(
    labels: _Labels, model_sites: list[Message], guide_sites: list[Message]
) -> tuple[list[Factor], dict[str, Factor]]:
    """Step 1, the factors: the costs whose expectation under the guide is the ELBO (the model's
    log-densities with its own enumerated sites summed out, then minus the guide's), and the
    guide's log-densities by site name."""
    model_factors = [
        labels.factor(site, masked=site["name"] not in labels.model_variables)
        for site in model_sites
    ]
    costs = contract(model_factors, labels.variables, labels.plates, set(labels.model_variables))
    guide_factors = {site["name"]: labels.factor(site) for site in guide_sites}
    costs.extend(Factor(-f.tensor, f.labels, f.sites, f.scale) for f in guide_factors.values())
    return costs, guide_factors


def _guide_weights(
    labels: _Labels, guide_sites: list[Message], guide_factors: dict[str, Factor]
) -> tuple[dict[str, Factor], torch.Tensor | None]:
    """Step 2, the guide's weights: the log-probabilities of each enumerated guide site's values
    (unmasked and unscaled: they weigh the costs), by name; and the probability of this run's
    branch of the sequentially enumerated guide sites (None when there are none)."""
    weights: dict[str, Factor] = {}
    branch_log_weight: torch.Tensor | None = None
    for site in guide_sites:
        variable = labels.guide_variables.get(site["name"])
        if variable is not None:
            unmasked = labels.factor(site, masked=False)
            tensor = _draw_weights(site, unmasked.tensor) if variable.sampled else unmasked.tensor
            weights[site["name"]] = Factor(tensor, unmasked.labels, unmasked.sites)
        elif site["infer"].get("_sequential"):
            term = guide_factors[site["name"]].tensor.sum()
            branch_log_weight = term if branch_log_weight is None else branch_log_weight + term
    return weights, None if branch_log_weight is None else branch_log_weight.exp()


def _draw_weights(site: Message, log_q: torch.Tensor) -> torch.Tensor:
    """The log-weights of a sampled guide site's draws, in place of its log-probabilities:
    ``1 / num_samples`` each, so the costs are averaged over the draws (a Monte Carlo estimate
    of their expectation); a draw that is not reparameterised also carries its score function,
    ``log q - stop_gradient(log q)``, zero in value (DiCE), for the gradient.

    >>> import engine.distributions as dist
    >>> site = {"fn": dist.Bernoulli(0.5), "infer": {"num_samples": 4}}
    >>> _draw_weights(site, torch.log(torch.full((4,), 0.5))).exp()
    tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """
    score = torch.zeros_like(log_q) if is_reparameterized(site) else log_q - log_q.detach()
    return score - math.log(site["infer"]["num_samples"])


def _score_surrogate(
    labels: _Labels,
    elbo: torch.Tensor,
    scored: list[Message],
    costs: list[Factor],
    expected: list[Factor],
    weights: dict[str, Factor],
    branch_weight: torch.Tensor | None,
    weigh: Callable[[Factor], Factor],
) -> torch.Tensor:
    """Step 3, the score-function surrogate: ``elbo`` plus the score term (:func:`_score_term`)
    of each ``scored`` guide site (drawn, not reparameterised) against the costs it meets
    (``expected``, the costs in expectation, each weighed for this run's branch by ``weigh``),
    weighted by its branch's probability as a constant. Without scored sites, ``elbo`` itself."""
    surrogate = elbo
    for site in scored:
        score = labels.factor(site)
        drawn_per = tuple(label for label in score.labels if label in weights)
        # A site drawn once per value of enumerated guide sites meets, for each value, that
        # value's share of the expected costs.
        seen = (
            [weigh(f) for f in expectations(costs, weights, labels.plates, drawn_per)]
            if drawn_per
            else expected
        )
        term = _score_term(score, seen, labels.plates)
        surrogate = surrogate + (term if branch_weight is None else branch_weight.detach() * term)
    return surrogate


def _score_term(score: Factor, costs: list[Factor], plates: dict[str, Plate]) -> torch.Tensor:
    """The score-function term of a drawn guide site: each element's log-density times the
    costs it can influence (Rao-Blackwellised by plates: element i of a plate only meets
    element i of the costs in that plate)."""
    term = torch.zeros(())
    for cost in costs:
        others = [label for label in cost.labels if label not in score.labels]
        seen = reduce_plates(cost, others, plates)
        elementwise = seen.tensor.detach()
        for label in seen.labels:
            if label in plates and plates[label].scale != 1:
                elementwise = elementwise * plates[label].scale
        if not (isinstance(seen.scale, float | int) and seen.scale == 1):
            elementwise = elementwise * seen.scale
        _, (log_q, cost_tensor) = align([score, replace(seen, tensor=elementwise)])
        term = term + (log_q * cost_tensor).sum()
    return term


def _plated_sequential_sites(guide_sites: list[Message]) -> list[Message]:
    """The guide's sequentially enumerated sites that live in a vectorised plate."""
    return [
        site
        for site in guide_sites
        if site["infer"].get("_sequential") and any(f.vectorized for f in site["cond_indep_stack"])
    ]


def _number_of_values(site: Message) -> int:
    return int(site["fn"].enumerate_support(expand=False).shape[0])


def _no_branch(cost: Factor) -> Factor:
    """``cost`` as it is: no sequential site in a plate to weigh it by."""
    return cost


def _weigh_by_branch(
    cost: Factor, branch: list[tuple[Factor, int]], plates: dict[str, Plate]
) -> Factor:
    """``cost`` weighted for this run of the guide's sequential values. A sequential site in a
    plate takes one value for all its elements per run, and a cost inside its plates meets
    element i's value only: weighted by element i's probability of it, the runs add up to the
    exact expectation element by element. A cost outside its plates cannot depend on it (nothing
    outside a plate depends on what is inside): it is counted once per value, so divided by
    their number."""
    inside = [log_q for log_q, _ in branch if log_q.plates(plates) <= cost.plates(plates)]
    outside = math.prod(
        count for log_q, count in branch if not log_q.plates(plates) <= cost.plates(plates)
    )
    tensor, labels = cost.tensor, cost.labels
    if inside:
        labels, (log_weight, tensor) = align([combine(inside), cost])
        tensor = log_weight.exp() * tensor
    return Factor(tensor / outside if outside != 1 else tensor, labels, cost.sites, cost.scale)


def _meets_enumeration(site: Message) -> bool:
    """Whether a site ran while some site was enumerated (so it may depend on one), or is a
    sequentially enumerated guide site (its probability weights its branch)."""
    return bool(site["infer"].get("_enum_dims")) or bool(site["infer"].get("_sequential"))


def _drawn_at_random(site: Message, guide_variables: dict) -> bool:
    """Whether a guide site's value was drawn at random (not enumerated)."""
    return site["name"] not in guide_variables and not site["infer"].get("_sequential")


def refuse_enumerated_guide(guide_trace: Trace, what: str) -> None:
    """Refuse ``what`` (a posterior of the model's enumerated sites given one guide draw) when
    the guide enumerates sites itself: then there is no single guide draw."""
    for name, site in guide_trace.iter_stochastic_nodes():
        if site["infer"].get("_enumerate_dim") is not None or site["infer"].get("_sequential"):
            raise EnumerationNotSupportedError(
                f"{what} gives the posterior of the model's enumerated sites given one draw of "
                f"the guide, but the guide enumerates site {describe_site(site)}. Enumerate "
                f"'{name}' in the model instead (leave it out of the guide), or draw it in the "
                "guide without enumeration."
            )


def _refuse_sequential_model_sites(model_trace: Trace, guide_trace: Trace) -> None:
    for name, site in model_trace.iter_stochastic_nodes():
        if name not in guide_trace and site["infer"].get("enumerate") == "sequential":
            raise EnumerationNotSupportedError(
                f"At site {describe_site(site)}, model-side sequential enumeration is not "
                "implemented: sequential enumeration runs the guide once per value. In the "
                "model, mark the site 'parallel' (config_enumerate(model)) so it is summed out."
            )
