"""``AutoGuide``: what every autoguide shares.

An autoguide runs the model once (the *prototype trace*, with each latent site set by an init
strategy), learns its latent sites, their supports, shapes and plates, and creates its parameters in
the param store. From then on each call samples every latent site of the model under the same name,
inside the same plates, reading its parameters through ``engine.param`` so that a
``poutine.trace(param_only=True)`` around the call (SVI) sees them.

The guide is a ``torch.nn.Module`` whose ``state_dict()`` holds the param store's own unconstrained
tensors (under Pyro's keys, e.g. ``locs.w_unconstrained``), and ``load_state_dict`` copies into
those tensors in place. The param store stays the one source of truth: after
``get_param_store().load(...)`` a guide created again for the same model picks the loaded values up.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer.autoguide import AutoNormal
>>> engine.clear_param_store()
>>> def model(x):
...     w = engine.sample("w", dist.Normal(0.0, 1.0))
...     engine.sample("x", dist.Normal(w, 1.0), obs=x)
>>> guide = AutoNormal(model, model_args=(torch.tensor(0.5),))
>>> sorted(guide.state_dict())
['locs.w_unconstrained', 'scales.w_unconstrained']
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.distributions.constraints import Constraint
from torch.distributions.transforms import Transform

from engine.constraint_codec import describe_constraint
from engine.distributions import biject_to
from engine.errors import AutoGuideError, ShapeError, describe_plates, fmt_shape
from engine.infer.autoguide.initialization import InitFn, InitMessenger, init_to_feasible
from engine.infer.shape_signature import shape_signature
from engine.infer.util import values_by_site_name
from engine.params import get_param_store
from engine.poutine.handlers import block, trace
from engine.poutine.plate_messenger import PlateMessenger
from engine.poutine.trace_struct import Trace
from engine.rng import preserved_rng_state
from engine.runtime import CondIndepStackFrame, Message, is_subsample_site

__all__ = ["AutoGuide", "AutoGuideError", "GuideParam", "LatentSite"]

# Argument signatures remembered as already checked against the setup's site shapes; more than
# this many distinct ones (a counter passed as an argument, say) starts the memory afresh.
_MAX_REMEMBERED_SIGNATURES = 64


@dataclass
class GuideParam:
    """One parameter an autoguide keeps in the param store.

    ``key`` is its name inside the guide (``"locs.w"``); the store name is the guide's prefix and
    the key (``"AutoNormal.locs.w"``); ``state_key`` is its ``state_dict`` key. ``init`` is the
    constrained initial value, used whenever the store does not hold the param.

    >>> from torch.distributions import constraints
    >>> p = GuideParam("loc", "loc", torch.zeros(2), constraints.real)
    >>> p.state_key
    'loc'
    """

    key: str
    state_key: str
    init: torch.Tensor
    constraint: Constraint
    event_dim: int | None = None
    name: str = ""


@dataclass(frozen=True)
class LatentSite:
    """What the prototype trace says about one latent site of the model.

    ``value`` is the init value (constrained, with the model's mini-batch size in subsampled
    plates); ``transform`` is ``biject_to(support)``; ``frames`` are the site's vectorised plates,
    outermost first.

    >>> import engine.distributions as dist
    >>> from engine.distributions import biject_to
    >>> fn = dist.HalfNormal(1.0)
    >>> site = LatentSite("s", fn, torch.tensor(2.0), biject_to(fn.support), ())
    >>> site.unconstrained_value(), site.is_identity
    (tensor(0.6931), False)
    """

    name: str
    fn: torch.distributions.Distribution
    value: torch.Tensor
    transform: Transform
    frames: tuple[CondIndepStackFrame, ...]

    @property
    def support(self) -> Constraint:
        return self.fn.support

    @property
    def event_dim(self) -> int:
        return len(self.fn.event_shape)

    @property
    def unconstrained_event_dim(self) -> int:
        # A transform may change the number of event dims (a Cholesky factor is unpacked from a
        # vector): the unconstrained value's event dims follow the transform's domain.
        t = self.transform
        return self.event_dim + t.domain.event_dim - t.codomain.event_dim

    @property
    def is_identity(self) -> bool:
        return _is_identity(self.transform)

    @property
    def plate_names(self) -> tuple[str, ...]:
        return tuple(frame.name for frame in self.frames)

    def unconstrained_value(self) -> torch.Tensor:
        return self.transform.inv(self.value)

    def to_full_size(self, tensor: torch.Tensor, event_dim: int) -> torch.Tensor:
        """Extend ``tensor`` (one row per mini-batch element) to the plates' full sizes.

        The prototype only saw a mini-batch; the other rows start as periodic copies of it.
        """
        for frame in self.frames:
            if frame.full_size is None or frame.full_size == frame.size:
                continue
            dim = frame.dim - event_dim
            rows = torch.arange(frame.full_size, device=tensor.device) % frame.size
            tensor = tensor.index_select(dim, rows)
        return tensor.contiguous()


def _is_identity(transform: Transform) -> bool:
    if isinstance(transform, torch.distributions.transforms.IndependentTransform):
        return _is_identity(transform.base_transform)
    return isinstance(transform, torch.distributions.transforms.ComposeTransform) and not (
        transform.parts
    )


def _full_shape(
    shape: torch.Size, frames: Iterable[CondIndepStackFrame], event_dim: int
) -> torch.Size:
    """``shape`` with each subsampled plate's dim at the plate's full size.

    A guide's per-element params have the full size; the mini-batches of a model may differ in
    size (the last one of an epoch is often shorter), and this is what stays the same.

    >>> frame = CondIndepStackFrame("data", -1, 5, 0, full_size=50)
    >>> _full_shape(torch.Size([3, 5, 2]), [frame], event_dim=1)
    torch.Size([3, 50, 2])
    """
    full = list(shape)
    for frame in frames:
        index = frame.dim - event_dim
        if frame.full_size is not None and -index <= len(full) and full[index] == frame.size:
            full[index] = frame.full_size
    return torch.Size(full)


def _plate_sizes(frames: Iterable[CondIndepStackFrame]) -> tuple[tuple[str, int], ...]:
    return tuple((f.name, f.size if f.full_size is None else f.full_size) for f in frames)


def _set_param_value(p: GuideParam, value: Any) -> None:
    """Give the param store's ``p`` a new constrained value (``guide.locs.w = value``)."""
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value, dtype=p.init.dtype, device=p.init.device)
    get_param_store()[p.name] = value.detach()


