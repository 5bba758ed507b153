"""Effect-based autoguides: a guide that runs the model itself and swaps each latent site's prior
for a posterior as the site is reached (Pyro's ``pyro.infer.autoguide.effect``).

Because the guide sees every prior *given the values drawn upstream*, a posterior may depend on
them: :class:`AutoHierarchicalNormalMessenger` shifts its mean with the prior's mean,
:class:`AutoRegressiveMessenger` is an affine map of the prior itself. Subclass one and override
:meth:`AutoMessenger.get_posterior` for a few sites to hand-write just those parts.

How it meets an ELBO: a call runs the model under this handler. Each latent sample site leaves
the handler with its posterior as ``fn`` and reaches the enclosing trace as a guide site; the
model's observed (and deterministic) sites stop here, since they are scored when the ELBO replays
the model on the guide's draws, as for any guide. The model's plates run inside the guide, so
their mini-batch indices are in the guide's trace and the replayed model uses the same ones.

Parameters are created the first time a site is seen, named ``<prefix>.locs.<site>``,
``<prefix>.scales.<site>`` (and ``.weights.<site>``), shaped like the site's unconstrained value
with the full size of every subsampled plate, and shared (size 1) across ``amortized_plates``
and the plates outside the model (vectorised particles).

>>> import torch, engine, engine.distributions as dist
>>> engine.clear_param_store()
>>> def model(x):
...     mu = engine.sample("mu", dist.Normal(0.0, 1.0))
...     with engine.plate("data", len(x)):
...         engine.sample("x", dist.Normal(mu, 1.0), obs=x)
>>> guide = AutoNormalMessenger(model)
>>> sorted(guide(torch.zeros(3))), sorted(engine.get_param_store())
(['mu', 'x'], ['AutoNormalMessenger.locs.mu', 'AutoNormalMessenger.scales.mu'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.distributions.transforms import AffineTransform, Transform

from engine.distributions import Delta, TransformedDistribution, biject_to, constraints
from engine.errors import AutoGuideError, fmt_shape
from engine.infer.autoguide.guide import AutoGuide, GuideParam, _is_identity
from engine.infer.autoguide.initialization import init_to_feasible, init_to_mean
from engine.infer.autoguide.site_distributions import TransformedNormal
from engine.params import get_param_store
from engine.poutine.handlers import trace
from engine.poutine.plate_messenger import PlateMessenger
from engine.poutine.trace_struct import Trace
from engine.poutine.util import prune_subsample_sites
from engine.primitives import param
from engine.runtime import Message, Messenger, handler_stack, is_subsample_site

__all__ = [
    "AutoHierarchicalNormalMessenger",
    "AutoMessenger",
    "AutoNormalMessenger",
    "AutoRegressiveMessenger",
]


# The default init strategy: the prior mean where it is finite and inside the support.
_MEAN_OR_FEASIBLE = init_to_mean(fallback=init_to_feasible)


def _check_init_scale(cls: type, init_scale: float) -> float:
    if not init_scale > 0:
        raise AutoGuideError(f"{cls.__name__}: init_scale must be positive, got {init_scale!r}")
    return float(init_scale)


class AutoMessenger(AutoGuide, Messenger):
    """Base class of the effect-based guides: subclasses define :meth:`get_posterior`.

    ``guide(*args, **kwargs)`` runs the model and returns every sample site's value (latent,
    observed and deterministic); afterwards :meth:`get_traces` gives the model's and the guide's
    view of that run. ``amortized_plates`` names plates whose elements share one parameter.

    >>> import engine, engine.distributions as dist
    >>> class PriorGuide(AutoMessenger):
    ...     def get_posterior(self, name, prior):
    ...         return prior
    >>> def model():
    ...     engine.sample("z", dist.Normal(0.0, 1.0))
    >>> model_trace, guide_trace = (g := PriorGuide(model)) and (g(), g.get_traces())[1]
    >>> list(guide_trace.nodes), isinstance(g, Messenger)
    (['z'], True)
    """

    def __init__(self, model: Callable, *, amortized_plates: Iterable[str] = ()):
        super().__init__(model)
        self.amortized_plates = tuple(amortized_plates)
        self.trace: Trace | None = None
        self.args_kwargs: tuple[tuple, dict] | None = None
        self._outer_plates: dict[str, int] = {}

    @property
    def is_set_up(self) -> bool:
        """Whether a call has created parameters (they are made as sites are first seen)."""
        return bool(self._params)

    def get_posterior(self, name: str, prior: torch.distributions.Distribution) -> Any:
        """The posterior of site ``name`` given its ``prior`` (conditioned on the values drawn
        upstream): a distribution, or a tensor (a point mass)."""
        raise NotImplementedError(f"{type(self).__name__} must define get_posterior")

    def upstream_value(self, name: str) -> torch.Tensor:
        """The value of a sample or deterministic site the model reached earlier in this call."""
        return self.trace.nodes[name]["value"]

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Run the model with posteriors in place of priors; ``{site name: value}``."""
        # Plates around the guide (vectorised particles) are not the model's: parameters are
        # shared along them.
        self._outer_plates = {
            h.name: h.dim
            for h in handler_stack()
            if isinstance(h, PlateMessenger) and h.dim is not None
        }
        self.args_kwargs = (args, kwargs)
        recorder = trace(self.model)
        try:
            with self:
                # Inside this handler, so that it records the sites with their posteriors.
                self.trace = recorder.get_trace(*args, **kwargs)
        finally:
            self.args_kwargs = None
            self._outer_plates = {}
        return {
            name: site["value"]
            for name, site in self.trace.nodes.items()
            if site["type"] == "sample" and not is_subsample_site(site)
        }

    def get_traces(self) -> tuple[Trace, Trace]:
        """``(model_trace, guide_trace)`` of the last call: the guide's has the latent sites with
        their posteriors, the model's every sample site with its prior."""
        if self.trace is None:
            raise AutoGuideError(f"{type(self).__name__}: call the guide before get_traces().")
        guide_trace = prune_subsample_sites(self.trace)
        model_trace = guide_trace.copy()
        for name, site in list(guide_trace.nodes.items()):
            if site["type"] != "sample" or site["is_observed"]:
                guide_trace.remove_node(name)
                continue
            model_trace.nodes[name] = {**site, "fn": site["infer"]["prior"]}
        return model_trace, guide_trace

    # -- the effect ----------------------------------------------------------------------------

    def _process_sample(self, msg: Message) -> None:
        if msg["is_observed"]:
            msg["stop"] = True  # the model's to score, at replay
            return
        if is_subsample_site(msg) or msg["value"] is not None:
            return
        if msg["infer"].get("enumerate") or msg["infer"].get("is_auxiliary"):
            return
        prior = msg["fn"]
        self._current_frames = tuple(f for f in msg["cond_indep_stack"] if f.vectorized)
        posterior = self.get_posterior(msg["name"], prior)
        if isinstance(posterior, torch.Tensor):
            posterior = Delta(posterior, event_dim=len(prior.event_shape))
        if posterior.batch_shape != prior.batch_shape:
            posterior = posterior.expand(prior.batch_shape)
        msg["infer"]["prior"] = prior
        msg["fn"] = posterior

    def _postprocess_sample(self, msg: Message) -> None:
        prior = msg["infer"].get("prior")
        if prior is not None and prior.batch_shape != msg["fn"].batch_shape:
            # Plates outside the model broadcast the posterior: the prior follows.
            msg["infer"]["prior"] = prior.expand(msg["fn"].batch_shape)

    # -- parameters ----------------------------------------------------------------------------

    def _site_param(
        self,
        kind: str,
        name: str,
        make_init: Callable[[], torch.Tensor],
        constraint: Any,
        event_dim: int,
    ) -> torch.Tensor:
        """The param ``<kind>.<name>``, created from ``make_init()`` (a value shaped like the
        site's unconstrained draw) the first time, read through ``engine.param`` inside the
        site's plates (so a subsampled plate takes its rows)."""
        key = f"{kind}.{name}"
        p = self._params.get(key)
        if p is None:
            with torch.no_grad():
                init = self._shared_across_plates(make_init().detach(), event_dim)
            p = GuideParam(key, f"{key}_unconstrained", init, constraint, event_dim)
            p.name = f"{self._prefix}.{key}"
            store = get_param_store()
            if p.name in store:
                held = store[p.name]
                if held.shape != init.shape:
                    raise AutoGuideError(
                        f"{type(self).__name__}: the param store holds '{p.name}' with shape "
                        f"{fmt_shape(held.shape)}, but site '{name}' needs "
                        f"{fmt_shape(init.shape)}: it belongs to another model. Remove it "
                        "(pyro.clear_param_store()) and call the guide again."
                    )
            else:
                self._created.add(p.name)
            self._params[key] = p
        return param(p.name, p.init, p.constraint, p.event_dim)

    def _shared_across_plates(self, value: torch.Tensor, event_dim: int) -> torch.Tensor:
        """``value`` at the shape of a parameter: full size along subsampled plates, size 1
        along amortized plates and plates outside the model, leading size-1 dims dropped."""
        own = {f.dim - event_dim: f for f in self._current_frames}
        outer = {dim - event_dim for dim in self._outer_plates.values()}
        for dim in range(-value.dim(), -event_dim):
            frame = own.get(dim)
            if dim in outer or (frame is not None and frame.name in self.amortized_plates):
                value = value.mean(dim, keepdim=True)
            elif (
                frame is not None
                and frame.full_size not in (None, frame.size)
                and value.shape[dim] == frame.size
            ):
                rows = torch.arange(frame.full_size, device=value.device) % frame.size
                value = value.index_select(dim, rows)
        while value.dim() > event_dim and value.shape[0] == 1:
            value = value.squeeze(0)
        return value.contiguous()

    def _unconstrained_init(self, name: str, prior: Any, transform: Transform) -> torch.Tensor:
        site = {"name": name, "fn": prior, "value": None, "is_observed": False}
        return transform.inv(self.init_loc_fn(site))


