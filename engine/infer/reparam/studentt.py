"""``StudentTReparam``: a Student-t site as a Normal whose precision is Gamma distributed.

``x ~ StudentT(df, loc, scale)`` is the marginal of ``g ~ Gamma(df/2, df/2)`` and
``x | g ~ Normal(loc, scale / sqrt(g))``. Drawing ``{name}_gamma`` makes the site conditionally
Gaussian, which suits Gaussian guides and Kalman-style inference. Works for latent and observed
sites alike (a robust likelihood stays a likelihood).

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     engine.sample("y", dist.StudentT(4.0, 0.0, 2.0), obs=torch.tensor(1.0))
>>> tr = poutine.trace(poutine.reparam(model, {"y": StudentTReparam()})).get_trace()
>>> type(tr.nodes["y"]["fn"]).__name__, tr.nodes["y"]["is_observed"]
('Normal', True)
"""

from __future__ import annotations

import engine
import engine.distributions as dist
from engine.infer.reparam.reparam import Reparam, ReparamMessage, ReparamResult, require_family


class StudentTReparam(Reparam):
    """Rewrite a ``StudentT`` site as a scale mixture of Normals with latent ``{name}_gamma``.

    >>> import torch
    >>> config = {"x": StudentTReparam()}
    >>> with engine.poutine.trace() as tracer, engine.poutine.reparam(config=config):
    ...     _ = engine.sample("x", dist.StudentT(3.0, torch.zeros(2), 1.0).to_event(1))
    >>> tracer.trace.nodes["x_gamma"]["fn"].event_shape, tracer.trace.nodes["x"]["fn"].event_shape
    (torch.Size([2]), torch.Size([2]))
    """

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw the precision ``{name}_gamma`` and return the conditional Normal."""
        name = msg["name"]
        fn, event_dim = self._unwrap(msg["fn"])
        require_family(name, fn, dist.StudentT, "StudentTReparam")
        half_df = fn.df * 0.5
        # The precision depends only on df: broadcast it to the site's batch shape.
        rate = half_df.expand(fn.batch_shape)
        precision = engine.sample(f"{name}_gamma", self._wrap(dist.Gamma(rate, rate), event_dim))
        normal = dist.Normal(fn.loc, fn.scale * precision.rsqrt())
        return {
            "fn": self._wrap(normal, event_dim),
            "value": msg["value"],
            "is_observed": msg["is_observed"],
        }
