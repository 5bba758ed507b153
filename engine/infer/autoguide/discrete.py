"""``AutoDiscreteParallel``: a learned distribution for each discrete latent site, enumerated in
parallel.

Each ``Bernoulli``, ``Categorical`` or ``OneHotCategorical`` site of the model gets a guide site
of the same family whose ``probs`` are a parameter (``<prefix>.<site>_probs``, one row per
element of the site's plates, full size in subsampled ones, starting at the prior's probs). The
guide sites are marked ``infer={"enumerate": "parallel"}``, so ``TraceEnum_ELBO`` sums over their
values instead of sampling them. Guide the continuous sites with another autoguide in an
``AutoGuideList``.

>>> import torch, engine, engine.distributions as dist
>>> engine.clear_param_store()
>>> def model():
...     with engine.plate("data", 3):
...         engine.sample("k", dist.Categorical(torch.tensor([0.2, 0.8])))
>>> guide = AutoDiscreteParallel(model, model_args=())
>>> engine.param("AutoDiscreteParallel.k_probs").shape
torch.Size([3, 2])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.distributions.transforms import identity_transform

from engine.distributions import Bernoulli, Categorical, OneHotCategorical
from engine.errors import AutoGuideError
from engine.infer.autoguide.guide import AutoGuide, GuideParam, LatentSite
from engine.infer.autoguide.initialization import InitFn
from engine.poutine.handlers import block, trace
from engine.poutine.trace_struct import Trace
from engine.primitives import param, sample

__all__ = ["AutoDiscreteParallel"]

# The families whose only parameter is ``probs``, and the event dims of that parameter.
_FAMILIES = {Bernoulli: 0, Categorical: 1, OneHotCategorical: 1}


class _DiscreteSite(NamedTuple):
    name: str
    family: type
    probs: GuideParam
    plates: tuple[str, ...]


class AutoDiscreteParallel(AutoGuide):
    """A mean-field guide over the model's discrete sites, enumerated in parallel (use it with
    ``TraceEnum_ELBO``). Every latent site it sees must be discrete; sites are configured for
    parallel enumeration for it (as ``config_enumerate`` does).

    >>> import torch, engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("b", dist.Bernoulli(0.3))
    >>> guide = AutoDiscreteParallel(model)
    >>> engine.poutine.trace(guide).get_trace().nodes["b"]["infer"]["enumerate"]
    'parallel'
    """

    def __init__(
        self,
        model: Callable,
        *,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
    ):
        super().__init__(model, create_plates=create_plates)
        self._sites: tuple[_DiscreteSite, ...] = ()
        self._setup_if_given(model_args, model_kwargs)

    def _prototype(self, args: tuple, kwargs: dict, init_fn: InitFn, known: Any = None) -> Trace:
        """One run of the model, its discrete sites drawn from their priors (no init strategy:
        a discrete site has no continuous init)."""
        from engine.infer.enum.config import config_enumerate  # engine.infer imports this module

        with block():
            return trace(config_enumerate(self.model)).get_trace(*args, **kwargs)

    def _latent_sites(self, prototype: Trace, args: tuple, kwargs: dict) -> list[LatentSite]:
        sites = []
        for name, site in prototype.iter_stochastic_nodes():
            fn = site["fn"]
            if type(fn) not in _FAMILIES or site["infer"].get("enumerate") != "parallel":
                raise AutoGuideError(
                    f"AutoDiscreteParallel: site '{name}' ({type(fn).__name__}) is not a "
                    "Bernoulli, Categorical or OneHotCategorical site enumerated in parallel. "
                    "Give this guide only the discrete sites (poutine.block(model, expose=[...]))"
                    " and guide the others with another autoguide in an AutoGuideList."
                )
            frames = []
            for frame in site["cond_indep_stack"]:
                if not frame.vectorized:
                    raise AutoGuideError(
                        f"AutoDiscreteParallel: site '{name}' sits in the sequential plate "
                        f"'{frame.name}'; parallel enumeration needs vectorised plates "
                        f"(with plate('{frame.name}', ...) instead of a for loop)."
                    )
                frames.append(frame)
            sites.append(LatentSite(name, fn, site["value"], identity_transform, tuple(frames)))
        if not sites:
            raise AutoGuideError(
                "AutoDiscreteParallel: the model has no discrete latent sites to guide."
            )
        self._check_subsample_sources(sites, prototype, args, kwargs)
        return sites

    def _setup_sites(self, sites: list[LatentSite]) -> list[GuideParam]:
        params, records = [], []
        for site in sites:
            family = type(site.fn)
            event_dim = _FAMILIES[family]
            probs = site.fn.probs.detach()
            probs = probs.expand(site.fn.batch_shape + probs.shape[probs.dim() - event_dim :])
            init = site.to_full_size(probs, event_dim)
            p = GuideParam(
                f"{site.name}_probs",
                f"{site.name}_probs",
                init,
                family.arg_constraints["probs"],
                event_dim,
            )
            params.append(p)
            records.append(_DiscreteSite(site.name, family, p, site.plate_names))
        self._sites = tuple(records)
        return params

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Each discrete site from its learned distribution, marked for parallel enumeration."""
        return self._draw_each_site(args, kwargs, self._sample)

    @staticmethod
    def _sample(site: _DiscreteSite) -> torch.Tensor:
        p = site.probs
        probs = param(p.name, p.init, p.constraint, p.event_dim)
        return sample(site.name, site.family(probs=probs), infer={"enumerate": "parallel"})

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Each site's most probable value under the learned probs (full plate size)."""
        self._setup_once(args, kwargs)
        result = {}
        for site in self._sites:
            probs = self._value(site.probs)
            if site.family is Bernoulli:
                result[site.name] = (probs > 0.5).to(probs.dtype)
            elif site.family is Categorical:
                result[site.name] = probs.argmax(-1)
            else:
                result[site.name] = torch.nn.functional.one_hot(
                    probs.argmax(-1), probs.shape[-1]
                ).to(probs.dtype)
        return result