def _support_transform(guide: AutoMessenger, name: str, prior: Any) -> Transform:
    try:
        return biject_to(prior.support)
    except NotImplementedError:
        raise AutoGuideError(
            f"{type(guide).__name__}: site '{name}' ({type(prior).__name__}) has a support with "
            "no bijection from unconstrained space (a discrete site?), so it cannot have a "
            "Normal posterior. Override get_posterior for it, or enumerate it."
        ) from None


class _AffineMessenger(AutoMessenger):
    """The base of the guides whose posterior is an affine map in each site's unconstrained
    space: a ``loc`` and a ``scale`` parameter per site, started by ``init_loc_fn`` and
    ``init_scale``. Subclasses say where ``loc`` starts (``_loc_init``) and what the map acts on.
    """

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = _MEAN_OR_FEASIBLE,
        init_scale: float = 0.1,
        amortized_plates: Iterable[str] = (),
    ):
        super().__init__(model, amortized_plates=amortized_plates)
        self.init_loc_fn = init_loc_fn
        self._init_scale = _check_init_scale(type(self), init_scale)

    def _loc_scale(self, name: str, prior: Any, transform: Transform) -> tuple:
        """The site's ``loc`` and ``scale`` params (created at the first call) and the event
        dim they carry."""
        event_dim = (
            transform.domain.event_dim + len(prior.event_shape) - (transform.codomain.event_dim)
        )
        loc = self._site_param(
            "locs",
            name,
            lambda: self._loc_init(name, prior, transform),
            constraints.real,
            event_dim,
        )
        scale = self._site_param(
            "scales",
            name,
            lambda: torch.full_like(
                self._unconstrained_init(name, prior, transform), self._init_scale
            ),
            constraints.softplus_positive,
            event_dim,
        )
        return loc, scale, event_dim

    def _loc_init(self, name: str, prior: Any, transform: Transform) -> torch.Tensor:
        return self._unconstrained_init(name, prior, transform)