class _ParamAttributes:
    """The guide's parameters whose keys start with ``path.``, as attributes: what
    ``guide.locs`` is (``guide.locs.w`` reads the store's ``<prefix>.locs.w``, constrained).

    >>> import engine, engine.distributions as dist
    >>> from engine.infer.autoguide import AutoNormal
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("w", dist.Normal(0.0, 1.0))
    >>> guide = AutoNormal(model, model_args=())
    >>> guide.locs.w = torch.tensor(2.5)
    >>> guide.locs.w.item(), engine.param("AutoNormal.locs.w").item(), hasattr(guide.locs, "v")
    (2.5, 2.5, False)
    """

    def __init__(self, guide: AutoGuide, path: str) -> None:
        object.__setattr__(self, "_guide", guide)
        object.__setattr__(self, "_path", path)

    def _key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def lookup(self, name: str) -> Any:
        """The param under ``name`` (its value), the namespace of the keys below it, or None."""
        guide = self._guide
        params = guide.__dict__.get("_params") or {}
        key = self._key(name)
        if key in params:
            return guide._stored(params[key])
        if any(other.startswith(key + ".") for other in params):
            return _ParamAttributes(guide, key)
        return None

    def __getattr__(self, name: str) -> Any:
        found = self.lookup(name)
        if found is None:
            raise AttributeError(
                f"{type(self._guide).__name__} has no parameter '{self._key(name)}'"
            )
        return found

    def __setattr__(self, name: str, value: Any) -> None:
        params = self._guide.__dict__.get("_params") or {}
        key = self._key(name)
        if key not in params:
            raise AttributeError(
                f"{type(self._guide).__name__} has no parameter '{key}' to set (its "
                f"parameters: {', '.join(sorted(params)) or 'none yet'})"
            )
        _set_param_value(params[key], value)

    def __dir__(self) -> list[str]:
        start = self._key("")
        return sorted(
            {
                key[len(start) :].split(".")[0]
                for key in self._guide._params
                if key.startswith(start)
            }
        )


