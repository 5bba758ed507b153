"""The potential energy HMC and NUTS move on: one flat unconstrained vector per chain.

A model's latent sites live on their supports (a positive scale, a simplex, ...). HMC needs an
unconstrained space, so each site is mapped from R^k by ``biject_to(support)``, and the log
density picks up that map's log|Jacobian|. All sites are packed into one vector of length D,
and a batch of B such vectors (one per chain) is scored in *one* run of the model: the model runs
under a plate of size B left of its own plates, so every site gets one value per chain and
every log-density one entry per chain. ``U(z) = -log p(data, T(z)) - log|det dT/dz|``.

>>> import torch, engine, engine.distributions as dist
>>> def model():
...     engine.sample("s", dist.LogNormal(0.0, 1.0))
>>> potential = Potential(model)
>>> potential.num_latent
1
>>> u = potential.energy(torch.zeros(3, 1))  # three chains at s = exp(0) = 1
>>> torch.allclose(u, torch.full((3,), 0.5 * math.log(2 * math.pi)))
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions.transforms import Transform

from engine.constraint_codec import describe_constraint
from engine.distributions import biject_to
from engine.errors import PPLError, fmt_shape
from engine.infer.autoguide.initialization import InitMessenger, init_to_uniform
from engine.infer.util import max_plate_nesting_of, sum_except_plate, vectorize
from engine.poutine.conditioning import SubstituteMessenger
from engine.poutine.handlers import trace
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, is_subsample_site

CHAIN_PLATE = "_mcmc_chains"


class MCMCError(PPLError, ValueError):
    """A model MCMC cannot sample, or a starting point it cannot start from."""


@dataclass(frozen=True)
class LatentLayout:
    """Where one latent site lives in the flat unconstrained vector."""

    name: str
    shape: torch.Size  # one constrained draw, plates included
    unconstrained_shape: torch.Size
    transform: Transform
    event_dim: int
    offset: int
    size: int


def _checked_transform(site: Message) -> Transform:
    fn, name = site["fn"], site["name"]
    try:
        discrete = fn.support.is_discrete
    except NotImplementedError:
        discrete = False
    if discrete:
        raise MCMCError(
            f"Site '{name}' ({type(fn).__name__}, support {describe_constraint(fn.support)}) is "
            "discrete: HMC and NUTS move through continuous space only. Marginalise it out by "
            "hand (sum its probabilities into the likelihood), or observe it."
        )
    try:
        return biject_to(fn.support)
    except NotImplementedError:
        raise MCMCError(
            f"Site '{name}' ({type(fn).__name__}) has support "
            f"{describe_constraint(fn.support)}, which has no bijection from unconstrained real "
            "space, so HMC cannot move on it. Use a distribution whose support has one "
            "(or register one with biject_to.register)."
        ) from None


class Potential:
    """The potential energy of ``model(*args, **kwargs)`` over flat unconstrained vectors.

    ``init_strategy`` places the prototype run (and so fixes the site layout);
    ``max_plate_nesting`` is read off that run when not given.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    ...     engine.sample("p", dist.Dirichlet(torch.ones(3)))
    >>> [(site.name, site.size) for site in Potential(model).layout]
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
    ):
        self.model = model
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs or {})
        self.init_strategy = init_strategy
        prototype = self._init_trace()
        self.max_plate_nesting = (
            max_plate_nesting_of(prototype) if max_plate_nesting is None else max_plate_nesting
        )
        self.layout = self._layout(prototype)
        self.num_latent = sum(site.size for site in self.layout)
        first = next(iter(prototype.iter_stochastic_nodes()))[1]["value"]
        self.dtype, self.device = first.dtype, first.device
        self.deterministic_shapes = {
            name: site["value"].shape
            for name, site in prototype.nodes.items()
            if site["type"] == "sample" and site["infer"].get("_deterministic", False)
        }
        self.batched = self._check_batching(prototype)

    # -- structure ---------------------------------------------------------------------------

    def _init_trace(self) -> Trace:
        strategy = self.init_strategy

        @functools.wraps(strategy)
        def checked_strategy(site: Message) -> torch.Tensor:
            _checked_transform(site)  # a site HMC cannot move on fails here, by name
            return strategy(site)

        with torch.no_grad():
            model = InitMessenger(checked_strategy)(self.model)
            return trace(model).get_trace(*self.model_args, **self.model_kwargs)

    def _layout(self, prototype: Trace) -> list[LatentLayout]:
        layout, offset = [], 0
        for name, site in prototype.nodes.items():
            if is_subsample_site(site):
                raise MCMCError(
                    f"Plate '{name}' draws a mini-batch (subsample_size): HMC and NUTS need the "
                    "exact log density of all the data at every step. Drop subsample_size."
                )
            if site["type"] != "sample" or site["is_observed"]:
                continue
            transform = _checked_transform(site)
            shape = site["value"].shape
            unconstrained_shape = transform.inverse_shape(shape)
            size = math.prod(unconstrained_shape)
            event_dim = site["fn"].event_dim
            layout.append(
                LatentLayout(name, shape, unconstrained_shape, transform, event_dim, offset, size)
            )
            offset += size
        if not layout:
            raise MCMCError(
                "The model has no latent sample sites, so there is nothing to sample (every "
                "sample site is observed). Check that the unknowns are sampled without obs=..."
            )
        return layout

    # -- flat vectors <-> site values ----------------------------------------------------------

    def unconstrained_sites(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``z`` of shape (B, D) into ``{name: (B, *unconstrained_shape)}``."""
        batch = z.shape[:-1]
        return {
            site.name: z[..., site.offset : site.offset + site.size].reshape(
                batch + site.unconstrained_shape
            )
            for site in self.layout
        }

    def constrain(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map flat unconstrained vectors ``z`` (..., D) to ``{name: (..., *shape)}`` on each
        site's support."""
        return {
            site.name: site.transform(value)
            for site, value in zip(self.layout, self.unconstrained_sites(z).values(), strict=True)
        }

    def unconstrain(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """The inverse of :meth:`constrain`: ``{name: (B, *shape)}`` -> (B, D)."""
        parts = []
        for site in self.layout:
            value = values[site.name]
            batch = value.shape[: value.dim() - len(site.shape)]
            parts.append(site.transform.inv(value).reshape((*batch, site.size)))
        return torch.cat(parts, dim=-1)

    # -- the energy ------------------------------------------------------------------------------

    def _run(self, z: torch.Tensor, batched: bool) -> tuple[Trace, torch.Tensor]:
        """Run the model on the rows of ``z`` (B, D): all at once under the chain plate when
        ``batched``, else on a single row (B = 1) exactly as written. Returns the trace and the
        summed log|Jacobian| per row."""
        num = z.shape[0]
        values, log_jacobian = {}, z.new_zeros(num)
        for site, u in zip(self.layout, self.unconstrained_sites(z).values(), strict=True):
            x = site.transform(u)
            jac = site.transform.log_abs_det_jacobian(u, x)
            log_jacobian = log_jacobian + jac.reshape(num, -1).sum(-1)
            padding = (num,) + (1,) * self._padding(site) if batched else ()
            values[site.name] = x.reshape(padding + site.shape)
        model = SubstituteMessenger(data=values)(self.model)
        if batched:
            model = vectorize(model, num, self.max_plate_nesting, CHAIN_PLATE)
        model_trace = trace(model).get_trace(*self.model_args, **self.model_kwargs)
        return model_trace, log_jacobian

    def _padding(self, site: LatentLayout) -> int:
        """How many size-1 dims go between the chain dim and a site's value: the chain plate sits
        at dim ``-max_plate_nesting - 1`` of the batch shape."""
        return self.max_plate_nesting - (len(site.shape) - site.event_dim)

    def _check_batching(self, prototype: Trace) -> bool:
        """Whether the model gives the same log density when its chains are batched. Code such
        as ``weights[0]`` (instead of ``weights[..., 0]``) indexes the chain dim, and then each
        chain must run on its own."""
        values = {name: site["value"] for name, site in prototype.iter_stochastic_nodes()}
        z = self.unconstrain({name: value.unsqueeze(0) for name, value in values.items()})
        try:
            with torch.no_grad():
                batched = self._energy_of(z.expand(2, -1), batched=True)
                alone = self._energy_of(z, batched=False)
        except Exception:
            return False
        return bool(torch.allclose(batched, alone.expand(2), rtol=1e-4, atol=1e-4, equal_nan=True))

    def log_densities(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each sample site's log-density per row of ``z`` (B, D), plus ``"log|J|"``: what
        :meth:`energy` sums, for pointing at the site that makes it non-finite."""
        if self.batched:
            return self._log_densities(z, batched=True)
        rows = [self._log_densities(row.unsqueeze(0), batched=False) for row in z]
        return {name: torch.cat([row[name] for row in rows]) for name in rows[0]}

    def _log_densities(self, z: torch.Tensor, batched: bool) -> dict[str, torch.Tensor]:
        model_trace, log_jacobian = self._run(z, batched)
        densities = {}
        for name, site in model_trace.sample_sites():
            if "log_prob" not in site:
                Trace._compute_site_log_prob(site)
            if batched:
                density = sum_except_plate(site["log_prob"], site, CHAIN_PLATE)
                densities[name] = density.expand(z.shape[0])
            else:
                densities[name] = site["log_prob_sum"].reshape(1)
        densities["log|J|"] = log_jacobian
        return densities

    def _energy_of(self, z: torch.Tensor, batched: bool) -> torch.Tensor:
        return -sum(self._log_densities(z, batched).values())

    def deterministic_values(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's ``deterministic`` sites at each row of ``z`` (B, D), as
        ``{name: (B, *shape)}``."""
        if not self.batched:
            rows = [self._deterministic_values(row.unsqueeze(0), False) for row in z]
            return {name: torch.cat([row[name] for row in rows]) for name in rows[0]}
        return self._deterministic_values(z, True)

    def _deterministic_values(self, z: torch.Tensor, batched: bool) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            model_trace, _ = self._run(z, batched)
        values, rows = {}, z.shape[0]
        for name, shape in self.deterministic_shapes.items():
            value = model_trace.nodes[name]["value"]
            if value.numel() == rows * math.prod(shape):
                # The chain dim, size-1 padding and the site's own shape, in that order.
                values[name] = value.reshape((rows, *shape))
            else:  # the same for every chain (it does not depend on the latent sites)
                values[name] = value.reshape(shape).expand((rows, *shape))
        return values

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """``U(z)`` for each row of ``z`` (B, D): a tensor of shape (B,)."""
        if self.batched:
            return self._energy_of(z, batched=True)
        return torch.cat([self._energy_of(row.unsqueeze(0), batched=False) for row in z])

    def energy_and_grad(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``U(z)`` (B,) and its gradient (B, D); rows are independent chains."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            energy = self.energy(z)
            (grad,) = torch.autograd.grad(energy.sum(), z)
        return energy.detach(), grad

    # -- starting points -------------------------------------------------------------------------

    def initial_points(self, num_chains: int, max_tries: int = 100) -> torch.Tensor:
        """One starting point per chain from ``init_strategy``, each with a finite energy and
        gradient (a random strategy is retried up to ``max_tries`` times per chain)."""
        points = []
        for _ in range(num_chains):
            for attempt in range(max_tries):
                values = {
                    name: site["value"].unsqueeze(0)
                    for name, site in self._init_trace().iter_stochastic_nodes()
                }
                z = self.unconstrain(values)
                energy, grad = self.energy_and_grad(z)
                if bool(torch.isfinite(energy).all()) and bool(torch.isfinite(grad).all()):
                    points.append(z)
                    break
                if attempt == max_tries - 1:
                    raise MCMCError(self._describe_bad_start(z, max_tries))
        return torch.cat(points)

    def _describe_bad_start(self, z: torch.Tensor, tries: int) -> str:
        with torch.no_grad():
            densities = self.log_densities(z)
        bad = [
            f"'{name}' ({value.item()})"
            for name, value in densities.items()
            if not bool(torch.isfinite(value).all())
        ]
        where = ", ".join(bad) if bad else "none of the sites (the gradient is not finite)"
        return (
            f"MCMC found no starting point with a finite log density in {tries} tries of "
            f"{getattr(self.init_strategy, '__name__', 'the init strategy')}. Non-finite log "
            f"densities at the last try: {where}. Fix the model (a scale that can reach 0, a "
            "log of 0), or start elsewhere: init_strategy=init_to_value(values={...}) or "
            "init_to_median."
        )

    def points_from_values(self, values: dict[str, Any], num_chains: int) -> torch.Tensor:
        """Starting points (C, D) from unconstrained ``values`` (Pyro's ``initial_params``): each
        of a site's unconstrained shape (all chains start there) or with a leading chain dim."""
        return points_from_unconstrained(self, values, num_chains)

    def describe(self) -> str:
        """One line per latent site: its name, shape and unconstrained size."""
        return "\n".join(
            f"{site.name}: shape {fmt_shape(site.shape)}, {site.size} unconstrained"
            for site in self.layout
        )


def points_from_unconstrained(
    potential: Potential | UserPotential, values: dict[str, Any], num_chains: int
) -> torch.Tensor:
    """Pack unconstrained per-site ``values`` into starting points (C, D) and check that each
    chain's energy and gradient are finite there."""
    missing = [site.name for site in potential.layout if site.name not in values]
    if missing:
        raise MCMCError(
            f"initial_params has no value for {missing}; give every latent site "
            f"({[site.name for site in potential.layout]}) a value in unconstrained space."
        )
    parts = []
    for site in potential.layout:
        value = torch.as_tensor(values[site.name], dtype=potential.dtype, device=potential.device)
        if value.shape == site.unconstrained_shape:
            value = value.expand((num_chains, *site.unconstrained_shape))
        elif value.shape != (num_chains, *site.unconstrained_shape):
            raise MCMCError(
                f"initial_params['{site.name}'] has shape {fmt_shape(value.shape)}; it must be "
                f"{fmt_shape(site.unconstrained_shape)} (the site's unconstrained shape, for "
                f"every chain) or {fmt_shape((num_chains, *site.unconstrained_shape))} (one "
                f"value per chain, {num_chains} chains)."
            )
        parts.append(value.reshape(num_chains, site.size))
    z = torch.cat(parts, dim=-1)
    energy, grad = potential.energy_and_grad(z)
    bad = ~(torch.isfinite(energy) & torch.isfinite(grad).all(-1))
    if bool(bad.any()):
        chain = int(bad.nonzero()[0])
        raise MCMCError(
            f"initial_params gives chain {chain} a non-finite potential energy "
            f"({energy[chain].item()}) or gradient. Start it inside the support (the values are "
            "in unconstrained space: log of a scale, logit of a probability)."
        )
    return z


class UserPotential:
    """A potential given by the user: ``potential_fn({name: value})`` returns the potential
    energy of one point, in unconstrained space; the sites and their shapes come from
    ``initial_params``. Chains are evaluated one after another (the function sees one point).

    >>> import torch
    >>> quadratic = UserPotential(lambda p: 0.5 * (p["x"] ** 2).sum(), {"x": torch.zeros(2)}, 1)
    >>> quadratic.energy(torch.ones(3, 2))
    tensor([1., 1., 1.])
    """

    def __init__(
        self,
        potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        initial_params: dict[str, Any],
        num_chains: int,
    ):
        self.potential_fn = potential_fn
        self.layout, offset = [], 0
        identity = torch.distributions.transforms.identity_transform
        for name, value in initial_params.items():
            value = torch.as_tensor(value)
            shape = value.shape[1:] if num_chains > 1 else value.shape
            size = math.prod(shape)
            self.layout.append(LatentLayout(name, shape, shape, identity, 0, offset, size))
            offset += size
            self.dtype, self.device = value.dtype, value.device
        self.num_latent = offset
        self.deterministic_shapes: dict[str, torch.Size] = {}

    unconstrained_sites = Potential.unconstrained_sites
    constrain = Potential.constrain
    points_from_values = Potential.points_from_values

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        rows = [self.unconstrained_sites(row) for row in z]
        return torch.stack([torch.as_tensor(self.potential_fn(row)) for row in rows])

    energy_and_grad = Potential.energy_and_grad