class AutoNormalMessenger(_AffineMessenger):
    """A Normal in each latent site's unconstrained space, independent across sites (the
    posterior of :class:`~engine.infer.autoguide.AutoNormal`, as a messenger).

    ``init_loc_fn`` (default: the prior mean, else a feasible point) places the locations;
    scales start at ``init_scale``.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("s", dist.LogNormal(2.0, 1.0))
    >>> AutoNormalMessenger(model).median()["s"]  # starts at the prior mean, exp(2.5)
    tensor(12.1825)
    """

    _median_mode = False  # set by median() while it runs

    def _posterior_loc(self, name: str, prior: Any, transform: Transform, loc: torch.Tensor):
        return loc

    def get_posterior(self, name: str, prior: Any) -> Any:
        """``TransformedNormal(loc, scale)`` pushed onto the prior's support (in median mode,
        ``transform(loc)``)."""
        transform = _support_transform(self, name, prior)
        loc, scale, event_dim = self._loc_scale(name, prior, transform)
        loc = self._posterior_loc(name, prior, transform, loc)
        identity = _is_identity(transform)
        if self._median_mode:
            return loc if identity else transform(loc)
        return TransformedNormal(
            loc, scale, None if identity else transform, event_dim, prior.support
        )

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Every sample site with each latent at its posterior median (the model's observed and
        deterministic sites follow from those)."""
        self._median_mode = True
        try:
            return {name: value.detach() for name, value in self(*args, **kwargs).items()}
        finally:
            self._median_mode = False


class AutoHierarchicalNormalMessenger(AutoNormalMessenger):
    """Like :class:`AutoNormalMessenger`, with each posterior mean shifted by the prior's:
    ``loc + weight * transform.inv(prior.mean)`` in unconstrained space, where ``prior.mean``
    follows the values drawn upstream (a hierarchical model's group means pull their members).
    ``weight`` (positive, element-wise, starting at ``init_weight``) is learned; the sites in
    ``hierarchical_sites`` (default: all) get it, the others are plain
    ``AutoNormalMessenger`` sites. Locations start so that the posterior mean starts at
    ``init_loc_fn``'s value.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     mu = engine.sample("mu", dist.Normal(3.0, 1.0))
    ...     engine.sample("z", dist.Normal(mu, 1.0))
    >>> guide = AutoHierarchicalNormalMessenger(model)
    >>> {k: round(v.item(), 4) for k, v in guide.median().items()}
    {'mu': 3.0, 'z': 3.0}
    """

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = _MEAN_OR_FEASIBLE,
        init_scale: float = 0.1,
        amortized_plates: Iterable[str] = (),
        init_weight: float = 1.0,
        hierarchical_sites: Iterable[str] | None = None,
    ):
        super().__init__(
            model, init_loc_fn=init_loc_fn, init_scale=init_scale, amortized_plates=amortized_plates
        )
        self._init_weight = float(init_weight)
        self.hierarchical_sites = None if hierarchical_sites is None else set(hierarchical_sites)

    def _is_hierarchical(self, name: str) -> bool:
        return self.hierarchical_sites is None or name in self.hierarchical_sites

    def _prior_loc(self, name: str, prior: Any, transform: Transform) -> torch.Tensor:
        try:
            return transform.inv(prior.mean)
        except NotImplementedError:
            raise AutoGuideError(
                f"AutoHierarchicalNormalMessenger: site '{name}' ({type(prior).__name__}) has "
                "no mean to shift its posterior by. Leave it out of hierarchical_sites."
            ) from None

    def _loc_init(self, name: str, prior: Any, transform: Transform) -> torch.Tensor:
        init = self._unconstrained_init(name, prior, transform)
        if not self._is_hierarchical(name):
            return init
        # So that the posterior's location starts at init_loc_fn's value.
        return init - self._init_weight * self._prior_loc(name, prior, transform)

    def _posterior_loc(self, name: str, prior: Any, transform: Transform, loc: torch.Tensor):
        if not self._is_hierarchical(name):
            return loc
        prior_loc = self._prior_loc(name, prior, transform)
        weight = self._site_param(
            "weights",
            name,
            lambda: torch.full_like(prior_loc, self._init_weight),
            constraints.softplus_positive,
            self._params[f"locs.{name}"].event_dim,
        )
        return loc + weight * prior_loc


class AutoRegressiveMessenger(_AffineMessenger):
    """Each posterior is the prior (given the values drawn upstream) moved by a learned affine
    map in unconstrained space: ``u -> loc + scale * u``, so the model's dependency structure
    carries over to the guide. Continuous sites only; ``init_loc_fn`` and ``init_scale`` set
    where the map starts (``loc = (1 - init_scale) * init``, ``scale = init_scale``).

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("s", dist.LogNormal(0.0, 1.0))
    >>> bool(AutoRegressiveMessenger(model)()["s"] > 0)
    True
    """

    def _loc_init(self, name: str, prior: Any, transform: Transform) -> torch.Tensor:
        # The map starts near the identity: loc = (1 - init_scale) * init, scale = init_scale.
        return self._unconstrained_init(name, prior, transform) * (1 - self._init_scale)

    def get_posterior(self, name: str, prior: Any) -> Any:
        """``prior`` through ``transform.inv``, the affine map, and ``transform``."""
        transform = _support_transform(self, name, prior)
        loc, scale, event_dim = self._loc_scale(name, prior, transform)
        affine = AffineTransform(loc, scale, event_dim=event_dim)
        return _PushedForward(prior, [transform.inv, affine, transform], prior.support)


class _PushedForward(TransformedDistribution):
    """A prior pushed through transforms that end on its own support, which it reports
    (``biject_to``'s composed transforms may name a wider codomain)."""

    def __init__(self, base: Any, transforms: list, support: Any, validate_args: Any = None):
        self._support = support
        super().__init__(base, transforms, validate_args=validate_args)

    @property
    def support(self) -> Any:
        return self._support

    def expand(self, batch_shape: Any, _instance: Any = None) -> _PushedForward:
        new = self._get_checked_instance(_PushedForward, _instance)
        new._support = self._support
        return super().expand(batch_shape, _instance=new)
