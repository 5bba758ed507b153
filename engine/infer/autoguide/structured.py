"""``AutoStructured``: a guide built site by site, each site a conditional given the ones before.

Each latent site's unconstrained value is its ``loc`` plus a *perturbation*. The perturbation is
the site's own noise (nothing for ``"delta"``, ``scale * eps`` for ``"normal"``, ``scale *
(scale_tril @ eps)`` for ``"mvn"``, with ``eps`` standard normal drawn at the auxiliary site
``{name}_aux``, or whatever a user's callable returns) plus, for each upstream site it depends on,
a map of that site's perturbation (``"linear"``: a weight matrix ``deps.{site}.{upstream}.weight``
starting at zero; or a user's callable). Each site is flattened whole, plates included, so a
dependency couples every element of one site with every element of the other.

The map from the noises to the values is triangular (sites in dependency order), so the guide's
density is the noises' density divided by the diagonal blocks' determinants (the scales) and by
each support's Jacobian: each site is sampled as a :class:`SiteDelta` carrying that correction.

With ``dependencies="linear"`` the structure is read off the model: each site depends on the
earlier sites it is coupled with in the posterior (``get_dependencies``).

>>> import torch, engine, engine.distributions as dist
>>> engine.clear_param_store()
>>> def model():
...     tau = engine.sample("tau", dist.LogNormal(0.0, 1.0))
...     with engine.plate("groups", 3):
...         engine.sample("theta", dist.Normal(0.0, tau))
>>> guide = AutoStructured(model, conditionals={"tau": "normal", "theta": "mvn"}, model_args=())
>>> sorted(name for name, _ in guide.named_parameters())  # doctest: +NORMALIZE_WHITESPACE
['deps.theta.tau.weight', 'locs.tau_unconstrained', 'locs.theta_unconstrained',
 'scale_trils.theta_unconstrained', 'scales.tau_unconstrained', 'scales.theta_unconstrained']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any

import torch

from engine.distributions import Normal, constraints
from engine.distributions.util import sum_rightmost
from engine.errors import AutoGuideError
from engine.infer.autoguide.continuous import (
    AutoContinuous,
    _constrain_site,
    _FlatSite,
    _unflatten_site,
)
from engine.infer.autoguide.guide import GuideParam
from engine.infer.autoguide.initialization import InitFn, init_to_feasible
from engine.infer.autoguide.multivariate import _check_init_scale, _read
from engine.infer.autoguide.site_distributions import SiteDelta
from engine.poutine.handlers import block
from engine.poutine.infer_config_messenger import InferConfigMessenger
from engine.primitives import sample

__all__ = ["AutoStructured"]

Conditional = str | Callable[[], torch.Tensor]
Dependency = str | Callable[[torch.Tensor], torch.Tensor]

_CONDITIONALS = ("delta", "normal", "mvn")


def _check_conditional(where: str, kind: Any) -> Conditional:
    if isinstance(kind, str) and kind in _CONDITIONALS:
        return kind
    if not isinstance(kind, str) and callable(kind):
        return kind
    raise AutoGuideError(
        f"AutoStructured: {where} must be one of 'delta', 'normal', 'mvn' or a callable that "
        f"returns a noise draw, got {kind!r}."
    )


def _check_dependency(where: str, kind: Any) -> Dependency:
    if kind == "linear" or (not isinstance(kind, str) and callable(kind)):
        return kind
    raise AutoGuideError(
        f"AutoStructured: {where} must be 'linear' or a callable mapping the upstream site's "
        f"flattened perturbation to the downstream site's, got {kind!r}."
    )


def _topological_order(
    names: list[str], dependencies: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """``names`` reordered so that each site comes after the sites it depends on, otherwise in
    model order; a cycle is refused.

    >>> _topological_order(["x", "y", "z"], {"x": {"y": "linear"}})
    ['y', 'x', 'z']
    """
    placed: list[str] = []
    left = list(names)
    while left:
        ready = next((n for n in left if all(u in placed for u in dependencies.get(n, {}))), None)
        if ready is None:
            raise AutoGuideError(
                f"AutoStructured: the dependencies among sites {left} form a cycle; each site "
                "may only depend on sites that do not depend on it, directly or not."
            )
        placed.append(ready)
        left.remove(ready)
    return placed


class AutoStructured(AutoContinuous):
    """A structured guide: per-site conditionals (``"delta"``, ``"normal"``, ``"mvn"`` or a
    callable) and dependencies of a site's perturbation on earlier sites' (``"linear"`` or a
    callable), all in unconstrained space; see the module docstring.

    ``conditionals`` is one kind for every site or a dict naming each site's kind;
    ``dependencies`` is ``"linear"`` (structure read off the model) or a dict
    ``{downstream: {upstream: kind}}`` (no cycles, no self-loops; ``{}`` for none). Callables
    that are ``torch.nn.Module`` have their parameters in the guide's. Once trained, the guide
    can precondition the model for MCMC through ``StructuredReparam``.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("a", dist.Normal(0.0, 1.0))
    >>> try:
    ...     AutoStructured(model, conditionals={"b": "normal"}, model_args=())
    ... except AutoGuideError as error:
    ...     print(str(error)[:57])
    AutoStructured: conditionals names site 'b', which is not
    """

    scale_constraint = constraints.softplus_positive
    scale_tril_constraint = constraints.unit_lower_cholesky

    def __init__(
        self,
        model: Callable,
        *,
        conditionals: Conditional | Mapping[str, Conditional] = "mvn",
        dependencies: str | Mapping[str, Mapping[str, Dependency]] = "linear",
        init_loc_fn: InitFn = init_to_feasible,
        init_scale: float = 0.1,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
    ):
        super().__init__(model, init_loc_fn, create_plates=create_plates)
        if isinstance(conditionals, Mapping):
            conditionals = {
                name: _check_conditional(f"conditionals['{name}']", kind)
                for name, kind in conditionals.items()
            }
        else:
            conditionals = _check_conditional("conditionals", conditionals)
        if isinstance(dependencies, Mapping):
            checked: dict[str, dict[str, Dependency]] = {}
            for down, ups in dependencies.items():
                if not isinstance(ups, Mapping):
                    raise AutoGuideError(
                        f"AutoStructured: dependencies['{down}'] must be a dict mapping upstream "
                        f"site names to 'linear' or a callable, got {ups!r}."
                    )
                if down in ups:
                    raise AutoGuideError(
                        f"AutoStructured: site '{down}' is listed as depending on itself; its "
                        "own conditional already couples its elements (use 'mvn')."
                    )
                checked[down] = {
                    up: _check_dependency(f"dependencies['{down}']['{up}']", kind)
                    for up, kind in ups.items()
                }
            dependencies = checked
        elif dependencies != "linear":
            raise AutoGuideError(
                "AutoStructured: dependencies must be 'linear' (read the structure off the "
                f"model) or a dict {{downstream: {{upstream: kind}}}}, got {dependencies!r}."
            )
        self._conditionals_arg = conditionals
        self._dependencies_arg = dependencies
        # The user's callables that are modules: their parameters belong to the guide.
        self.custom = torch.nn.ModuleList(
            [fn for fn in _callables(conditionals, dependencies) if isinstance(fn, torch.nn.Module)]
        )
        self._init_scale = _check_init_scale(type(self), init_scale)
        self._setup_if_given(model_args, model_kwargs)

    # -- setup ---------------------------------------------------------------------------------

    def _resolve_structure(
        self, names: list[str]
    ) -> tuple[dict[str, Conditional], dict[str, dict[str, Dependency]]]:
        conditionals = self._conditionals_arg
        if isinstance(conditionals, dict):
            for name in conditionals:
                if name not in names:
                    raise AutoGuideError(
                        f"AutoStructured: conditionals names site '{name}', which is not a "
                        f"latent site of the model (its latent sites: {names})."
                    )
            for name in names:
                if name not in conditionals:
                    raise AutoGuideError(
                        f"AutoStructured: conditionals gives no kind for latent site '{name}'. "
                        "Name every latent site, or pass one kind for all (e.g. "
                        "conditionals='normal')."
                    )
            resolved = dict(conditionals)
        else:
            resolved = {name: conditionals for name in names}
        if isinstance(self._dependencies_arg, dict):
            deps = self._dependencies_arg
            for down, ups in deps.items():
                for name in (down, *ups):
                    if name not in names:
                        raise AutoGuideError(
                            f"AutoStructured: dependencies names site '{name}', which is not a "
                            f"latent site of the model (its latent sites: {names})."
                        )
        else:
            from engine.infer.inspect import get_dependencies  # inspect imports autoguide users

            _, args, kwargs = self._setup_run
            with block():
                posterior = get_dependencies(self.model, args, kwargs)["posterior_dependencies"]
            deps = {}
            for up in names:
                for down in posterior.get(up, {}):
                    if down != up and down in names:
                        deps.setdefault(down, {})[up] = "linear"
        return resolved, {name: dict(deps.get(name, {})) for name in names}

    def _posterior_params(self, init_loc: torch.Tensor) -> list[GuideParam]:
        by_name = {site.name: site for site in self._sites}
        self._conditionals, self._dependencies = self._resolve_structure(list(by_name))
        self._order = tuple(
            by_name[name] for name in _topological_order(list(by_name), self._dependencies)
        )
        params: list[GuideParam] = []
        self._locs, self._scales, self._scale_trils, self._weights = {}, {}, {}, {}
        for site in self._order:
            name, size = site.name, site.stop - site.start
            loc = init_loc[site.start : site.stop]
            self._locs[name] = GuideParam(
                f"locs.{name}", f"locs.{name}_unconstrained", loc, constraints.real
            )
            params.append(self._locs[name])
            kind = self._conditionals[name]
            if kind in ("normal", "mvn"):
                self._scales[name] = GuideParam(
                    f"scales.{name}",
                    f"scales.{name}_unconstrained",
                    torch.full_like(loc, self._init_scale),
                    self.scale_constraint,
                )
                params.append(self._scales[name])
            if kind == "mvn":
                eye = torch.eye(size, dtype=loc.dtype, device=loc.device)
                self._scale_trils[name] = GuideParam(
                    f"scale_trils.{name}",
                    f"scale_trils.{name}_unconstrained",
                    eye,
                    self.scale_tril_constraint,
                )
                params.append(self._scale_trils[name])
            for up, dep in self._dependencies[name].items():
                if dep == "linear":
                    up_size = by_name[up].stop - by_name[up].start
                    key = f"deps.{name}.{up}.weight"
                    self._weights[name, up] = GuideParam(
                        key, key, loc.new_zeros(size, up_size), constraints.real
                    )
                    params.append(self._weights[name, up])
        return params

    # -- the map from noises to values ---------------------------------------------------------

    def _own_perturbation(self, site: _FlatSite, noise: torch.Tensor | None) -> torch.Tensor | None:
        """The site's own part of its perturbation (flat), from its noise ``eps``."""
        kind = self._conditionals[site.name]
        if kind == "delta":
            return None
        if kind == "normal":
            return _read(self._scales[site.name]) * noise
        if kind == "mvn":
            tril = _read(self._scale_trils[site.name])
            return _read(self._scales[site.name]) * (noise @ tril.mT)
        return self._call_conditional(site, kind)

    def _call_conditional(self, site: _FlatSite, fn: Callable) -> torch.Tensor:
        # The callable's own sample sites have no counterpart in the model: auxiliary ones.
        with InferConfigMessenger(_auxiliary_samples):
            value = torch.as_tensor(fn())
        size = site.stop - site.start
        if value.dim() == 0:
            return value.expand(size)
        if value.shape[-1] != size:
            raise AutoGuideError(
                f"AutoStructured: the conditional of site '{site.name}' returned shape "
                f"{tuple(value.shape)}, but the site has {size} unconstrained entries: return a "
                f"tensor whose last dim is {size} (or a scalar)."
            )
        return value

    def _dependent_perturbation(
        self, site: _FlatSite, own: torch.Tensor | None, perturbations: Mapping[str, Any]
    ) -> torch.Tensor | None:
        """``own`` plus what the upstream sites' perturbations pass on to ``site``."""
        total = own
        for up, dep in self._dependencies[site.name].items():
            upstream = perturbations.get(up)
            if upstream is None:
                continue  # a point-mass upstream site, or one not drawn: no perturbation
            if dep == "linear":
                term = upstream @ _read(self._weights[site.name, up]).mT
            else:
                term = dep(upstream)
            total = term if total is None else total + term
        return total

    def _log_scale(self, site: _FlatSite) -> torch.Tensor | float:
        """log|det| of the site's own noise map, one entry per batch element of the site."""
        if site.name not in self._scales:
            return 0.0
        log_scale = _read(self._scales[site.name]).log().reshape(site.unconstrained_shape)
        return sum_rightmost(log_scale, site.unconstrained_event_dim)

    def _noise_distribution(self, site: _FlatSite) -> torch.distributions.Distribution:
        loc = _read(self._locs[site.name])
        zeros = torch.zeros_like(loc)
        return Normal(zeros, torch.ones_like(zeros), validate_args=False).to_event(1)

    def has_noise(self, name: str) -> bool:
        """Whether site ``name`` draws a standard-normal noise ``{name}_aux`` (``"normal"`` and
        ``"mvn"`` conditionals)."""
        return self._conditionals[name] in ("normal", "mvn")

    # -- calls ---------------------------------------------------------------------------------

    def get_posterior(self, *args: Any, **kwargs: Any) -> torch.distributions.Distribution:
        raise NotImplementedError(
            "AutoStructured draws one noise per site ({name}_aux) rather than one flat vector; "
            "call the guide, or use AutoMultivariateNormal/AutoGaussian for a single "
            "distribution over all sites."
        )

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Draw each site's noise, then every site in dependency order; return
        ``{name: constrained value}``."""
        self._prepare(args, kwargs)
        plates = self._plates_for_call(args, kwargs) if self._frames else None
        noises = {
            site.name: sample(
                f"{site.name}_aux", self._noise_distribution(site), infer={"is_auxiliary": True}
            )
            for site in self._order
            if self.has_noise(site.name)
        }
        perturbations: dict[str, torch.Tensor | None] = {}
        for site in self._order:
            own = self._own_perturbation(site, noises.get(site.name))
            perturbations[site.name] = self._dependent_perturbation(site, own, perturbations)
        result = {}
        for site in self._order:
            flat = _read(self._locs[site.name])
            if perturbations[site.name] is not None:
                flat = flat + perturbations[site.name]
            value, log_density = _constrain_site(site, _unflatten_site(site, flat))
            log_density = log_density - self._log_scale(site)
            with ExitStack() as stack:
                if site.plates:
                    self._enter_plates(stack, plates, site.plates)
                result[site.name] = sample(
                    site.name, SiteDelta(value, site.support, log_density, site.event_dim)
                )
        return {site.name: result[site.name] for site in self._sites}

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Every site at its ``loc`` (all perturbations zero), mapped onto its support."""
        self._setup_once(args, kwargs)
        return self._constrain_all(self._centre())

    def _centre(self) -> torch.Tensor:
        return torch.cat([self._value(self._locs[site.name]) for site in self._sites])

    def _loc_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        # The values are loc + M @ noise for a block lower-triangular M (sites in dependency
        # order): each site's rows are its own noise map plus its dependencies' rows mapped.
        rows: dict[str, torch.Tensor | None] = {}
        loc = self._centre()
        width = loc.numel()
        for site in self._order:
            kind = self._conditionals[site.name]
            size = site.stop - site.start
            if callable(kind) or any(
                callable(dep) for dep in self._dependencies[site.name].values()
            ):
                raise NotImplementedError(
                    f"AutoStructured: site '{site.name}' uses a callable conditional or "
                    "dependency, whose spread is unknown; quantiles need 'delta'/'normal'/'mvn' "
                    "conditionals and 'linear' dependencies."
                )
            row = None
            if kind != "delta":
                block_ = torch.diag(self._value(self._scales[site.name]))
                if kind == "mvn":
                    block_ = block_ @ self._value(self._scale_trils[site.name])
                row = loc.new_zeros(size, width)
                row[:, site.start : site.stop] = block_
            for up in self._dependencies[site.name]:
                if rows[up] is None:
                    continue
                term = self._value(self._weights[site.name, up]) @ rows[up]
                row = term if row is None else row + term
            rows[site.name] = row
        scale = torch.cat(
            [
                loc.new_zeros(site.stop - site.start)
                if rows[site.name] is None
                else rows[site.name].pow(2).sum(-1).sqrt()
                for site in self._sites
            ]
        )
        return loc, scale


def _auxiliary_samples(msg: dict) -> dict:
    return {"is_auxiliary": True} if msg["type"] == "sample" else {}


def _callables(conditionals: Any, dependencies: Any) -> list[Callable]:
    found = []
    if isinstance(conditionals, dict):
        found += [kind for kind in conditionals.values() if callable(kind)]
    elif callable(conditionals):
        found.append(conditionals)
    if isinstance(dependencies, dict):
        for ups in dependencies.values():
            found += [kind for kind in ups.values() if callable(kind)]
    return found
