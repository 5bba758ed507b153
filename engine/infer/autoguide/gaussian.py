"""``AutoGaussian``: a joint Gaussian over all latent sites whose precision matrix has the
model's conditional-independence structure.

The guide is a multivariate normal over the flat unconstrained vector, as in
``AutoMultivariateNormal``, but its precision is a sum of one small term per *factor* of the
model: each sample site (latent or observed) together with the latent sites its distribution
depends on (``get_dependencies``' prior dependencies). Where two latent elements never share a
factor the precision is exactly zero: elements of different plate slices stay conditionally
independent, unless a factor outside the plate (``a.sum()``) couples them, which *breaks* that
plate for it.

Parameters (per site ``s``; Pyro's names): ``locs.s`` and ``scales.s`` (the site's shape) centre
and scale it, ``u = loc + scale * z``; per factor ``f`` (one per element of the plates it keeps),
``prec_sqrts.f`` (``n_f x r_f``) and ``white_vecs.f`` (``r_f``) add ``A Aᵀ`` to the precision of
``z`` and ``A w`` to its information vector, ``n_f`` counting the factor's latent entries and
``r_f`` the rank it can contribute (the site's own entries for a latent site; for an observed
one, no more than its data). Any Gaussian posterior of a linear-Gaussian model is one of these.

Only the "dense" backend is written: it assembles the ``D x D`` precision, costing what
``AutoMultivariateNormal`` costs. Pyro's "funsor" backend (Gaussian tensor variable elimination)
is refused with an :class:`AutoGuideError`.

>>> import torch, engine, engine.distributions as dist
>>> engine.clear_param_store()
>>> def model():
...     with engine.plate("groups", 2):
...         engine.sample("theta", dist.Normal(0.0, 1.0))
>>> guide = AutoGaussian(model, model_args=())
>>> type(guide).__name__, guide.get_posterior().precision_matrix[0, 1].item()  # independent
('AutoGaussianDense', 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, NamedTuple

import torch

from engine.distributions import MultivariateNormal, constraints
from engine.errors import AutoGuideError
from engine.infer.autoguide.continuous import AutoContinuous
from engine.infer.autoguide.guide import GuideParam
from engine.infer.autoguide.initialization import InitFn, init_to_feasible
from engine.infer.autoguide.multivariate import _check_init_scale, _read
from engine.poutine.handlers import block
from engine.runtime import CondIndepStackFrame

__all__ = ["AutoGaussian", "AutoGaussianDense", "AutoGaussianFunsor"]

# Off-diagonal entries of each factor's square root start as small random numbers: at exactly
# zero, A Aᵀ would have zero gradient in them and they could never move.
_INIT_COUPLING = 0.01


def _break_plates(
    value: torch.Tensor,
    plates: Iterable[Any],
    kept: Collection[Any],
    event_dim: int | None = None,
) -> torch.Tensor:
    """``value`` with only the ``kept`` of its ``plates`` left as batch dims (at their dims, size
    1 between them); every other dim (the other plates', non-plate batch dims, the event) is
    flattened, in order, into one last dim. A plate is anything with ``.dim`` and ``.size``;
    ``event_dim`` defaults to the dims right of the deepest plate.

    >>> from engine.runtime import CondIndepStackFrame
    >>> i = CondIndepStackFrame("i", -2, 3, 0)
    >>> j = CondIndepStackFrame("j", -1, 4, 0)
    >>> _break_plates(torch.zeros(3, 4, 5), [i, j], kept=[i]).shape
    torch.Size([3, 1, 20])
    >>> _break_plates(torch.zeros(3, 4, 5), [i, j], kept=[]).shape
    torch.Size([60])
    """
    plates = list(plates)
    if event_dim is None:
        event_dim = value.dim() - max((-p.dim for p in plates), default=0)
    batch_dims = value.dim() - event_dim
    kept_plates = sorted((p for p in plates if p in kept), key=lambda p: p.dim)
    kept_axes = [batch_dims + p.dim for p in kept_plates]
    rest = [axis for axis in range(value.dim()) if axis not in kept_axes]
    depth = max((-p.dim for p in kept_plates), default=0)
    sizes = {p.dim: value.shape[batch_dims + p.dim] for p in kept_plates}
    shape = [sizes.get(dim, 1) for dim in range(-depth, 0)] + [-1]
    return value.permute(kept_axes + rest).reshape(shape)


_Reader = Callable[[GuideParam], torch.Tensor]


def _real_param(key: str, init: torch.Tensor) -> GuideParam:
    return GuideParam(key, f"{key}_unconstrained", init, constraints.real)


class _Factor(NamedTuple):
    """One factor: the site it belongs to, where its entries sit in the flat vector and its
    parameters."""

    name: str
    index: torch.Tensor  # (factor batch..., n_f): positions in the flat vector
    prec_sqrt: GuideParam
    white_vec: GuideParam


class AutoGaussian(AutoContinuous):
    """A Gaussian guide whose precision follows the model's dependencies (module docstring).

    ``AutoGaussian(model, backend="dense")`` (the default) builds an :class:`AutoGaussianDense`;
    ``backend="funsor"`` is refused. ``guide.dependencies`` holds the prior dependencies the
    structure was read from. The guide does not depend on the model's arguments.

    >>> try:
    ...     AutoGaussian(lambda: None, backend="funsor")
    ... except AutoGuideError as error:
    ...     print(str(error)[:49])
    AutoGaussian: the "funsor" backend is not availab
    """

    scale_constraint = constraints.softplus_positive

    def __new__(cls, *args: Any, **kwargs: Any) -> AutoGaussian:
        if cls is AutoGaussian:
            cls = _BACKENDS[_check_backend(kwargs.get("backend"))]
        return super().__new__(cls)

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: InitFn = init_to_feasible,
        init_scale: float = 0.1,
        backend: str | None = None,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
    ):
        backend = _check_backend(backend)
        if not isinstance(self, _BACKENDS[backend]):
            raise AutoGuideError(
                f'{type(self).__name__} is the "{_backend_of(type(self))}" backend; got '
                f'backend="{backend}". Use AutoGaussian(model, backend="{backend}").'
            )
        super().__init__(model, init_loc_fn, create_plates=create_plates)
        self._init_scale = _check_init_scale(type(self), init_scale)
        self.dependencies: dict[str, dict[str, set[str]]] = {}
        self._setup_if_given(model_args, model_kwargs)


def _check_backend(backend: str | None) -> str:
    backend = "dense" if backend is None else backend
    if backend == "funsor":
        raise AutoGuideError(
            'AutoGaussian: the "funsor" backend is not available in this engine (it needs the '
            "funsor library's Gaussian tensor variable elimination). Use the default "
            'backend="dense", which gives the same guide.'
        )
    if backend not in _BACKENDS:
        raise AutoGuideError(
            f'AutoGaussian: unknown backend {backend!r}; the available one is "dense".'
        )
    return backend


class AutoGaussianFunsor(AutoGaussian):
    """Pyro's name for :class:`AutoGaussian` with the "funsor" backend, which this engine does not
    provide: constructing one raises the backend's error (``AutoGaussian(model)`` gives the same
    guide on the dense backend).

    >>> try:
    ...     AutoGaussianFunsor(lambda: None)
    ... except AutoGuideError as error:
    ...     print(str(error)[:49])
    AutoGaussian: the "funsor" backend is not availab
    """

    def __init__(self, model: Callable, **kwargs: Any):
        _check_backend("funsor")


def _backend_of(cls: type) -> str:
    return next(name for name, backend in _BACKENDS.items() if issubclass(cls, backend))


class AutoGaussianDense(AutoGaussian):
    """:class:`AutoGaussian` with its precision assembled as a dense ``D x D`` matrix (what
    ``AutoGaussian(model)`` builds).

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     a = engine.sample("a", dist.Normal(0.0, 1.0))
    ...     b = engine.sample("b", dist.Normal(a, 1.0))
    ...     engine.sample("c", dist.Normal(0.0, 1.0))
    >>> guide = AutoGaussianDense(model, model_args=())
    >>> (guide.get_posterior().precision_matrix != 0).int().tolist()  # c shares no factor
    [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    """

    def _posterior_params(self, init_loc: torch.Tensor) -> list[GuideParam]:
        from engine.infer.inspect import get_dependencies  # inspect imports autoguide users

        prototype, args, kwargs = self._setup_run
        with block():
            self.dependencies = get_dependencies(self.model, args, kwargs)["prior_dependencies"]
        params: list[GuideParam] = []
        self._locs, self._scales = [], []
        for site in self._sites:
            loc = init_loc[site.start : site.stop].reshape(site.unconstrained_shape)
            self._locs.append(
                GuideParam(
                    f"locs.{site.name}", f"locs.{site.name}_unconstrained", loc, constraints.real
                )
            )
            self._scales.append(
                GuideParam(
                    f"scales.{site.name}",
                    f"scales.{site.name}_unconstrained",
                    torch.full_like(loc, self._init_scale),
                    self.scale_constraint,
                )
            )
        params += self._locs + self._scales
        site_frames = {
            name: tuple(f for f in node["cond_indep_stack"] if f.vectorized)
            for name, node in prototype.nodes.items()
            if node["type"] == "sample"
        }
        self._factors: list[_Factor] = []
        for name, upstream in self.dependencies.items():
            members = [site for site in self._sites if site.name in upstream]
            if not members:
                continue  # touches no latent site of this guide
            factor = self._factor(name, members, site_frames, prototype, init_loc)
            self._factors.append(factor)
            params += [factor.white_vec, factor.prec_sqrt]
        return params

    def _factor(
        self,
        name: str,
        members: list,
        site_frames: dict[str, tuple[CondIndepStackFrame, ...]],
        prototype: Any,
        init_loc: torch.Tensor,
    ) -> _Factor:
        # The factor keeps the plates of its site that one of its members sits in; the members'
        # other plates are broken (all their elements enter each element of the factor).
        member_plates = {f.name for site in members for f in site_frames[site.name]}
        kept = [f for f in site_frames.get(name, ()) if f.name in member_plates]
        kept_names = {f.name for f in kept}
        depth = max((-f.dim for f in kept), default=0)
        sizes = {f.dim: f.size for f in kept}
        batch_shape = torch.Size(sizes.get(dim, 1) for dim in range(-depth, 0))
        pieces, own = [], None
        for site in members:
            index = torch.arange(site.start, site.stop, device=init_loc.device)
            index = index.reshape(site.unconstrained_shape)
            frames = site_frames[site.name]
            broken = _break_plates(
                index,
                frames,
                [f for f in frames if f.name in kept_names],
                site.unconstrained_event_dim,
            )
            broken = broken.expand(batch_shape + broken.shape[-1:])
            if site.name == name:
                own = (sum(p.shape[-1] for p in pieces), broken.shape[-1])
            pieces.append(broken)
        index = torch.cat(pieces, -1)
        n = index.shape[-1]
        if own is not None:
            rank = own[1]
        else:
            # An observed (or summed-out) site adds no more rank than it has data per element.
            node = prototype.nodes.get(name)
            data = node["value"].numel() if node is not None else n
            rank = min(n, max(1, data // max(1, batch_shape.numel())))
        prec_sqrt = init_loc.new_empty((*batch_shape, n, rank)).normal_(0.0, _INIT_COUPLING)
        if own is not None:
            start, size = own
            prec_sqrt[..., start : start + size, :] = torch.eye(
                size, dtype=init_loc.dtype, device=init_loc.device
            )
        white_vec = init_loc.new_zeros((*batch_shape, rank))
        return _Factor(
            name,
            index,
            GuideParam(
                f"prec_sqrts.{name}",
                f"prec_sqrts.{name}_unconstrained",
                prec_sqrt,
                constraints.real,
            ),
            GuideParam(
                f"white_vecs.{name}",
                f"white_vecs.{name}_unconstrained",
                white_vec,
                constraints.real,
            ),
        )

    def _information(
        self, read: Callable[[GuideParam], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The precision and information vector of the whitened vector ``z``."""
        dim = self.latent_dim
        loc = read(self._locs[0])
        precision = loc.new_zeros(dim * dim)
        info = loc.new_zeros(dim)
        for factor in self._factors:
            root = read(factor.prec_sqrt)
            block_ = root @ root.mT
            flat = factor.index.unsqueeze(-1) * dim + factor.index.unsqueeze(-2)
            precision = precision.index_add(0, flat.reshape(-1), block_.reshape(-1))
            vector = (root @ read(factor.white_vec).unsqueeze(-1)).squeeze(-1)
            info = info.index_add(0, factor.index.reshape(-1), vector.reshape(-1))
        return precision.reshape(dim, dim), info

    def _moments(
        self, read: Callable[[GuideParam], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and precision of the flat unconstrained vector ``u = loc + scale * z``."""
        precision, info = self._information(read)
        mean_z = torch.cholesky_solve(info.unsqueeze(-1), torch.linalg.cholesky(precision))
        loc = torch.cat([read(p).reshape(-1) for p in self._locs])
        scale = torch.cat([read(p).reshape(-1) for p in self._scales])
        mean = loc + scale * mean_z.squeeze(-1)
        return mean, precision / (scale.unsqueeze(-1) * scale)

    def get_posterior(self, *args: Any, **kwargs: Any) -> torch.distributions.Distribution:
        """The multivariate normal over the flat unconstrained vector, given by its precision."""
        mean, precision = self._moments(_read)
        return MultivariateNormal(mean, precision_matrix=precision, validate_args=False)

    def _loc_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean, precision = self._moments(self._value)
        return mean, torch.linalg.inv(precision).diagonal().sqrt()


_BACKENDS: dict[str, type] = {"dense": AutoGaussianDense}
