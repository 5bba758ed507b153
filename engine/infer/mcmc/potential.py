"""The potential energy HMC and NUTS move on, built from a model: one flat unconstrained vector
per chain, all chains scored in one run of the model.

A model's latent sites live on their supports (a positive scale, a simplex, an interval whose
ends are other sites). HMC needs an unconstrained space, so each site's slice of the vector is
mapped by ``biject_to(support)`` of the support the site has *in that run* (so an interval that
depends on another site is right), and the log density picks up that map's log|Jacobian|:
``U(z) = -log p(data, T(z)) - log|det dT/dz|``.

A batch of B vectors (one per chain) is scored in *one* run: the model runs under a plate of
size B left of its own plates, so every site gets one value per chain. Code that the extra
leading dim breaks (``x @ w`` with a batch of ``w``, ``w[0]`` meaning ``w[..., 0]``) is run under
``torch.func.vmap`` instead, which batches every op behind the model's back; a model that even
vmap cannot batch (it branches on a value) runs once per chain. Which of the three works is
checked on two points when the potential is built (:attr:`Potential.batching`).

Discrete latent sites (marked for parallel enumeration, or left unmarked: the potential then
marks them all with ``config_enumerate``, as Pyro's HMC and NUTS do) are not moved at all: each
run enumerates them in dims of their own and the sum-product of :mod:`engine.infer.enum.sum_product`
sums them out of the log density, so HMC moves on the marginal of the continuous sites (Pyro's
"collapsed" NUTS). Their posterior is drawn afterwards with ``infer_discrete``.

The sampler asks for ``energy_and_grad`` thousands of times at points of one shape. After a few
evaluations through the model, that computation is recorded once as a graph of tensor operations
and replayed (:mod:`~engine.infer.mcmc.gradient_plan`), several times faster; a model that cannot
be recorded faithfully (a branch on a value, sites that change between runs) keeps the full path.

>>> import torch, engine, engine.distributions as dist
>>> def model():
...     engine.sample("s", dist.LogNormal(0.0, 1.0))
>>> potential = Potential(model)
>>> potential.num_latent, potential.batching
(1, 'plate')
>>> u = potential.energy(torch.zeros(3, 1))  # three chains at s = exp(0) = 1
>>> torch.allclose(u, torch.full((3,), 0.5 * math.log(2 * math.pi)))
True
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from engine.constraint_codec import describe_constraint
from engine.distributions import biject_to
from engine.distributions.validation import trusted_run
from engine.errors import MCMCError, raised_in
from engine.infer.autoguide.initialization import InitMessenger, init_to_uniform
from engine.infer.enum.config import config_enumerate
from engine.infer.enum.factors import (
    enumerated_sites,
    log_density,
    refuse_sampled_sites,
    site_factor,
    trace_plates,
)
from engine.infer.enum.sum_product import contract, plate_total
from engine.infer.mcmc.flat_layout import FlatLayout, SiteSlot
from engine.infer.mcmc.gradient_plan import PlannedGradient
from engine.infer.mcmc.observations import ObservedSite, is_data, site_dims
from engine.infer.nonfinite import find_first_nonfinite
from engine.infer.util import max_plate_nesting_of, sum_except_plate, vectorize
from engine.poutine.enum_messenger import EnumMessenger
from engine.poutine.handlers import trace
from engine.poutine.trace_struct import Trace, compute_site_log_prob
from engine.runtime import Message, Messenger, is_subsample_site
from engine.source_lines import SourceLines

CHAIN_PLATE = "_mcmc_chains"


def _summed_out(site: Message) -> bool:
    """Whether HMC leaves a site to enumeration: a latent site marked ``"parallel"``."""
    return site["infer"].get("enumerate") == "parallel" and not site["is_observed"]


class _NeedsEnumeration(Exception):
    """A latent discrete site that nobody marked for enumeration: the potential enumerates every
    such site (as Pyro's HMC and NUTS do)."""


def _checked_bijection(
    site: Message, algorithm: str = "HMC and NUTS"
) -> torch.distributions.transforms.Transform:
    fn, name = site["fn"], site["name"]
    try:
        discrete = fn.support.is_discrete
    except NotImplementedError:
        discrete = False
    if discrete and "enumerate" not in site["infer"] and fn.has_enumerate_support:
        raise _NeedsEnumeration(name)
    if discrete:
        raise MCMCError(
            f"Site '{name}' ({type(fn).__name__}, support {describe_constraint(fn.support)}) is "
            f"discrete: {algorithm} can only move through continuous space. Mark it for "
            "enumeration so that it is summed out (`infer={'enumerate': 'parallel'}` on the "
            "site, or `@config_enumerate` on the model), or observe it."
        )
    try:
        return biject_to(fn.support)
    except NotImplementedError:
        raise MCMCError(
            f"Site '{name}' ({type(fn).__name__}) has support "
            f"{describe_constraint(fn.support)}, which has no bijection from unconstrained real "
            f"space, so {algorithm} cannot move on it. Use a distribution whose support has one "
            "(or register one with biject_to.register)."
        ) from None


class _PlaceLatents(Messenger):
    """Give each latent site its slice of the flat vector, mapped onto the support the site has
    in this run, and collect the log|Jacobian| of each map."""

    def __init__(self, pieces: dict[str, torch.Tensor]):
        self.pieces = pieces
        self.log_jacobians: list[torch.Tensor] = []

    def _process_sample(self, msg: Message) -> None:
        u = self.pieces.get(msg["name"])
        if u is None or msg["is_observed"]:
            return
        transform = biject_to(msg["fn"].support)
        x = transform(u)
        self.log_jacobians.append(transform.log_abs_det_jacobian(u, x))
        msg["value"] = x
        msg["done"] = True


class _NotBatchable(Exception):
    """A batched run gave a value that does not carry one entry per chain where it should."""


def _per_row(value: torch.Tensor, rows: int, shape: torch.Size) -> torch.Tensor:
    """A site value of a batched run as (rows, *shape): the chain dim leftmost, then size-1
    padding, then the site's own shape; or no chain dim at all (the same for every chain)."""
    middle = value.shape[1 : value.dim() - len(shape)]
    if (
        value.dim() > len(shape)
        and value.shape[0] == rows
        and value.shape[value.dim() - len(shape) :] == shape
        and all(size == 1 for size in middle)
    ):
        return value.reshape(rows, *shape)
    try:
        return torch.broadcast_to(value, shape).expand(rows, *shape)
    except RuntimeError:
        raise _NotBatchable from None


def _structure(model_trace: Trace) -> tuple:
    """What a run's sites are, values aside: names, kinds, distributions, shapes and plates."""
    return tuple(
        (
            name,
            site["type"],
            site["is_observed"],
            type(site.get("fn")),
            tuple(getattr(site.get("value"), "shape", ())),
            site.get("cond_indep_stack", ()),
        )
        for name, site in model_trace.nodes.items()
        if site["type"] in ("sample", "param")
    )


def _concat_rows(parts: list[Any]) -> Any:
    """Concatenate per-row results (tensors, or dicts of tensors) along the row dim."""
    if isinstance(parts[0], dict):
        return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
    return torch.cat(parts)


class Potential(FlatLayout):
    """The potential energy of ``model(*args, **kwargs)`` over flat unconstrained vectors.

    ``init_strategy`` places the prototype run (and so fixes the site layout);
    ``max_plate_nesting`` is read off that run when not given. ``algorithm`` names what moves
    on the potential in the errors about sites it cannot move on (SVGD uses it too).

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    ...     engine.sample("p", dist.Dirichlet(torch.ones(3)))
    >>> [(slot.name, slot.size) for slot in Potential(model).slots]
    [('w', 2), ('p', 2)]
    """

    def __init__(
        self,
        model: Callable,
        model_args: tuple = (),
        model_kwargs: dict[str, Any] | None = None,
        *,
        init_strategy: Callable[[Message], torch.Tensor] = init_to_uniform,
        max_plate_nesting: int | None = None,
        algorithm: str = "HMC and NUTS",
    ):
        self.model = model
        self.algorithm = algorithm
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs or {})
        self.init_strategy = init_strategy
        try:
            prototype = self._init_trace()
        except _NeedsEnumeration:
            # Discrete latent sites left unmarked are summed out, each in a dim of its own; a
            # site marked otherwise (``infer={"enumerate": "sequential"}``) is still refused.
            self.model = config_enumerate(model)
            prototype = self._init_trace()
        self.max_plate_nesting = (
            max_plate_nesting_of(prototype) if max_plate_nesting is None else max_plate_nesting
        )
        self.enumerated = [name for name, site in prototype.sample_sites() if _summed_out(site)]
        # Each latent site's constrained shape and batch rank, and each deterministic site's shape.
        self._shapes: dict[str, torch.Size] = {}
        self._batch_ranks: dict[str, int] = {}
        # The names of each recorded site's dims (plates where they match), and the data sites.
        self.site_dims: dict[str, tuple[str, ...]] = {}
        self.observed: dict[str, ObservedSite] = {}
        super().__init__(self._slots(prototype))
        self._supports = {
            slot.name: prototype.nodes[slot.name]["fn"].support for slot in self.slots
        }
        if self.slots:
            first = prototype.nodes[self.slots[0].name]["value"]
            self.dtype, self.device = first.dtype, first.device
        else:  # nothing to sample: an empty point of the default dtype
            self.dtype, self.device = torch.get_default_dtype(), torch.device("cpu")
        self.batching = self._choose_batching(prototype)
        # After a checked evaluation, the gradient replays a recorded plan of the full path.
        self._last_structure: tuple = ()
        full = functools.partial(FlatLayout.energy_and_grad, self)
        self._planned_gradient = PlannedGradient(full, lambda: self._last_structure)

    # -- structure -----------------------------------------------------------------------------

    def _init_trace(self) -> Trace:
        strategy = self.init_strategy

        @functools.wraps(strategy)
        def checked_strategy(site: Message) -> torch.Tensor:
            _checked_bijection(site, self.algorithm)  # a site it cannot move on fails here
            return strategy(site)

        with torch.no_grad(), raised_in("model"):
            model = InitMessenger(checked_strategy)(self.model)
            return trace(model).get_trace(*self.model_args, **self.model_kwargs)

    def _slots(self, prototype: Trace) -> list[SiteSlot]:
        slots, offset = [], 0
        names = set(prototype.nodes)
        for name, site in prototype.nodes.items():
            if is_subsample_site(site):
                raise MCMCError(
                    f"Plate '{name}' draws a mini-batch (subsample_size), but every step of "
                    f"{self.algorithm} needs the exact log density of all the data. Drop "
                    "subsample_size."
                )
            if site["type"] != "sample":
                continue
            if _summed_out(site):
                continue
            shape = site["value"].shape
            self._shapes[name] = shape
            batch_rank = len(shape) - site["fn"].event_dim
            self.site_dims[name] = site_dims(
                name, shape, batch_rank, site["cond_indep_stack"], names
            )
            if is_data(site):
                self.observed[name] = ObservedSite.of(site, names)
            if site["is_observed"]:
                continue  # deterministic sites are observed Deltas: their shape is kept above
            unconstrained_shape = _checked_bijection(site, self.algorithm).inverse_shape(shape)
            size = math.prod(unconstrained_shape)
            self._batch_ranks[name] = batch_rank
            slots.append(SiteSlot(name, unconstrained_shape, offset, size))
            offset += size
        observed = [name for name, site in prototype.sample_sites() if is_data(site)]
        if not slots and observed:
            # As in Pyro the run goes on, with empty draws; a model with no sample site at all
            # (a potential of nothing) is no mistake and is not warned about.
            warnings.warn(
                f"Every sample site of the model is observed ({', '.join(observed)}), so MCMC "
                "has nothing to sample and its draws will be empty. Sample the unknowns "
                "without obs=...",
                UserWarning,
                stacklevel=2,
            )
        return slots

    def _recorded(self, model_trace: Trace) -> list[str]:
        """Latent and deterministic site names, in model order."""
        return [
            name
            for name, site in model_trace.nodes.items()
            if site["type"] == "sample"
            and not is_subsample_site(site)
            and not _summed_out(site)
            and (not site["is_observed"] or site["infer"].get("_deterministic", False))
        ]

    # -- running the model -------------------------------------------------------------------

    def _run(
        self, z: torch.Tensor, batched: bool, wrap: Callable | None = None
    ) -> tuple[Trace, torch.Tensor]:
        """Run the model (wrapped by ``wrap``, if given) on the rows of ``z`` (B, D): all at once
        under the chain plate when ``batched``, else on a single row (B = 1) exactly as written.
        Returns the trace and the summed log|Jacobian| per row."""
        rows = z.shape[0]
        pieces = {}
        for slot, u in zip(self.slots, self.unconstrained_sites(z).values(), strict=True):
            if batched:
                padding = (1,) * (self.max_plate_nesting - self._batch_ranks[slot.name])
                pieces[slot.name] = u.reshape(rows, *padding, *slot.unconstrained_shape)
            else:
                pieces[slot.name] = u.reshape(slot.unconstrained_shape)
        place = _PlaceLatents(pieces)
        model = place(self.model if wrap is None else wrap(self.model))
        if batched:
            model = vectorize(model, rows, self.max_plate_nesting, CHAIN_PLATE)
        if self.enumerated:
            model = EnumMessenger(-self.max_plate_nesting - 1 - int(batched))(model)
        model_trace = trace(model).get_trace(*self.model_args, **self.model_kwargs)
        self._last_structure = _structure(model_trace)
        log_jacobian = z.new_zeros(rows)
        for jacobian in place.log_jacobians:
            log_jacobian = log_jacobian + jacobian.reshape(rows, -1).sum(-1)
        return model_trace, log_jacobian

    def _log_densities(self, z: torch.Tensor, batched: bool) -> dict[str, torch.Tensor]:
        model_trace, log_jacobian = self._run(z, batched)
        densities = {}
        if self.enumerated:
            densities.update(self._enumerated_log_density(model_trace, batched, z.shape[0]))
        for name, site in model_trace.sample_sites():
            if site["infer"].get("_enum_dims"):
                continue  # ran while a site was enumerated: part of the sum above
            if "log_prob" not in site:
                compute_site_log_prob(site)
            if batched:
                density = sum_except_plate(site["log_prob"], site, CHAIN_PLATE)
                densities[name] = density.expand(z.shape[0])
            else:
                densities[name] = site["log_prob_sum"].reshape(1)
        densities["log|J|"] = log_jacobian
        return densities

    def _enumerated_log_density(
        self, model_trace: Trace, batched: bool, rows: int
    ) -> dict[str, torch.Tensor]:
        """The log density of every site that ran while a site was enumerated, with the
        enumerated sites summed out, per row: ``{"sum over z, ...": (rows,)}``."""
        plates = trace_plates(model_trace)
        variables = enumerated_sites(model_trace)
        refuse_sampled_sites(variables, "model", "MCMC")
        factors = [
            site_factor(site, log_density(site, masked=name not in variables), variables, plates)
            for name, site in model_trace.sample_sites()
            if site["infer"].get("_enum_dims")
        ]
        marginal = torch.zeros(rows, dtype=self.dtype, device=self.device)
        for factor in contract(factors, variables, plates, set(variables)):
            marginal = marginal + plate_total(factor, plates, keep=CHAIN_PLATE if batched else None)
        return {f"sum over {', '.join(variables)}": marginal}

    def _site_values(self, z: torch.Tensor, batched: bool) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            model_trace, _ = self._run(z, batched)
        values = {}
        for name in self._recorded(model_trace):
            value = model_trace.nodes[name]["value"]
            shape = self._shapes[name]
            values[name] = _per_row(value, z.shape[0], shape) if batched else value.unsqueeze(0)
        return values

    def _log_likelihoods(self, z: torch.Tensor, batched: bool) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            model_trace, _ = self._run(z, batched)
        values = {}
        for name, observed in self.observed.items():
            site = model_trace.nodes[name]
            if site["infer"].get("_enum_dims"):
                continue  # its density depends on an enumerated site: no pointwise value
            if "log_prob" not in site:
                compute_site_log_prob(site)
            log_prob = site["log_prob"]
            if batched:
                values[name] = _per_row(log_prob, z.shape[0], observed.batch_shape)
            else:
                values[name] = log_prob.expand(observed.batch_shape).unsqueeze(0)
        return values

    def _by_rows(self, method: Callable, z: torch.Tensor, batching: str | None = None) -> Any:
        """``method(points, batched)`` for every row of ``z``, the way ``batching`` says: one
        run under the chain plate, one run under ``torch.func.vmap``, or one run per row."""
        batching = self.batching if batching is None else batching
        if batching == "vmap" and z.shape[0] == 1:
            batching = "none"  # one point: the model as written, without vmap's overhead
        if batching == "plate":
            return method(z, True)
        if batching == "vmap":
            one_row = torch.func.vmap(lambda row: method(row.unsqueeze(0), False))
            return {name: value.squeeze(1) for name, value in one_row(z).items()}
        return _concat_rows([method(row.unsqueeze(0), False) for row in z])

    def _choose_batching(self, prototype: Trace) -> str:
        """The first way of scoring many points at once that gives each point what a run of that
        point alone gives (densities and recorded values): the chain plate (cheapest), vmap
        (for code such as ``x @ w`` or ``w[0]`` that the plate's extra dim would break), else
        one run per point."""
        values = {name: site["value"] for name, site in prototype.iter_stochastic_nodes()}
        first = self._unconstrain(
            {name: value.unsqueeze(0) for name, value in values.items()}, prototype
        )
        # Every coordinate moves, by different amounts: any mixing of the two rows (a mean, a
        # sum, an index) then changes what each row gets.
        nudge = 0.3 + 0.1 * torch.arange(self.num_latent, device=first.device)
        points = torch.cat([first, first + nudge.to(first.dtype)])
        with torch.no_grad(), trusted_run():
            alone = [
                self._by_rows(m, points, "none") for m in (self._log_densities, self._site_values)
            ]
            for batching in ("plate", "vmap"):
                try:
                    together = [
                        self._by_rows(m, points, batching)
                        for m in (self._log_densities, self._site_values)
                    ]
                except Exception:  # anything this way of batching breaks on: try the next
                    continue
                if all(
                    torch.allclose(mine[name], theirs[name], rtol=1e-4, atol=1e-5, equal_nan=True)
                    for mine, theirs in zip(together, alone, strict=True)
                    for name in theirs
                ):
                    return batching
        return "none"

    def transforms(self) -> dict[str, torch.distributions.transforms.Transform]:
        """Each latent site's map from its support (as the first run of the model had it) to
        unconstrained space: ``biject_to(support).inv``."""
        return {name: biject_to(support).inv for name, support in self._supports.items()}

    def batch_rank(self, name: str) -> int:
        """How many leading dims of latent site ``name``'s value are batch dims (the rest are
        its event dims), as the prototype run had them: a value of the batched run holds
        ``max_plate_nesting - batch_rank`` size-1 dims between the chain dim and its own.

        >>> import engine, engine.distributions as dist
        >>> def model():
        ...     with engine.plate("rows", 3):
        ...         engine.sample("w", dist.Normal(torch.zeros(3, 2), 1.0).to_event(1))
        >>> Potential(model, max_plate_nesting=2).batch_rank("w")
        1
        """
        return self._batch_ranks[name]

    @property
    def batched(self) -> bool:
        """Whether all chains are scored in one run of the model (plate or vmap)."""
        return self.batching != "none"

    # -- public ------------------------------------------------------------------------------

    def log_densities(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each sample site's log-density per row of ``z`` (B, D), plus ``"log|J|"``: what
        :meth:`energy` sums, for pointing at the site that makes it non-finite."""
        return self._by_rows(self._log_densities, z)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """``U(z)`` for each row of ``z`` (B, D): a tensor of shape (B,)."""
        return -sum(self.log_densities(z).values())

    def energy_and_grad(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``U(z)`` (B,) and its gradient (B, D). While distributions skip value checks (the
        sampler's ``trusted_run``), a shape evaluated once through the model is evaluated by
        a recorded plan of that computation from then on (:mod:`.gradient_plan`); a model that
        cannot be recorded, or whose sites changed, keeps running in full."""
        return self._planned_gradient(z)

    def site_values(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The latent sites (on their supports) and the ``deterministic`` sites at each row of
        ``z`` (B, D), as ``{name: (B, *shape)}``."""
        return self._by_rows(self._site_values, z)

    def log_likelihoods(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pointwise log-likelihood of every data site (:attr:`observed`) at each row of
        ``z`` (B, D): ``{name: (B, *batch_shape)}``, one entry per observation, as the model's
        joint density counts it (a mask or ``poutine.scale`` included). A data site whose
        density depends on an enumerated site is left out (it has no value per draw alone)."""
        with trusted_run():
            return self._by_rows(self._log_likelihoods, z)

    def initial_points(self, num_chains: int, max_tries: int = 100) -> torch.Tensor:
        """One starting point per chain from ``init_strategy``, each with a finite energy and
        gradient (a random strategy is retried up to ``max_tries`` times per chain)."""
        points = []
        for _ in range(num_chains):
            for attempt in range(max_tries):
                init_trace = self._init_trace()
                z = self._unconstrain(
                    {
                        name: site["value"].unsqueeze(0)
                        for name, site in init_trace.iter_stochastic_nodes()
                    },
                    init_trace,
                )
                with trusted_run():  # a bad start must show as a non-finite density, by site
                    energy, grad = self.energy_and_grad(z)
                if bool(torch.isfinite(energy).all()) and bool(torch.isfinite(grad).all()):
                    points.append(z)
                    break
                if attempt == max_tries - 1:
                    raise MCMCError(
                        f"{self.algorithm} found no starting point with a finite log density "
                        f"in {max_tries} tries of "
                        f"{getattr(self.init_strategy, '__name__', 'the strategy')}"
                        f"{self._describe_nonfinite_start(z)}. Fix the model (a scale that can "
                        "reach 0, a log of 0), or start elsewhere: "
                        "init_strategy=init_to_value(values={...}) or init_to_median."
                    )
        return torch.cat(points)

    def _unconstrain(self, values: dict[str, torch.Tensor], source: Trace) -> torch.Tensor:
        """Pack constrained ``{name: (1, *shape)}`` values into (1, D), each mapped back by the
        support its site has in ``source`` (the run of the model they come from)."""
        parts = []
        for slot in self.slots:
            transform = biject_to(source.nodes[slot.name]["fn"].support)
            parts.append(transform.inv(values[slot.name]).reshape(1, slot.size))
        return self.joined(parts, 1)

    def _describe_nonfinite_start(self, z: torch.Tensor) -> str:
        lines = SourceLines()
        try:
            with torch.no_grad(), trusted_run():
                model_trace, log_jacobian = self._run(z, False, wrap=lines)
                model_trace.compute_log_prob()
        except Exception:  # the caller's error says what matters; this only points
            return ""
        culprit = find_first_nonfinite([("model", model_trace)], {"model": lines.lines})
        if culprit is not None:
            return f" (at the last point tried, the first non-finite value: {culprit.describe()})"
        if not bool(torch.isfinite(log_jacobian).all()):
            return (
                " (the log|Jacobian| of the map from unconstrained space is not finite there: "
                "the point is at the edge of a support)"
            )
        return " (every log density is finite there: the gradient is not)"
