"""``NeuTraReparam``: run HMC in the coordinates a trained autoguide defines (neural transport).

A guide such as ``AutoMultivariateNormal`` (or a flow) approximates the posterior as
``T(z)`` with ``z`` standard normal. Running HMC on ``z`` instead of on the model's own latents
makes a curved or badly scaled posterior look close to a standard normal to the sampler.

Every latent site of the guide's model is rewritten: the first draws the shared latent
``{name}_shared_latent`` (the whole ``z``, outside any plate, its own density masked off), all
of them take their values from ``T(z)``, and each carries its model density plus the Jacobians
of ``T`` and of its support's bijection, so the joint density of ``z`` is the model's posterior
pulled back through ``T``. :meth:`NeuTraReparam.transform_sample` maps draws of ``z`` back to
the model's sites.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer.autoguide import AutoDiagonalNormal
>>> engine.clear_param_store()
>>> def model():
...     engine.sample("s", dist.LogNormal(0.0, 1.0))
...     engine.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
>>> neutra = NeuTraReparam(AutoDiagonalNormal(model, model_args=()))
>>> tr = engine.poutine.trace(neutra.reparam(model)).get_trace()
>>> tr.stochastic_nodes, tr.nodes["s_shared_latent"]["value"].shape
(['s_shared_latent'], torch.Size([3]))
>>> draws = neutra.transform_sample(torch.zeros(5, 3))  # five draws of the shared latent
>>> draws["s"].shape, draws["w"].shape, bool((draws["s"] > 0).all())
(torch.Size([5]), torch.Size([5, 2]), True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import engine
import engine.distributions as dist
from engine.distributions.util import sum_rightmost
from engine.errors import ArgumentError, ReparamError
from engine.infer.autoguide import AutoContinuous
from engine.infer.reparam.reparam import Reparam, ReparamMessage, ReparamResult, refuse_observed
from engine.poutine.plate_messenger import PlateMessenger
from engine.runtime import handlers_suspended


class NeuTraReparam(Reparam):
    """Rewrite every latent site of ``guide``'s model through ``guide.get_transform()``.

    The guide must be an ``AutoContinuous`` guide (its flat latent vector is what ``T`` maps)
    whose transform does not depend on the model's arguments; train it first and freeze it
    (``guide.requires_grad_(False)``) before handing the model to MCMC.

    >>> try:
    ...     NeuTraReparam(guide=lambda: None)
    ... except ArgumentError as error:
    ...     print(str(error)[:43])
    NeuTraReparam needs an AutoContinuous guide
    """

    def __init__(self, guide: AutoContinuous):
        if not isinstance(guide, AutoContinuous):
            raise ArgumentError(
                "NeuTraReparam needs an AutoContinuous guide (AutoDiagonalNormal, "
                f"AutoMultivariateNormal, ...), got a {type(guide).__name__}."
            )
        self.guide = guide
        self.transform: Any = None
        self.x_unconstrained: dict[str, torch.Tensor] = {}

    def _sites(self) -> dict[str, Any]:
        if self.guide.prototype_trace is None:
            raise ReparamError(
                "NeuTraReparam: the guide has not seen its model yet; call it once (or train it) "
                "before reparameterizing."
            )
        return {site.name: site for site in self.guide._sites}

    def _reparam_config(self, site: dict) -> NeuTraReparam | None:
        return self if site["name"] in self._sites() else None

    def reparam(self, fn: Callable | None = None) -> Any:
        """``poutine.reparam`` with this reparameterizer on every latent site of the guide."""
        return engine.poutine.reparam(fn, config=self._reparam_config)

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Take the site's value from the shared latent, drawing that at the first site."""
        name, fn = msg["name"], msg["fn"]
        sites = self._sites()
        if name not in sites:
            return {"fn": fn, "value": msg["value"], "is_observed": msg["is_observed"]}
        refuse_observed(msg, "NeuTraReparam")
        log_density: Any = 0.0
        if name not in self.x_unconstrained:
            try:
                self.transform = self.guide.get_transform()
            except (NotImplementedError, TypeError) as error:
                raise ReparamError(
                    "NeuTraReparam needs a guide whose get_transform() does not depend on the "
                    f"model's arguments: {error}"
                ) from error
            # The shared latent is one vector for the whole model: the plates around the
            # first latent site do not apply to it.
            with handlers_suspended(lambda handler: isinstance(handler, PlateMessenger)):
                z = engine.sample(f"{name}_shared_latent", self.guide.get_base_dist().mask(False))
            x = self.transform(z)
            log_density = self.transform.log_abs_det_jacobian(z, x)
            self.x_unconstrained = {
                site.name: value for site, value in self.guide._unpack(x, plate_batch=False)
            }
        unconstrained = self.x_unconstrained.pop(name)
        bijection = dist.biject_to(fn.support)
        value = bijection(unconstrained)
        log_jacobian = bijection.log_abs_det_jacobian(unconstrained, value)
        log_jacobian = sum_rightmost(log_jacobian, log_jacobian.dim() - value.dim() + fn.event_dim)
        log_density = log_density + fn.log_prob(value) + log_jacobian
        density = dist.Delta(value, log_density=log_density, event_dim=fn.event_dim)
        return {"fn": density, "value": value, "is_observed": True}

    def transform_sample(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map draws of the shared latent (leading batch dims allowed) to ``{site: value}``
        (the model must have run once under :meth:`reparam`, which fixes the transform)."""
        if self.transform is None:
            self.transform = self.guide.get_transform()
        x = self.transform(latent)
        return {
            site.name: dist.biject_to(site.support)(value)
            for site, value in self.guide._unpack(x, plate_batch=False)
        }
