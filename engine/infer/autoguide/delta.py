"""``AutoDelta``: a point mass at a learned value for every latent site (MAP estimation).

Each site's value is the param ``AutoDelta.<site>``, stored with the site's support as its
constraint, so it stays inside the support while it is optimised. Local sites have one row per
plate element and are subsampled with their plate.

>>> import engine, engine.distributions as dist
>>> engine.clear_param_store()
>>> def model():
...     engine.sample("rate", dist.Gamma(2.0, 1.0))
>>> guide = AutoDelta(model, init_loc_fn=lambda site: torch.tensor(1.5), model_args=())
>>> round(guide()["rate"].item(), 4)
1.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.distributions.constraints import Constraint

from engine.errors import AutoGuideError
from engine.infer.autoguide.guide import AutoGuide, GuideParam, LatentSite
from engine.infer.autoguide.initialization import InitFn, init_to_median
from engine.infer.autoguide.site_distributions import SiteDelta
from engine.primitives import param, sample

__all__ = ["AutoDelta"]


class _DeltaSite(NamedTuple):
    name: str
    value: GuideParam
    event_dim: int
    support: Constraint
    plates: tuple[str, ...]


class AutoDelta(AutoGuide):
    """MAP guide: every latent site is a point mass at a learned value.

    ``init_loc_fn`` chooses the starting values (default :func:`init_to_median`). See
    :class:`AutoGuide` for ``create_plates``, ``model_args`` and ``model_kwargs``.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    >>> AutoDelta(model, model_args=()).median()["w"].shape
    torch.Size([2])
    """

    allows_no_latent_sites = True

    def __init__(
        self,
        model: Callable,
        init_loc_fn: InitFn = init_to_median,
        *,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
    ):
        super().__init__(model, create_plates=create_plates)
        self.init_loc_fn = init_loc_fn
        self._sites: tuple[_DeltaSite, ...] = ()
        self._setup_if_given(model_args, model_kwargs)

    def _setup_sites(self, sites: list[LatentSite]) -> list[GuideParam]:
        params, records = [], []
        for site in sites:
            init = site.to_full_size(site.value, site.event_dim)
            if not bool(torch.isfinite(site.unconstrained_value()).all()):
                raise AutoGuideError(
                    f"AutoDelta: the init value of site '{site.name}' lies on the boundary of its "
                    "support, where the param cannot be optimised. Use an init_loc_fn that "
                    "starts strictly inside the support (init_to_median, init_to_feasible)."
                )
            value = GuideParam(
                site.name, f"{site.name}_unconstrained", init, site.support, site.event_dim
            )
            params.append(value)
            records.append(
                _DeltaSite(site.name, value, site.event_dim, site.support, site.plate_names)
            )
        self._sites = tuple(records)
        return params

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Sample every latent site at its current value; return ``{name: value}``."""
        return self._draw_each_site(args, kwargs, self._sample)

    @staticmethod
    def _sample(site: _DeltaSite) -> torch.Tensor:
        p = site.value
        value = param(p.name, p.init, p.constraint, p.event_dim)
        return sample(site.name, SiteDelta(value, site.support, event_dim=site.event_dim))

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The current value of every site (at full plate size)."""
        self._setup_once(args, kwargs)
        return {site.name: self._value(site.value) for site in self._sites}
