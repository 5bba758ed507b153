"""``StructuredReparam``: run MCMC in the coordinates a trained ``AutoStructured`` guide defines.

The guide writes each latent site as ``loc + perturbation``, the perturbation being the site's
own scaled noise plus maps of earlier sites' perturbations. Rewritten by this reparameterizer,
each site of the guide draws its standard noise at ``{name}_aux`` (its own density masked off:
the site carries it) and takes the value the guide's map gives, so a sampler sees the posterior
pulled back through the map: close to a standard normal when the guide fits well. The site
keeps the model's density plus the map's log-determinant and its support's log|Jacobian|.

Sites the guide treats as ``"delta"`` have no noise: they take the guide's point value (plus
what their dependencies pass on), which conditions the model on that estimate, an
approximation; the others are rewritten exactly. Use one instance for all the guide's sites
(:meth:`StructuredReparam.reparam`), each site's upstream sites coming before it in the model.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer.autoguide import AutoStructured
>>> engine.clear_param_store()
>>> def model():
...     scale = engine.sample("scale", dist.LogNormal(0.0, 1.0))
...     with engine.plate("groups", 2):
...         engine.sample("theta", dist.Normal(0.0, scale))
>>> guide = AutoStructured(model, conditionals="normal", model_args=())
>>> reparam = StructuredReparam(guide)
>>> tr = engine.poutine.trace(reparam.reparam(model)).get_trace()
>>> tr.stochastic_nodes
['scale_aux', 'theta_aux']
>>> draws = reparam.transform_samples({"scale_aux": torch.zeros(4), "theta_aux": torch.zeros(4, 2)})
>>> draws["scale"].shape, draws["theta"].shape
(torch.Size([4]), torch.Size([4, 2]))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import engine
import engine.distributions as dist
from engine.errors import ArgumentError, ReparamError
from engine.infer.autoguide.continuous import _constrain_site, _FlatSite
from engine.infer.autoguide.multivariate import _read
from engine.infer.autoguide.structured import AutoStructured
from engine.infer.reparam.reparam import (
    Reparam,
    ReparamMessage,
    ReparamResult,
    auxiliary_sample,
    refuse_observed,
)


class StructuredReparam(Reparam):
    """Rewrite the latent sites of a trained :class:`AutoStructured` guide's model through the
    guide's map (module docstring). The guide's conditionals must be ``"delta"``, ``"normal"``
    or ``"mvn"`` (a callable conditional has no inverse to start from).

    >>> try:
    ...     StructuredReparam(guide=lambda: None)
    ... except ArgumentError as error:
    ...     print(str(error)[:46])
    StructuredReparam needs an AutoStructured guid
    """

    def __init__(self, guide: AutoStructured):
        if not isinstance(guide, AutoStructured):
            raise ArgumentError(
                f"StructuredReparam needs an AutoStructured guide, got a {type(guide).__name__}."
            )
        self.guide = guide
        # This run's perturbations, by site: a site's downstream sites read them.
        self._perturbations: dict[str, torch.Tensor | None] = {}

    def _sites(self) -> dict[str, _FlatSite]:
        if not self.guide.is_set_up:
            raise ReparamError(
                "StructuredReparam: the guide has not seen its model yet; train it (or call it "
                "once) before reparameterizing."
            )
        for name, kind in self.guide._conditionals.items():
            if callable(kind):
                raise ReparamError(
                    f"StructuredReparam: site '{name}' has a callable conditional in the guide; "
                    "only 'delta', 'normal' and 'mvn' conditionals can be rewritten."
                )
        return {site.name: site for site in self.guide._order}

    def reparam(self, fn: Callable | None = None) -> Any:
        """``poutine.reparam`` with this reparameterizer on every latent site of the guide."""
        return engine.poutine.reparam(
            fn, config=lambda site: self if site["name"] in self._sites() else None
        )

    def _noise_from_value(
        self, site: _FlatSite, value: torch.Tensor, upstream: torch.Tensor | None
    ) -> torch.Tensor:
        """The noise that the guide's map sends to ``value`` (an initial value to start from)."""
        guide = self.guide
        unconstrained = value if site.transform is None else site.transform.inv(value)
        batch = unconstrained.shape[: unconstrained.dim() - len(site.unconstrained_shape)]
        own = unconstrained.reshape((*batch, -1)) - _read(guide._locs[site.name])
        if upstream is not None:
            own = own - upstream
        own = own / _read(guide._scales[site.name])
        if guide._conditionals[site.name] == "mvn":
            tril = _read(guide._scale_trils[site.name])
            own = torch.linalg.solve_triangular(
                tril, own.unsqueeze(-1), upper=False, unitriangular=True
            ).squeeze(-1)
        return own.reshape((*batch, *site.unconstrained_shape))

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw the site's noise and give it the value and density of the guide's map."""
        name, fn = msg["name"], msg["fn"]
        sites = self._sites()
        if name not in sites:
            return {"fn": fn, "value": msg["value"], "is_observed": msg["is_observed"]}
        refuse_observed(msg, "StructuredReparam")
        if name in self._perturbations:
            self._perturbations = {}  # a new run of the model
        for other in self._perturbations:
            if name in self.guide._dependencies[other]:
                raise ReparamError(
                    f"StructuredReparam: site '{other}' depends on '{name}' in the guide but "
                    "comes first in the model; give each site only upstream sites the model "
                    "draws before it."
                )
        guide, site = self.guide, sites[name]
        upstream = guide._dependent_perturbation(site, None, self._perturbations)
        own = None
        if guide.has_noise(name):
            start = None
            if msg["value"] is not None:
                start = self._noise_from_value(site, msg["value"], upstream)
            loc = _read(guide._locs[name])
            zeros = loc.new_zeros(site.unconstrained_shape)
            standard = dist.Normal(zeros, 1.0).to_event(site.unconstrained_event_dim)
            noise = auxiliary_sample(f"{name}_aux", standard.mask(False), start, False)
            batch = noise.shape[: noise.dim() - len(site.unconstrained_shape)]
            own = guide._own_perturbation(site, noise.reshape((*batch, -1)))
        perturbation = own if upstream is None else upstream if own is None else own + upstream
        self._perturbations[name] = perturbation
        value, log_density = self._value(site, perturbation)
        if own is not None and msg["value"] is not None:
            # The noise was solved from the initial value: the map gives it back (up to
            # rounding), and the site keeps the very tensor it was given.
            value = msg["value"]
        # The guide's density divides by |det| of the map; the pulled-back model multiplies.
        log_density = fn.log_prob(value) - log_density + guide._log_scale(site)
        return {
            "fn": dist.Delta(value, log_density=log_density, event_dim=fn.event_dim),
            "value": value,
            "is_observed": True,
        }

    def _value(
        self, site: _FlatSite, perturbation: torch.Tensor | None
    ) -> tuple[torch.Tensor, Any]:
        flat = _read(self.guide._locs[site.name])
        if perturbation is not None:
            flat = flat + perturbation
        unconstrained = flat.reshape((*flat.shape[:-1], *site.unconstrained_shape))
        return _constrain_site(site, unconstrained)

    def transform_samples(
        self, aux_samples: dict[str, torch.Tensor], save_params: Any = None
    ) -> dict[str, torch.Tensor]:
        """Map draws of the noises (``{"{name}_aux": tensor}``, leading batch dims allowed, as
        MCMC returns them) to ``{site: value}``. ``save_params`` is accepted for Pyro's
        signature; the guide's parameters are read without recording them."""
        guide = self.guide
        sites = self._sites()
        perturbations: dict[str, torch.Tensor | None] = {}
        result = {}
        with torch.no_grad():
            for name, site in sites.items():
                own = None
                if guide.has_noise(name):
                    noise = aux_samples[f"{name}_aux"]
                    batch = noise.shape[: noise.dim() - len(site.unconstrained_shape)]
                    own = guide._own_perturbation(site, noise.reshape((*batch, -1)))
                perturbations[name] = guide._dependent_perturbation(site, own, perturbations)
                result[name] = self._value(site, perturbations[name])[0]
        return result
