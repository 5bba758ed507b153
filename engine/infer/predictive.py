"""``Predictive``: draws from a model's prior predictive, or its posterior predictive given a guide
or posterior samples, as a dict of tensors with a leading sample dim.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def model(n):
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
...     with pyro.plate("data", n):
...         return pyro.sample("obs", dist.Normal(z, 1.0))
>>> draws = Predictive(model, num_samples=100)(3)
>>> draws["z"].shape, draws["obs"].shape
(torch.Size([100, 1]), torch.Size([100, 3]))
>>> given_z = {"z": torch.zeros(50)}
>>> Predictive(model, given_z, parallel=True)(3)["obs"].shape
torch.Size([50, 3])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

import torch

from engine.errors import ShapeError, SiteNameError, did_you_mean, fmt_shape
from engine.infer.autoguide.initialization import InitMessenger, init_to_sample
from engine.infer.util import max_plate_nesting_of, values_by_site_name, vectorize
from engine.poutine.handlers import block, condition, mask, trace
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, is_subsample_site

_PLATE_NAME = "_num_predictive_samples"
_RETURN = "_RETURN"
# Exceptions a vectorised run raises when the model mixes the sample dim with its own dims.
_SHAPE_FAILURES = (RuntimeError, ValueError, IndexError)


class Predictive(torch.nn.Module):
    """Predictive draws from ``model``, as ``{site: tensor}`` with a leading ``num_samples`` dim.

    - Prior predictive: neither ``guide`` nor ``posterior_samples``; ``num_samples`` is required.
    - Guide posterior predictive: each draw runs ``guide`` and then the model conditioned on the
      guide's values.
    - Sample posterior predictive: ``posterior_samples`` maps site names to tensors whose leading
      dim indexes draws (``mcmc.get_samples()``); each draw runs the model conditioned on one row.

    Returned sites, as in Pyro: ``return_sites=()`` gives every latent and observed sample site
    (deterministic sites too) except those fixed by ``posterior_samples``; with a guide, or with
    ``return_sites=None``, every site; a non-empty list gives those sites, and ``"_RETURN"`` (the
    model's return value) only when asked for. Sites keep the model's batch layout: each value has
    shape ``(num_samples,) + (1,) * k + site_shape``, where ``k`` pads a site outside some plates
    to the model's plate nesting. Sites observed with data return that data: call the model with
    ``obs=None`` to predict them. A ``deterministic`` site is never fixed by
    ``posterior_samples``: it is recomputed from the other sites and returned
    (``mcmc.get_samples()`` holds deterministic sites, where Pyro's does not).

    ``parallel=True`` draws all samples in one run of the model under an outer plate (the model
    must declare every batch dim with a plate); ``batch_size`` then caps the draws per run.

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     pyro.sample("x", dist.Normal(0.0, 1.0))
    >>> Predictive(model, num_samples=4)()["x"].shape
    torch.Size([4])
    """

    def __init__(
        self,
        model: Callable,
        posterior_samples: dict[str, torch.Tensor] | None = None,
        guide: Callable | None = None,
        num_samples: int | None = None,
        return_sites: Collection[str] | None = (),
        parallel: bool = False,
        batch_size: int | None = None,
    ):
        super().__init__()
        if callable(posterior_samples):
            raise TypeError(
                "Predictive's second argument is posterior_samples (a dict of tensors), as in "
                "Pyro; pass a guide by keyword: Predictive(model, guide=guide, num_samples=...)."
            )
        samples = {name: torch.as_tensor(v) for name, v in (posterior_samples or {}).items()}
        if guide is not None and samples:
            raise ValueError(
                "Predictive takes a guide or posterior_samples, not both: the guide is itself "
                "the source of posterior draws."
            )
        if isinstance(return_sites, str):
            raise TypeError(
                f"return_sites must be a list of site names, got the string {return_sites!r}; "
                f"write return_sites=[{return_sites!r}]."
            )
        if batch_size is not None and (not parallel or batch_size < 1):
            raise ValueError(
                f"batch_size={batch_size!r} caps the draws per vectorised run: it needs "
                "parallel=True and a positive size."
            )
        self.model = model
        self.guide = guide
        self.posterior_samples = samples
        self.num_samples = _number_of_draws(samples, num_samples)
        self.return_sites = return_sites
        self.parallel = parallel
        self.batch_size = batch_size

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Draw ``num_samples`` predictions; the model gets ``*args, **kwargs`` (``__call__``)."""
        samples, return_sites = self._posterior_draws(args, kwargs)
        return _predict(
            self.model,
            samples,
            self.num_samples,
            return_sites,
            self._runs,
            args,
            kwargs,
            check_keys=self.guide is None,
        )

    def call(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """The predictions of ``self(*args, **kwargs)`` as a tuple ordered by site name.

        >>> import torch, engine, engine.distributions as dist
        >>> def model():
        ...     engine.sample("b", dist.Normal(2.0, 1.0))
        ...     engine.sample("a", dist.Normal(-1.0, 1.0))
        >>> a, b = Predictive(model, num_samples=4).call()
        >>> a.shape, b.shape
        (torch.Size([4]), torch.Size([4]))
        """
        return values_by_site_name(self(*args, **kwargs))

    def get_samples(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Deprecated alias of calling the object (as in Pyro)."""
        warnings.warn(
            "Predictive.get_samples is deprecated; call the Predictive object instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.forward(*args, **kwargs)

    def get_vectorized_trace(self, *args: Any, **kwargs: Any) -> Trace:
        """One trace of the model holding all ``num_samples`` draws along its leftmost dim.

        The model must be vectorisable (every batch dim declared by a plate).
        """
        samples, _ = self._posterior_draws(args, kwargs)
        with torch.no_grad():
            layout = _Layout(self.model, samples, self.num_samples, args, kwargs)
            if self.guide is None:
                layout.check_sample_keys(samples)
            draws = layout.shaped_draws(layout.conditioning(samples), vectorized=True)
            return _vectorized_trace(self.model, draws, self.num_samples, layout, args, kwargs)

    def _posterior_draws(
        self, args: tuple, kwargs: dict
    ) -> tuple[dict[str, torch.Tensor], Collection[str] | None]:
        """The draws that condition the model, and the sites to return (Pyro's rule)."""
        if self.guide is None:
            return self.posterior_samples, self.return_sites
        # Every guide site conditions the model; with a guide the model's latents are returned
        # too, unless the caller picked sites.
        guide_draws = _predict(self.guide, {}, self.num_samples, None, self._runs, args, kwargs)
        return guide_draws, self.return_sites or None

    @property
    def _runs(self) -> _Runs:
        return _Runs(self.parallel, self.batch_size)

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}, parallel={self.parallel}"


def _number_of_draws(samples: dict[str, torch.Tensor], num_samples: int | None) -> int:
    sizes = {}
    for name, value in samples.items():
        if value.dim() == 0:
            raise ShapeError(
                f"posterior_samples['{name}'] is a scalar; each entry needs a leading dim that "
                "indexes the posterior draws (shape (num_draws,) + site shape)."
            )
        sizes[name] = value.shape[0]
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"'{name}' has {size}" for name, size in sizes.items())
        raise ShapeError(
            f"posterior_samples disagree on the number of draws (their leading dim): {listed}. "
            "Every site needs one value per draw, from the same run (e.g. mcmc.get_samples())."
        )
    if sizes:
        drawn = next(iter(sizes.values()))
        if num_samples is not None and num_samples != drawn:
            raise ValueError(
                f"num_samples={num_samples}, but posterior_samples hold {drawn} draws (the "
                f"leading dim of '{next(iter(sizes))}'). Predictive makes one prediction per "
                "posterior draw: leave num_samples out, or pass only the draws you want."
            )
        num_samples = drawn
    if num_samples is None:
        raise ValueError(
            "Predictive needs num_samples when it has no posterior_samples to count draws from."
        )
    if num_samples < 1:
        raise ValueError(f"Predictive needs at least one draw, got {num_samples}")
    return num_samples


def _is_factor(site: Message) -> bool:
    # ``factor`` sites carry a log-density term and an empty value: no variable to predict.
    return site["is_observed"] and site["infer"].get("is_auxiliary", False)


class _Layout:
    """What one probe run of the model says about its sites: the plate nesting, each site's shape
    and batch rank, and which sites to return."""

    def __init__(
        self,
        model: Callable,
        samples: dict[str, torch.Tensor],
        num_samples: int,
        args: tuple,
        kwargs: dict,
        return_sites: Collection[str] | None = (),
    ):
        with block(), InitMessenger(init_to_sample):
            # A run from the prior, as in Pyro: the conditioning draws may still need reshaping,
            # which is what this run is for. The prior draws go through the init strategy so
            # that a reparameterized site whose pieces cannot be drawn (SplitReparam's flat
            # pieces) is drawn whole and split.
            probe = trace(model).get_trace(*args, **kwargs)
        self.num_samples = num_samples
        self.nesting = max_plate_nesting_of(probe)
        self.sites = {
            name: site
            for name, site in probe.nodes.items()
            if site["type"] == "sample" and not is_subsample_site(site)
        }
        self.deterministic = {
            name for name, site in self.sites.items() if site["infer"].get("_deterministic")
        }
        self.return_value = probe.nodes[_RETURN]["value"]
        self.returned = self._returned_sites(return_sites, samples)

    def _returned_sites(
        self, return_sites: Collection[str] | None, samples: dict[str, torch.Tensor]
    ) -> list[str]:
        if return_sites:
            unknown = sorted(set(return_sites) - set(self.sites) - {_RETURN})
            if unknown:
                hints = "".join(did_you_mean(name, self.sites) for name in unknown)
                raise ValueError(
                    f"return_sites names {unknown}, which the model does not sample.{hints} Its "
                    f"sites are {sorted(self.sites)} (and '_RETURN' for its return value)."
                )
            chosen = [name for name in self.sites if name in return_sites]
            return [*chosen, _RETURN] if _RETURN in return_sites else chosen
        return [
            name
            for name, site in self.sites.items()
            if not _is_factor(site)
            and (return_sites is None or name not in samples or name in self.deterministic)
        ]

    def conditioning(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The draws that condition the model: all but its deterministic sites' values."""
        return {name: value for name, value in samples.items() if name not in self.deterministic}

    def check_sample_keys(self, samples: dict[str, torch.Tensor]) -> None:
        """Refuse a key of ``posterior_samples`` that is a near miss of a site it leaves out
        (a misspelling: that site would silently be drawn from its prior); warn about any other
        key that names no site (Pyro ignores such keys, and they can be legitimate, e.g. a site
        on a branch this run did not take). Keys starting with '_' (``_RETURN``, an autoguide's
        internal sites) are left alone."""
        unknown = [key for key in samples if key not in self.sites and not key.startswith("_")]
        if not unknown:
            return
        left_out = [name for name in self.sites if name not in samples]
        for key in unknown:
            hint = did_you_mean(key, left_out)
            if hint:
                raise SiteNameError(
                    f"posterior_samples[{key!r}] names no site of the model.{hint} As given, "
                    f"{key!r} would be ignored and the site it was meant for drawn from its "
                    f"prior. Fix: rename the key. The model's sample sites are "
                    f"{sorted(self.sites)}."
                )
        warnings.warn(
            f"posterior_samples has {unknown}, which name(s) no site of the model (its sample "
            f"sites are {sorted(self.sites)}); Predictive ignores them.",
            UserWarning,
            stacklevel=4,
        )

    def site_shape(self, name: str, vectorized: bool) -> torch.Size:
        """A site's value shape per draw: padded to the plate nesting when vectorised."""
        if name == _RETURN:
            return self.return_value.shape  # returned as the model shapes it, unpadded
        site = self.sites[name]
        value_shape = torch.as_tensor(site["value"]).shape
        if not vectorized:
            return value_shape
        batch_rank = len(getattr(site["fn"], "batch_shape", ()))
        return torch.Size((1,) * max(self.nesting - batch_rank, 0) + value_shape)

    def output_shape(self, name: str) -> torch.Size | None:
        """The shape of a returned site, ``(num_samples,)`` + its padded shape (Pyro's layout);
        ``None`` for a return value that is not a tensor."""
        if name == _RETURN and not isinstance(self.return_value, torch.Tensor):
            return None
        return torch.Size((self.num_samples, *self.site_shape(name, vectorized=True)))

    def shaped_draws(
        self, samples: dict[str, torch.Tensor], vectorized: bool
    ) -> dict[str, torch.Tensor]:
        """Reshape each draw to the model's shape for its site (the sample dim stays leftmost).

        Draws come flat (MCMC: ``(n,) + shape``) or padded (a guide's predictive), and an
        observed value must match its site exactly.
        """
        shaped = {}
        for name, value in samples.items():
            if name not in self.sites:
                shaped[name] = value  # not a site of this model run: conditioning ignores it
                continue
            shape = self.site_shape(name, vectorized)
            if math.prod(value.shape[1:]) != math.prod(shape):
                raise ShapeError(
                    f"Posterior draws of site '{name}' have shape {fmt_shape(value.shape[1:])} "
                    f"each, but the model's site '{name}' has shape "
                    f"{fmt_shape(self.site_shape(name, vectorized=False))}. Pass one value per "
                    "draw along the leading dim only (samples grouped by chain need flattening: "
                    "get_samples(group_by_chain=False))."
                )
            shaped[name] = value.reshape(value.shape[0], *shape)
        return shaped


class _Runs(NamedTuple):
    """How to run the draws: one at a time, or vectorised in chunks of ``batch_size`` (all)."""

    parallel: bool
    batch_size: int | None


def _predict(
    fn: Callable,
    samples: dict[str, torch.Tensor],
    num_samples: int,
    return_sites: Collection[str] | None,
    runs: _Runs,
    args: tuple,
    kwargs: dict,
    check_keys: bool = False,
) -> dict[str, Any]:
    """Draw the returned sites of ``fn``, conditioned on ``samples`` (whose keys are checked
    against ``fn``'s sites when ``check_keys``: the user's ``posterior_samples``).

    Every run is under ``mask(False)``, as in Pyro: no density is needed for a prediction, so
    a model can skip costly ``factor`` terms when ``poutine.get_mask() is False``."""
    fn = mask(fn, mask=False)
    with torch.no_grad():
        layout = _Layout(fn, samples, num_samples, args, kwargs, return_sites)
        if check_keys:
            layout.check_sample_keys(samples)
        samples = layout.conditioning(samples)
        if not runs.parallel:
            return _predict_sequential(fn, samples, layout, args, kwargs)
        return _predict_vectorized(fn, samples, layout, runs.batch_size, args, kwargs)


def _predict_sequential(
    fn: Callable, samples: dict[str, torch.Tensor], layout: _Layout, args: tuple, kwargs: dict
) -> dict[str, Any]:
    draws = layout.shaped_draws(samples, vectorized=False)
    collected: dict[str, list] = {name: [] for name in layout.returned}
    for i in range(layout.num_samples):
        with block():
            tr = trace(condition(fn, {k: v[i] for k, v in draws.items()})).get_trace(
                *args, **kwargs
            )
        for name, values in collected.items():
            values.append(_site_value(tr, name, i, layout))
    predictions = {}
    for name, values in collected.items():
        shape = layout.output_shape(name)
        predictions[name] = values if shape is None else torch.stack(values).reshape(shape)
    return predictions


def _site_value(tr: Trace, name: str, draw: int, layout: _Layout) -> Any:
    if name not in tr.nodes:
        raise ValueError(
            f"Site '{name}' is missing from draw {draw} of the model: Predictive stacks every "
            "draw, so each returned site must appear in every run. Leave it out of return_sites."
        )
    value = tr.nodes[name]["value"]
    if name == _RETURN and layout.output_shape(name) is None:
        return value
    expected = layout.output_shape(name)[1:]
    value = torch.as_tensor(value)
    if value.numel() != math.prod(expected):
        raise ShapeError(
            f"Site '{name}' has shape {fmt_shape(value.shape)} in draw {draw} but "
            f"{fmt_shape(expected)} in the first run: Predictive stacks the draws, so a site "
            "needs one shape in every run."
        )
    return value


def _predict_vectorized(
    fn: Callable,
    samples: dict[str, torch.Tensor],
    layout: _Layout,
    batch_size: int | None,
    args: tuple,
    kwargs: dict,
) -> dict[str, Any]:
    draws = layout.shaped_draws(samples, vectorized=True)
    total = layout.num_samples
    step = batch_size or total
    chunks: dict[str, list] = {name: [] for name in layout.returned}
    for start in range(0, total, step):
        size = min(step, total - start)
        chunk = {k: v[start : start + size] for k, v in draws.items()}
        tr = _vectorized_trace(fn, chunk, size, layout, args, kwargs)
        for name, values in chunks.items():
            values.append(_fit_vectorized(tr, name, size, layout))
    predictions = {}
    for name, values in chunks.items():
        if layout.output_shape(name) is None:  # a non-tensor return value, as the model gave it
            predictions[name] = values[0] if len(values) == 1 else values
        else:
            predictions[name] = torch.cat(values)
    return predictions


def _vectorized_trace(
    fn: Callable,
    draws: dict[str, torch.Tensor],
    size: int,
    layout: _Layout,
    args: tuple,
    kwargs: dict,
) -> Trace:
    batched = condition(vectorize(fn, size, layout.nesting, name=_PLATE_NAME), draws)
    handler = trace(batched)
    try:
        with block():
            return handler.get_trace(*args, **kwargs)
    except _SHAPE_FAILURES as error:
        # The probe ran the same model unvectorised, so the batch of draws is what broke it.
        raise _not_vectorisable(error, handler.trace, size) from error


def _not_vectorisable(error: BaseException, partial: Trace, size: int) -> ShapeError:
    recorded = [
        name
        for name, site in partial.nodes.items()
        if site["type"] == "sample" and not is_subsample_site(site)
    ]
    where = (
        f"after site '{recorded[-1]}' was recorded"
        if recorded
        else "before any sample site was recorded"
    )
    reason = getattr(error, "message", None) or str(error)
    return ShapeError(
        f"Predictive(parallel=True) could not run the model on {size} draws at once: it failed "
        f"{where} with {type(error).__name__}: {reason}\n{_VECTORISE_FIX}"
    )


_VECTORISE_FIX = (
    "The model runs one draw at a time, so some tensor in it mixes the draws' dim with its own "
    "dims: a batch dim that no plate declares, or indexing and reshaping from the left. Fix: "
    "use parallel=False, or declare every batch dim with `pyro.plate` and index from the right "
    "(x[..., 0] rather than x[0])."
)


def _fit_vectorized(tr: Trace, name: str, size: int, layout: _Layout) -> Any:
    value = tr.nodes[name]["value"]
    shape = layout.output_shape(name)
    if shape is None:
        return value
    shape = torch.Size((size, *shape[1:]))
    value = torch.as_tensor(value)
    if value.shape == shape:
        return value
    # Size-1 dims may sit elsewhere (a deterministic site's value has no batch part): reshaping is
    # safe when only they differ. Data that does not vary across draws broadcasts.
    if _without_ones(value.shape) == _without_ones(shape):
        return value.reshape(shape)
    if _broadcasts_to(value.shape, shape):
        return value.expand(shape)
    raise ShapeError(
        f"Predictive(parallel=True): site '{name}' came out of the vectorised run with shape "
        f"{fmt_shape(value.shape)}, but {size} draws of shape "
        f"{fmt_shape(layout.site_shape(name, vectorized=False))} need "
        f"{fmt_shape(shape)}.\n{_VECTORISE_FIX}"
    )


def _without_ones(shape: torch.Size) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False
