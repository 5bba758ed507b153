"""``UnitJacobianReparam``: look at a site through a volume-preserving transform.

For a bijection ``T`` with ``|det dT| = 1`` (a rotation, a permutation, an orthonormal wavelet or
cosine basis), the site ``x`` becomes the auxiliary site ``{name}_{suffix}`` holding
``T(u)``, where ``u`` is ``x`` mapped to unconstrained space, distributed as the pushforward of
the site's distribution; ``x`` is recovered by the inverse. The density is unchanged (the
Jacobian is 1) while a guide or HMC sees the new coordinates: smooth time series, for example,
are nearly independent in a cosine basis.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> from engine.distributions.transforms import HaarTransform
>>> def model():
...     return engine.sample("x", dist.Normal(torch.arange(4.0), 1.0).to_event(1))
>>> reparam = UnitJacobianReparam(HaarTransform())
>>> tr = poutine.trace(poutine.reparam(model, {"x": reparam})).get_trace()
>>> x, coefficients = tr.nodes["x"]["value"], tr.nodes["x_transformed"]["value"]
>>> bool(torch.allclose(coefficients, HaarTransform()(x), atol=1e-6))
True
"""

from __future__ import annotations

from torch.distributions.transforms import ComposeTransform, Transform

import engine.distributions as dist
from engine.errors import ReparamError
from engine.infer.reparam.reparam import Reparam, ReparamMessage, ReparamResult, auxiliary_sample


class UnitJacobianReparam(Reparam):
    """Draw ``{name}_{suffix}`` in the coordinates of the unit-Jacobian ``transform``.

    The transform acts on the rightmost ``transform.event_dim`` dims, which must lie inside the
    site's event (``.to_event()`` moves plate dims there).

    >>> from engine.distributions.transforms import DiscreteCosineTransform
    >>> UnitJacobianReparam(DiscreteCosineTransform(), suffix="freq").suffix
    'freq'
    """

    def __init__(
        self,
        transform: Transform,
        suffix: str = "transformed",
        *,
        experimental_allow_batch: bool = False,
    ):
        if experimental_allow_batch:
            raise ReparamError(
                "UnitJacobianReparam(experimental_allow_batch=True) is not supported: move the "
                "batch dims the transform acts on into the event with .to_event() instead."
            )
        self.transform = transform.with_cache()
        self.suffix = suffix
        self.experimental_allow_batch = experimental_allow_batch

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw the transformed site and return its preimage as the site's value."""
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        event_dim = len(fn.event_shape)
        if self.transform.domain.event_dim > event_dim:
            raise ReparamError(
                f"Site '{name}': {type(self).__name__}'s transform acts on "
                f"{self.transform.domain.event_dim} dim(s), but the site's event has {event_dim}; "
                "it would mix independent batch entries. Move the dims into the event with "
                ".to_event()."
            )
        transform = ComposeTransform([dist.biject_to(fn.support).inv.with_cache(), self.transform])
        transformed = None if value is None else transform(value)
        transformed = auxiliary_sample(
            f"{name}_{self.suffix}",
            dist.TransformedDistribution(fn, transform),
            transformed,
            msg["is_observed"],
        )
        if value is None:
            value = transform.inv(transformed)
        # The density moved to the transformed site: the Delta here scores exactly zero.
        return {"fn": dist.Delta(value, event_dim=event_dim), "value": value, "is_observed": True}
