"""``AutoContinuous``: guides over one flat vector holding every latent site, unconstrained.

A subclass supplies :meth:`AutoContinuous.get_posterior`, a distribution over that vector. Each
call draws the vector at an auxiliary site ``_<prefix>_latent`` (``infer={"is_auxiliary": True}``:
it has no counterpart in the model), cuts it into the sites' unconstrained values, maps each onto
its support and samples the site as a :class:`SiteDelta` whose ``log_density`` is minus the
log|Jacobian|, so the guide's total log-density is that of the constrained values.

Local sites must live in plates the guide covers in full: a joint distribution over a
mini-batch's rows cannot be subsampled (use ``AutoNormal`` or ``AutoDelta`` for those).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import Any, NamedTuple

import torch
from torch.distributions.constraints import Constraint
from torch.distributions.transforms import Transform

from engine.distributions.util import sum_rightmost
from engine.errors import AutoGuideError, describe_plates
from engine.infer.autoguide.guide import AutoGuide, GuideParam, LatentSite
from engine.infer.autoguide.initialization import InitFn, init_to_median
from engine.infer.autoguide.site_distributions import SiteDelta
from engine.primitives import sample

__all__ = ["AutoContinuous"]


class _FlatSite(NamedTuple):
    """Where one site lives in the flat vector, and how to map it onto its support."""

    name: str
    start: int
    stop: int
    unconstrained_shape: torch.Size
    transform: Transform | None  # None: identity
    event_dim: int
    unconstrained_event_dim: int
    support: Constraint
    plates: tuple[str, ...]


def _check_whole_site(guide: str, site: LatentSite) -> torch.Tensor:
    """The site's unconstrained init value, after checking that a guide over whole sites can
    cover it: no subsampled plate, and an init value strictly inside the support."""
    for frame in site.frames:
        if frame.full_size not in (None, frame.size):
            raise AutoGuideError(
                f"{guide}: site '{site.name}' sits in {describe_plates(site.frames)}, which is "
                "subsampled. A joint distribution over all latent sites cannot follow a changing "
                "mini-batch. Guide the local sites with AutoNormal or AutoDelta: e.g. "
                f"AutoGuideList with {guide}(poutine.block(model, hide=[local sites])) and "
                "AutoNormal(poutine.block(model, expose=[local sites]))."
            )
    unconstrained = site.unconstrained_value()
    if not bool(torch.isfinite(unconstrained).all()):
        raise AutoGuideError(
            f"{guide}: the init value of site '{site.name}' lies on the boundary of its "
            "support, so its unconstrained value is infinite. Use an init_loc_fn that starts "
            "strictly inside the support."
        )
    return unconstrained


def _unflatten_site(site: _FlatSite, flat: torch.Tensor, plate_batch: bool = True) -> torch.Tensor:
    """``flat`` (batch dims, then the site's ``stop - start`` entries) shaped as the site's
    unconstrained value. With ``plate_batch``, the batch dims come from plates outside the
    model's (vectorised particles), which sit left of every plate dim: aligned from the right,
    they broadcast with the site's shape. Otherwise they are prepended to it."""
    batch_shape = flat.shape[:-1]
    shape = site.unconstrained_shape
    if batch_shape and plate_batch:
        padded = batch_shape + (1,) * site.unconstrained_event_dim
        shape = torch.broadcast_shapes(shape, padded)
    elif batch_shape:
        shape = batch_shape + shape
    return flat.reshape(shape)


def _constrain_site(site: _FlatSite, unconstrained: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """The site's value on its support, and the log-density the map adds to a guide's density
    there (minus its log|Jacobian|, one entry per batch element; 0.0 for the identity)."""
    if site.transform is None:
        return unconstrained, 0.0
    value = site.transform(unconstrained)
    log_jacobian = site.transform.log_abs_det_jacobian(unconstrained, value)
    kept = value.dim() - site.event_dim
    return value, -sum_rightmost(log_jacobian, log_jacobian.dim() - kept)


class AutoContinuous(AutoGuide):
    """Base class of the guides over the flat unconstrained vector of all latent sites.

    ``latent_dim`` is the vector's length once the guide is set up.

    >>> import engine, engine.distributions as dist
    >>> from engine.infer.autoguide import AutoDiagonalNormal
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    ...     engine.sample("p", dist.Dirichlet(torch.ones(3)))
    >>> guide = AutoDiagonalNormal(model, model_args=())
    >>> isinstance(guide, AutoContinuous), guide.latent_dim
    (True, 4)
    """

    def __init__(
        self,
        model: Callable,
        init_loc_fn: InitFn = init_to_median,
        *,
        create_plates: Callable | None = None,
    ):
        super().__init__(model, create_plates=create_plates)
        self.init_loc_fn = init_loc_fn
        self.latent_dim = 0
        self._sites: tuple[_FlatSite, ...] = ()

    def _setup_sites(self, sites: list[LatentSite]) -> list[GuideParam]:
        records, pieces, start = [], [], 0
        for site in sites:
            unconstrained = _check_whole_site(type(self).__name__, site)
            stop = start + unconstrained.numel()
            records.append(
                _FlatSite(
                    site.name,
                    start,
                    stop,
                    unconstrained.shape,
                    None if site.is_identity else site.transform,
                    site.event_dim,
                    site.unconstrained_event_dim,
                    site.support,
                    site.plate_names,
                )
            )
            pieces.append(unconstrained.reshape(-1))
            start = stop
        self._sites = tuple(records)
        self.latent_dim = start
        return self._posterior_params(torch.cat(pieces))

    def _posterior_params(self, init_loc: torch.Tensor) -> list[GuideParam]:
        """The parameters of the distribution over the flat vector, given its initial centre."""
        raise NotImplementedError

    def get_posterior(self, *args: Any, **kwargs: Any) -> torch.distributions.Distribution:
        """The guide's distribution over the flat unconstrained vector (its params are read
        through ``engine.param``, so a trace sees them)."""
        raise NotImplementedError

    def _loc_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's centre and marginal standard deviations, in unconstrained space."""
        raise NotImplementedError

    def get_base_dist(self) -> torch.distributions.Distribution:
        """The base distribution when the posterior is written as a transformed distribution,
        ``TransformedDistribution(get_base_dist(), get_transform(*args))``."""
        raise NotImplementedError(
            f"{type(self).__name__} is not written as a transform of a base distribution."
        )

    def get_transform(self, *args: Any, **kwargs: Any) -> Transform:
        """The transform that carries :meth:`get_base_dist` onto the posterior over the flat
        vector (what ``NeuTraReparam`` uses to warp a model's geometry)."""
        raise NotImplementedError(
            f"{type(self).__name__} is not written as a transform of a base distribution."
        )

    def sample_latent(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Draw the flat unconstrained vector at the auxiliary site ``_<prefix>_latent``."""
        self._prepare(args, kwargs)
        return sample(
            f"_{self._prefix}_latent",
            self.get_posterior(*args, **kwargs),
            infer={"is_auxiliary": True},
        )

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Draw the flat vector, then every latent site; return ``{name: constrained value}``."""
        self._prepare(args, kwargs)
        plates = self._plates_for_call(args, kwargs) if self._frames else None
        latent = self.sample_latent(*args, **kwargs)
        result = {}
        for site, unconstrained in self._unpack(latent):
            value, log_density = _constrain_site(site, unconstrained)
            with ExitStack() as stack:
                if site.plates:
                    self._enter_plates(stack, plates, site.plates)
                result[site.name] = sample(
                    site.name, SiteDelta(value, site.support, log_density, site.event_dim)
                )
        return result

    def _unpack(
        self, latent: torch.Tensor, plate_batch: bool = True
    ) -> Iterator[tuple[_FlatSite, torch.Tensor]]:
        """Cut ``latent`` (batch dims, then the flat vector) into each site's values.

        With ``plate_batch``, the batch dims come from plates outside the model's (vectorised
        particles), which sit left of every plate dim: aligned from the right, they broadcast with
        the site's shape. Otherwise they are prepended to it (a stack of quantiles).
        """
        for site in self._sites:
            yield site, _unflatten_site(site, latent[..., site.start : site.stop], plate_batch)

    def _constrain_all(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            site.name: unconstrained if site.transform is None else site.transform(unconstrained)
            for site, unconstrained in self._unpack(latent, plate_batch=False)
        }

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Every site at the posterior's centre, mapped onto its support."""
        self._setup_once(args, kwargs)
        return self._constrain_all(self._loc_scale()[0])

    @torch.no_grad()
    def quantiles(
        self, quantiles: Sequence[float] | torch.Tensor, *args: Any, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """Marginal posterior quantiles of every site: ``{name: tensor of shape
        (len(quantiles),) + site shape}``, each coordinate's Normal quantile in unconstrained
        space pushed through the site's transform."""
        self._setup_once(args, kwargs)
        loc, scale = self._loc_scale()
        q = torch.as_tensor(quantiles, dtype=loc.dtype, device=loc.device).reshape(-1, 1)
        return self._constrain_all(
            torch.distributions.Normal(loc, scale, validate_args=False).icdf(q)
        )
