"""``TransformReparam``: draw a ``TransformedDistribution``'s base, then apply its transforms.

A site ``x ~ TransformedDistribution(base, [t1, t2, ...])`` becomes the auxiliary site
``{name}_base ~ base`` and the deterministic ``x = ... t2(t1(x_base))``. With an affine transform
this is the non-centred parameterisation written by hand; with a learned flow it moves the
geometry problem into the transform.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> from engine.distributions.transforms import AffineTransform
>>> def model():
...     return engine.sample("x", dist.TransformedDistribution(
...         dist.Normal(0.0, 1.0), [AffineTransform(2.0, 3.0)]))
>>> tr = poutine.trace(poutine.reparam(model, {"x": TransformReparam()})).get_trace()
>>> bool(torch.isclose(tr.nodes["x"]["value"], 2.0 + 3.0 * tr.nodes["x_base"]["value"]))
True
"""

from __future__ import annotations

import torch

from engine.infer.reparam.reparam import (
    Reparam,
    ReparamMessage,
    ReparamResult,
    auxiliary_sample,
    deterministic_result,
    require_family,
    with_pyro_methods,
)


class TransformReparam(Reparam):
    """Rewrite a ``TransformedDistribution`` site (possibly ``.to_event``-wrapped) as its base
    distribution followed by its transforms. An observed or initial value is pulled back through
    the inverse transforms, so the base site is observed (or started) at the matching point.

    >>> import torch, engine, engine.distributions as dist
    >>> from engine.distributions.transforms import ExpTransform
    >>> lognormal = dist.TransformedDistribution(dist.Normal(0.0, 1.0), [ExpTransform()])
    >>> config = {"y": TransformReparam()}
    >>> with engine.poutine.trace() as tracer, engine.poutine.reparam(config=config):
    ...     _ = engine.sample("y", lognormal, obs=torch.tensor(1.0))
    >>> float(tracer.trace.nodes["y_base"]["value"]), tracer.trace.nodes["y_base"]["is_observed"]
    (0.0, True)
    """

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw ``{name}_base`` and push it through the transforms."""
        name, value = msg["name"], msg["value"]
        fn, event_dim = self._unwrap(msg["fn"])
        require_family(name, fn, torch.distributions.TransformedDistribution, "TransformReparam")
        transforms = list(fn.transforms)
        base_value = value
        if value is not None:
            for transform in reversed(transforms):
                base_value = transform.inv(base_value)
        # Each transform may change the event rank (a stick-breaking map adds one dim).
        base_event_dim = event_dim
        for transform in reversed(transforms):
            base_event_dim += transform.domain.event_dim - transform.codomain.event_dim
        base_value = auxiliary_sample(
            f"{name}_base",
            self._wrap(with_pyro_methods(fn.base_dist), base_event_dim),
            base_value,
            msg["is_observed"],
        )
        if value is None:
            value = base_value
            for transform in transforms:
                value = transform(value)
        return deterministic_result(value, event_dim)