class AutoGuide(torch.nn.Module):
    """Base class of the autoguides: prototype trace, parameters, plates and checks.

    Parameters are created as soon as the guide knows the model's arguments: pass
    ``model_args=(...)`` / ``model_kwargs={...}`` to the constructor, or call
    :meth:`setup` with them, or let the first call do it. ``create_plates(*args, **kwargs)`` may
    return the plates (one or an iterable) the guide should use instead of its own; a model whose
    plate is given its mini-batch indices (``plate(..., subsample=idx)``) needs it, since the guide
    cannot know those indices otherwise. Sites marked for enumeration
    (``infer={"enumerate": ...}``) are left out: ``TraceEnum_ELBO`` sums them out.

    >>> import engine, engine.distributions as dist
    >>> from engine.infer.autoguide import AutoDelta
    >>> def model():
    ...     engine.sample("z", dist.Normal(0.0, 1.0))
    >>> guide = AutoDelta(model)
    >>> guide.prototype_trace is None, sorted(guide())
    (True, ['z'])
    """

    #: Whether a model with no latent site is accepted (the guide then draws nothing and the
    #: model's own params are fitted alone, by maximum likelihood): per-site guides accept it,
    #: as in Pyro; guides over one joint latent vector refuse it.
    allows_no_latent_sites: ClassVar[bool] = False

    def __init__(self, model: Callable, *, create_plates: Callable | None = None):
        super().__init__()
        # A tuple, so that a model that is itself an nn.Module is not registered as a submodule.
        self._model = (model,)
        self.create_plates = create_plates
        self.prototype_trace: Trace | None = None
        self._prefix = type(self).__name__
        self._params: dict[str, GuideParam] = {}
        self._created: set[str] = set()
        self._frames: dict[str, CondIndepStackFrame] = {}
        self._site_shapes: dict[str, torch.Size] = {}
        self._site_plates: dict[str, tuple[tuple[str, int], ...]] = {}
        self._checked_signatures: set = set()
        # The AutoGuideList this guide is a part of (set by its append).
        self._master: AutoGuide | None = None
        self._call_plates: dict[str, PlateMessenger] | None = None

    @property
    def model(self) -> Callable:
        """The model this guide was built for."""
        return self._model[0]

    @property
    def is_set_up(self) -> bool:
        """Whether the prototype trace has been taken and the parameters exist."""
        return self.prototype_trace is not None

    def _setup_if_given(self, model_args: tuple | None, model_kwargs: dict | None) -> None:
        if model_args is not None or model_kwargs is not None:
            self.setup(*(model_args or ()), **(model_kwargs or {}))

    # -- setup ---------------------------------------------------------------------------------

    def setup(self, *args: Any, **kwargs: Any) -> AutoGuide:
        """Run the model once with these arguments and create the guide's parameters.

        Parameters already in the param store under the guide's names (after ``load``) are kept,
        if their shapes fit. Returns the guide.
        """
        # A failed setup leaves the guide as it was (the param store is only written once every
        # check has passed).
        before = dict(self.__dict__)
        try:
            # Setup draws (init strategies, mini-batches) must not shift the random stream, or a
            # run resumed from a saved state would not repeat the original run.
            with preserved_rng_state():
                self._setup(args, kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        return self

    def _setup(self, args: tuple, kwargs: dict) -> None:
        prototype = self._prototype(args, kwargs, getattr(self, "init_loc_fn", init_to_feasible))
        sites = self._latent_sites(prototype, args, kwargs)
        # What the setup ran on, for guides that read more off the model (its dependencies);
        # not kept afterwards, so the guide holds no reference to the data.
        self._setup_run = (prototype, args, kwargs)
        try:
            params = self._setup_sites(sites)
        finally:
            del self._setup_run
        self._register(params)
        self.prototype_trace = prototype
        self._site_shapes = {
            site.name: _full_shape(site.value.shape, site.frames, site.event_dim) for site in sites
        }
        self._site_plates = {site.name: _plate_sizes(site.frames) for site in sites}
        self._frames = {}
        for site in sites:
            for frame in site.frames:
                self._frames.setdefault(frame.name, frame)
        self._checked_signatures = {shape_signature((args, kwargs))}

    def _setup_sites(self, sites: list[LatentSite]) -> list[GuideParam]:
        """Precompute what a call needs for these sites; return the parameters to create."""
        raise NotImplementedError

    def _prototype(
        self, args: tuple, kwargs: dict, init_fn: InitFn, known: Collection[str] | None = None
    ) -> Trace:
        """One run of the model with its latent sites placed by ``init_fn``. With ``known``
        (a guide already set up), only those sites are: any other latent site (an observed
        site called with ``obs=None`` to predict it) is drawn from its prior, as the guide
        does not cover it."""

        @functools.wraps(init_fn)
        def checked_init(site: Message) -> torch.Tensor:
            if known is not None and site["name"] not in known:
                return site["fn"].sample()
            # Refuse a site the guide cannot cover before the strategy trips over it.
            self._bijection(site)
            return init_fn(site)

        # Blocked: when the first call happens inside SVI's trace of the guide, the model's sites
        # must not show up there.
        with block():
            return trace(InitMessenger(checked_init)(self.model)).get_trace(*args, **kwargs)

    def _latent_sites(self, prototype: Trace, args: tuple, kwargs: dict) -> list[LatentSite]:
        sites = []
        for name, site in prototype.iter_stochastic_nodes():
            if site["infer"].get("enumerate"):
                continue  # summed out by TraceEnum_ELBO, not covered by a guide
            sites.append(
                LatentSite(
                    name,
                    site["fn"],
                    site["value"].detach(),
                    biject_to(site["fn"].support),
                    tuple(frame for frame in site["cond_indep_stack"] if frame.vectorized),
                )
            )
        if not sites and not self.allows_no_latent_sites:
            observed = prototype.observation_nodes
            raise AutoGuideError(
                f"{type(self).__name__}: the model has no latent sample sites, so there is nothing "
                f"for a guide to fit (its sample sites are all observed or deterministic: "
                f"{observed or 'none'}). Use an empty guide (def guide(*args, **kwargs): pass), "
                "or check that the model samples its unknowns without obs=..."
            )
        self._check_subsample_sources(sites, prototype, args, kwargs)
        return sites

    def _bijection(self, site: Message) -> Transform:
        fn, name = site["fn"], site["name"]
        support = fn.support
        try:
            discrete = support.is_discrete
        except NotImplementedError:
            discrete = False
        if discrete:
            raise AutoGuideError(
                f"{type(self).__name__}: site '{name}' ({type(fn).__name__}, support "
                f"{describe_constraint(support)}) is discrete, and an autoguide only covers "
                "continuous latent sites. Enumerate it instead: mark it with "
                "infer={'enumerate': 'parallel'} (or decorate the model with config_enumerate) "
                "and use TraceEnum_ELBO; autoguides leave enumerated sites to it (Pyro's "
                "tutorial: https://pyro.ai/examples/enumeration.html). Or write a guide for it "
                "by hand and combine the two with AutoGuideList."
            )
        try:
            return biject_to(support)
        except NotImplementedError:
            raise AutoGuideError(
                f"{type(self).__name__}: site '{name}' ({type(fn).__name__}) has support "
                f"{describe_constraint(support)}, which has no bijection from unconstrained real "
                "space, so an autoguide cannot place a distribution on it. Reparameterise the "
                "site with a support that has one (register it with biject_to.register; a "
                "direction on the sphere, e.g. ProjectedNormal, becomes unconstrained with "
                f"poutine.reparam(model, config={{'{name}': ProjectedNormalReparam()}})), or "
                f"hide it with poutine.block(model, hide=['{name}']) and guide it by hand."
            ) from None

    def _check_subsample_sources(
        self, sites: list[LatentSite], prototype: Trace, args: tuple, kwargs: dict
    ) -> None:
        """A plate given its indices by the model (``subsample=idx``) draws no mini-batch site,
        so a guide drawing its own would silently pair the wrong rows: demand ``create_plates``."""
        master = self._master
        # Inside an AutoGuideList, the list's plates are the ones used.
        creator = self.create_plates if master is None else master.create_plates
        given = set()
        if creator is not None:
            with block():
                given = set(self._user_plates(creator, args, kwargs))
        for site in sites:
            for frame in site.frames:
                if frame.full_size in (None, frame.size) or frame.name in given:
                    continue
                drawn = prototype.nodes.get(frame.name)
                if drawn is None or not is_subsample_site(drawn):
                    raise AutoGuideError(
                        f"{type(self).__name__}: site '{site.name}' sits in "
                        f"{describe_plates(site.frames)}, but the guide never sees where that "
                        "plate's mini-batch indices come from, so guide and model could pair "
                        "different rows. Either the model is wrapped in poutine.block, which "
                        f"hides the plate's own site: expose it too (expose=[..., "
                        f"'{frame.name}']); or the model passes the indices in "
                        "(plate(..., subsample=...)): pass create_plates=lambda *args, **kwargs: "
                        f"pyro.plate('{frame.name}', {frame.full_size}, subsample=<the same "
                        "indices>) to the guide."
                    )

    def _register(self, params: list[GuideParam]) -> None:
        store = get_param_store()
        for p in params:
            p.name = f"{self._prefix}.{p.key}"
            if p.name in store:
                held = store.get_param(p.name, constraint=p.constraint)
                if held.shape != p.init.shape:
                    raise ShapeError(
                        f"The param store already holds '{p.name}' with shape "
                        f"{fmt_shape(held.shape)}, but {type(self).__name__} needs shape "
                        f"{fmt_shape(p.init.shape)} for this model: the stored value belongs to "
                        "an earlier guide for another model or other data. Remove it (del "
                        f"pyro.get_param_store()['{p.name}'], or pyro.clear_param_store()) and "
                        "create the guide again."
                    )
        created = set()
        for p in params:
            if p.name not in store:
                store.get_param(p.name, p.init, p.constraint, p.event_dim)
                created.add(p.name)
        self._params = {p.key: p for p in params}
        self._created = created

    # -- names and the param store -------------------------------------------------------------

    def _set_prefix(self, prefix: str) -> None:
        """Rename the guide's params to ``prefix.<key>`` (a part of an ``AutoGuideList``).

        Params this guide created move with their tensors; params it found in the store are
        copied, and stay where they were for whoever else uses them.
        """
        store = get_param_store()
        created = set()
        for p in self._params.values():
            new_name = f"{prefix}.{p.key}"
            if p.name in store and new_name not in store:
                leaf = store[p.name].unconstrained()
                if p.name not in self._created:
                    leaf = leaf.detach().clone()
                store.set_state(
                    {
                        "params": {new_name: leaf},
                        "constraints": {new_name: p.constraint},
                        "event_dims": {new_name: p.event_dim},
                    }
                )
                created.add(new_name)
            if p.name in self._created and p.name in store:
                del store[p.name]
            p.name = new_name
        self._created = created
        self._prefix = prefix

    def _leaf(self, p: GuideParam) -> torch.Tensor:
        """The unconstrained tensor the store holds for ``p`` (re-created if it was cleared)."""
        value = get_param_store().get_param(p.name, p.init, p.constraint, p.event_dim)
        return value.unconstrained()

    def _stored(self, p: GuideParam) -> torch.Tensor:
        """The constrained value of ``p`` straight from the store (no plates), with its grad."""
        return get_param_store().get_param(p.name, p.init, p.constraint, p.event_dim)

    def _value(self, p: GuideParam) -> torch.Tensor:
        """The constrained value of ``p``, detached, straight from the store (no plates)."""
        return self._stored(p).detach()

    def __getattr__(self, name: str) -> Any:
        # Pyro's guides are modules whose parameters are attributes under their keys
        # (``guide.loc``, ``guide.locs.w``): read them from the store, constrained, with grad.
        try:
            return super().__getattr__(name)
        except AttributeError:
            found = _ParamAttributes(self, "").lookup(name)
            if found is not None:
                return found
            raise

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_params")
        if params and name in params and name not in self.__dict__:
            _set_param_value(params[name], value)
            return
        super().__setattr__(name, value)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """The param store's unconstrained tensors of this guide, under their state-dict keys."""
        seen: set[int] = set()
        for p in self._params.values():
            leaf = self._leaf(p)
            if remove_duplicate and id(leaf) in seen:
                continue
            seen.add(id(leaf))
            yield prefix + p.state_key, leaf
        if recurse:
            for child_name, child in self.named_children():
                yield from child.named_parameters(f"{prefix}{child_name}.", True, remove_duplicate)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for p in self._params.values():
            leaf = self._leaf(p)
            destination[prefix + p.state_key] = leaf if keep_vars else leaf.detach()

    def _load_from_state_dict(
        self,
        state_dict: dict,
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list,
        unexpected_keys: list,
        error_msgs: list,
    ) -> None:
        mine = {prefix + p.state_key: p for p in self._params.values()}
        for key, p in mine.items():
            if key not in state_dict:
                missing_keys.append(key)
                continue
            leaf, value = self._leaf(p), state_dict[key]
            if value.shape != leaf.shape:
                error_msgs.append(
                    f"size mismatch for {key}: the state_dict holds shape {fmt_shape(value.shape)}"
                    f", this guide's param '{p.name}' has shape {fmt_shape(leaf.shape)}."
                )
                continue
            with torch.no_grad():
                # In place: the store, and any optimizer state for this tensor, stay valid.
                leaf.copy_(value)
        if not strict:
            return
        for key in state_dict:
            if not key.startswith(prefix) or key in mine:
                continue
            if key[len(prefix) :].split(".")[0] not in self._modules:
                unexpected_keys.append(key)
        if not self.is_set_up and any(key.startswith(prefix) for key in state_dict):
            error_msgs.append(
                f"{type(self).__name__} has no parameters yet: set it up first with "
                "guide.setup(*model_args, **model_kwargs) (or model_args=... at construction), "
                "then load the state_dict."
            )

    # -- calls ---------------------------------------------------------------------------------

    def call(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        """Call the guide and return its values as a tuple, ordered by site name.

        The same draws as ``guide(*args, **kwargs)``, but a tuple instead of a dict: a form that
        tracers such as ``torch.jit.trace_module`` accept as an output.

        >>> import engine, engine.distributions as dist
        >>> from engine.infer.autoguide import AutoDelta
        >>> engine.clear_param_store()
        >>> def model():
        ...     engine.sample("b", dist.Normal(2.0, 1.0))
        ...     engine.sample("a", dist.Normal(-1.0, 1.0))
        >>> a, b = AutoDelta(model, init_loc_fn=lambda site: site["fn"].mean).call()
        >>> a.item(), b.item()
        (-1.0, 2.0)
        """
        return values_by_site_name(self(*args, **kwargs))

    def _setup_once(self, args: tuple, kwargs: dict) -> None:
        """Set up with these arguments unless already set up (``median`` and the like, whose
        arguments only matter for the setup)."""
        if not self.is_set_up:
            self.setup(*args, **kwargs)

    def _prepare(self, args: tuple, kwargs: dict) -> None:
        """Set up on the first call; afterwards, check the sites' shapes when the arguments'
        shapes differ from any seen before."""
        if not self.is_set_up:
            self.setup(*args, **kwargs)
            return
        if torch.compiler.is_compiling():
            # Compiled code (the JIT ELBOs) runs only shapes that already ran eagerly, checked
            # there; reading the set of checked signatures here would tie every compiled variant
            # to how many there are, and compile all of them again when one more is added.
            return
        signature = shape_signature((args, kwargs))
        if signature not in self._checked_signatures:
            self._check_site_shapes(args, kwargs)
            if len(self._checked_signatures) >= _MAX_REMEMBERED_SIGNATURES:
                self._checked_signatures.clear()
            self._checked_signatures.add(signature)

    def _check_site_shapes(self, args: tuple, kwargs: dict) -> None:
        with preserved_rng_state():
            prototype = self._prototype(args, kwargs, init_to_feasible, known=self._site_shapes)
        changes = []
        for name, old_shape in self._site_shapes.items():
            site = prototype.nodes.get(name)
            if site is None or site["type"] != "sample" or site["is_observed"]:
                continue
            frames = [f for f in site["cond_indep_stack"] if f.vectorized]
            # Mini-batches may differ in size: compare the shapes at the plates' full sizes.
            shape = _full_shape(site["value"].shape, frames, len(site["fn"].event_shape))
            plates_changed = _plate_sizes(frames) != self._site_plates[name]
            subsampled = any(f.full_size not in (None, f.size) for f in frames)
            if shape != old_shape and not (plates_changed and subsampled):
                changes.append(
                    f"site '{name}' had shape {fmt_shape(old_shape)} when the guide was set up "
                    f"and has shape {fmt_shape(shape)} now "
                    f"({describe_plates(frames)}; shapes at the plates' full sizes)"
                )
            elif plates_changed:
                changes.append(
                    f"site '{name}' sat in plates of full sizes {self._site_plates[name]} when the "
                    f"guide was set up and sits in {_plate_sizes(frames)} now, so the guide's "
                    "per-element parameters no longer match"
                )
        if changes:
            cls = type(self).__name__
            raise ShapeError(
                f"{cls}: the model's latent sites changed shape since the guide was set up: "
                + "; ".join(changes)
                + f". The guide's parameters have the old shapes. Create a new guide for the new "
                f"model arguments: remove the old parameters first (pyro.clear_param_store(), or "
                f"delete the '{self._prefix}.*' entries of pyro.get_param_store()), then "
                f"guide = {cls}(model)."
            )

    @staticmethod
    def _user_plates(
        create_plates: Callable, args: tuple, kwargs: dict
    ) -> dict[str, PlateMessenger]:
        made = create_plates(*args, **kwargs)
        if isinstance(made, PlateMessenger):
            made = [made]
        plates = {}
        for plate in made:
            if not isinstance(plate, PlateMessenger):
                raise TypeError(
                    f"create_plates must return a plate or an iterable of plates, got a "
                    f"{type(plate).__name__}"
                )
            plates[plate.name] = plate
        return plates

    def _create_plates(self, args: tuple, kwargs: dict) -> dict[str, PlateMessenger]:
        """This call's plates: the user's (``create_plates``), then one per plate of the model,
        each drawing a fresh mini-batch that SVI replays into the model."""
        plates = {}
        if self.create_plates is not None:
            plates = self._user_plates(self.create_plates, args, kwargs)
        for name, frame in self._frames.items():
            if name not in plates:
                subsample_size = None if frame.full_size in (None, frame.size) else frame.size
                full_size = frame.size if frame.full_size is None else frame.full_size
                plates[name] = PlateMessenger(
                    name, full_size, subsample_size=subsample_size, dim=frame.dim
                )
        return plates

    def _plates_for_call(self, args: tuple, kwargs: dict) -> dict[str, PlateMessenger]:
        # Parts of an AutoGuideList share the list's plates: one mini-batch per call.
        master = self._master
        if master is not None and master._call_plates is not None:
            return master._call_plates
        return self._create_plates(args, kwargs)

    def _draw_each_site(
        self, args: tuple, kwargs: dict, draw: Callable[[Any], torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Call ``draw(site)`` for each of ``self._sites`` inside that site's plates (the
        per-site guides' ``forward``); returns ``{name: value}``."""
        self._prepare(args, kwargs)
        plates = self._plates_for_call(args, kwargs) if self._frames else None
        result = {}
        for site in self._sites:
            with ExitStack() as stack:
                self._enter_plates(stack, plates, site.plates)
                result[site.name] = draw(site)
        return result

    @staticmethod
    def _enter_plates(
        stack: ExitStack, plates: dict[str, PlateMessenger] | None, names: tuple[str, ...]
    ) -> None:
        for name in names:
            stack.enter_context(plates[name])

    def extra_repr(self) -> str:
        if not self.is_set_up:
            return "not set up"
        return "latent sites: " + ", ".join(self._site_shapes)
