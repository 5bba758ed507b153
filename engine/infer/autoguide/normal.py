"""``AutoNormal``: an independent Normal for every latent site, in that site's unconstrained space.

Parameters (Pyro's names): ``AutoNormal.locs.<site>`` (real) and ``AutoNormal.scales.<site>``
(``constraints.softplus_positive``), each shaped like the site's unconstrained value, with one row
per element of every plate the site sits in, so a subsampled plate trains only its mini-batch's
rows. Each site is one sample site whose distribution is a :class:`TransformedNormal`: its
log-density includes the log|Jacobian| of ``biject_to(support)``.

>>> import torch, engine, engine.distributions as dist
>>> engine.clear_param_store()
>>> def model():
...     engine.sample("s", dist.HalfNormal(1.0))
>>> guide = AutoNormal(model, model_args=())
>>> round(engine.param("AutoNormal.scales.s").item(), 6) == 0.1 and guide()["s"].item() > 0
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch.distributions.constraints import Constraint
from torch.distributions.transforms import Transform

from engine.distributions import constraints
from engine.errors import AutoGuideError
from engine.infer.autoguide.guide import AutoGuide, GuideParam, LatentSite
from engine.infer.autoguide.initialization import InitFn, init_to_feasible
from engine.infer.autoguide.site_distributions import TransformedNormal
from engine.primitives import param, sample

__all__ = ["AutoNormal"]


class _NormalSite(NamedTuple):
    """Everything a call needs for one site, computed once at setup."""

    name: str
    loc: GuideParam
    scale: GuideParam
    transform: Transform | None  # None: the support is real, nothing to transform
    event_dim: int  # of the unconstrained value
    support: Constraint
    plates: tuple[str, ...]


class AutoNormal(AutoGuide):
    """Mean-field Normal guide placed in each latent site's unconstrained space.

    ``init_loc_fn`` chooses the initial locations (default: :func:`init_to_feasible`, i.e. loc 0 in
    unconstrained space); every scale starts at ``init_scale``. See :class:`AutoGuide` for
    ``create_plates``, ``model_args`` and ``model_kwargs``.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     with engine.plate("groups", 3):
    ...         engine.sample("theta", dist.Normal(0.0, 1.0))
    >>> guide = AutoNormal(model, init_scale=0.05, model_args=())
    >>> guide()["theta"].shape, engine.param("AutoNormal.locs.theta").shape
    (torch.Size([3]), torch.Size([3]))
    """

    scale_constraint = constraints.softplus_positive
    allows_no_latent_sites = True

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: InitFn = init_to_feasible,
        init_scale: float = 0.1,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
    ):
        super().__init__(model, create_plates=create_plates)
        if not init_scale > 0:
            raise AutoGuideError(f"AutoNormal: init_scale must be positive, got {init_scale!r}")
        self.init_loc_fn = init_loc_fn
        self._init_scale = float(init_scale)
        self._sites: tuple[_NormalSite, ...] = ()
        self._setup_if_given(model_args, model_kwargs)

    def _setup_sites(self, sites: list[LatentSite]) -> list[GuideParam]:
        params, records = [], []
        for site in sites:
            event_dim = site.unconstrained_event_dim
            init_loc = site.to_full_size(site.unconstrained_value(), event_dim)
            if not bool(torch.isfinite(init_loc).all()):
                raise AutoGuideError(
                    f"AutoNormal: the init value of site '{site.name}' lies on the boundary of "
                    f"its support, so its unconstrained location is infinite. Use an init_loc_fn "
                    "that starts strictly inside the support (init_to_feasible, init_to_median)."
                )
            loc = GuideParam(
                f"locs.{site.name}",
                f"locs.{site.name}_unconstrained",
                init_loc,
                constraints.real,
                event_dim,
            )
            scale = GuideParam(
                f"scales.{site.name}",
                f"scales.{site.name}_unconstrained",
                torch.full_like(init_loc, self._init_scale),
                self.scale_constraint,
                event_dim,
            )
            params += [loc, scale]
            transform = None if site.is_identity else site.transform
            records.append(
                _NormalSite(
                    site.name, loc, scale, transform, event_dim, site.support, site.plate_names
                )
            )
        self._sites = tuple(records)
        return params

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Draw every latent site; return ``{name: constrained value}``."""
        return self._draw_each_site(args, kwargs, self._sample)

    @staticmethod
    def _sample(site: _NormalSite) -> torch.Tensor:
        loc, scale = site.loc, site.scale
        loc_value = param(loc.name, loc.init, loc.constraint, loc.event_dim)
        scale_value = param(scale.name, scale.init, scale.constraint, scale.event_dim)
        fn = TransformedNormal(loc_value, scale_value, site.transform, site.event_dim, site.support)
        return sample(site.name, fn)

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The posterior median of every site, ``transform(loc)``, at full plate size.

        >>> import engine, engine.distributions as dist
        >>> def model():
        ...     engine.sample("s", dist.LogNormal(0.0, 1.0))
        >>> AutoNormal(model).median()
        {'s': tensor(1.)}
        """
        self._setup_once(args, kwargs)
        return {site.name: self._constrain(site, self._value(site.loc)) for site in self._sites}

    @torch.no_grad()
    def quantiles(
        self, quantiles: Sequence[float] | torch.Tensor, *args: Any, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """Posterior quantiles of every site: ``{name: tensor of shape (len(quantiles),) +
        site shape}``, the Normal quantiles in unconstrained space pushed through the transform.

        >>> import engine, engine.distributions as dist
        >>> def model():
        ...     engine.sample("x", dist.Normal(0.0, 1.0))
        >>> AutoNormal(model).quantiles([0.5])
        {'x': tensor([0.])}
        """
        self._setup_once(args, kwargs)
        result = {}
        for site in self._sites:
            loc, scale = self._value(site.loc), self._value(site.scale)
            q = torch.as_tensor(quantiles, dtype=loc.dtype, device=loc.device)
            q = q.reshape((-1,) + (1,) * loc.dim())
            unconstrained = torch.distributions.Normal(loc, scale, validate_args=False).icdf(q)
            result[site.name] = self._constrain(site, unconstrained)
        return result

    def _get_loc_and_scale(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Site ``name``'s location and scale in unconstrained space, as trained (with their
        gradients): Pyro's accessor of the same name, which its tutorials and tests read.

        >>> import engine, engine.distributions as dist
        >>> def model():
        ...     engine.sample("s", dist.LogNormal(0.0, 1.0))
        >>> guide = AutoNormal(model, init_scale=0.5)
        >>> [round(t.item(), 3) for t in guide._get_loc_and_scale("s")]
        [0.0, 0.5]
        """
        self._setup_once((), {})
        for site in self._sites:
            if site.name == name:
                return self._stored(site.loc), self._stored(site.scale)
        raise AutoGuideError(
            f"AutoNormal has no site '{name}'; its sites are {[s.name for s in self._sites]}."
        )

    @staticmethod
    def _constrain(site: _NormalSite, unconstrained: torch.Tensor) -> torch.Tensor:
        return unconstrained if site.transform is None else site.transform(unconstrained)
