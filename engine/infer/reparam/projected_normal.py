"""``ProjectedNormalReparam``: a latent ``ProjectedNormal`` site through its Gaussian vector.

``x ~ ProjectedNormal(c)`` is ``y / |y|`` for ``y ~ Normal(c, I)``; this draws the auxiliary
site ``{name}_normal ~ Normal(0, I)`` (free of parameters) and sets ``x = normalize(c + noise)``.
HMC and Gaussian guides then move in flat space instead of on the sphere.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("direction", dist.ProjectedNormal(torch.tensor([0.0, 0.0, 3.0])))
>>> tr = poutine.trace(poutine.reparam(model, {"direction": ProjectedNormalReparam()})).get_trace()
>>> y = torch.tensor([0.0, 0.0, 3.0]) + tr.nodes["direction_normal"]["value"]
>>> expected = y / y.norm()
>>> bool(torch.allclose(tr.nodes["direction"]["value"], expected))
True
"""

from __future__ import annotations

import torch

import engine.distributions as dist
from engine.distributions.projected_normal import _normalize
from engine.infer.reparam.reparam import (
    Reparam,
    ReparamMessage,
    ReparamResult,
    auxiliary_sample,
    deterministic_result,
    refuse_observed,
    require_family,
)


class ProjectedNormalReparam(Reparam):
    """Rewrite a latent ``ProjectedNormal`` site as standard normal noise around its concentration.

    An initial value ``x`` starts the noise at ``x - c`` (one of many preimages: any point on the
    ray through ``x`` maps back to it, which is all initialization needs).

    >>> import torch, engine
    >>> from engine.infer.autoguide import InitMessenger, init_to_value
    >>> start = torch.tensor([0.6, 0.8])
    >>> with InitMessenger(init_to_value(values={"u": start})):
    ...     with engine.poutine.reparam(config={"u": ProjectedNormalReparam()}):
    ...         u = engine.sample("u", dist.ProjectedNormal(torch.tensor([1.0, 0.0])))
    >>> bool(torch.allclose(u, start))
    True
    """

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw ``{name}_normal`` and return the projected direction."""
        name, value = msg["name"], msg["value"]
        refuse_observed(msg, "ProjectedNormalReparam")
        fn, event_dim = self._unwrap(msg["fn"])
        require_family(name, fn, dist.ProjectedNormal, "ProjectedNormalReparam")
        concentration = fn.concentration
        noise = None if value is None else value - concentration
        standard = dist.Normal(torch.zeros_like(concentration), 1.0).to_event(1)
        noise = auxiliary_sample(
            f"{name}_normal", self._wrap(standard, event_dim), noise, msg["is_observed"]
        )
        if value is None:
            value = _normalize(concentration + noise)
        return deterministic_result(value, event_dim)
