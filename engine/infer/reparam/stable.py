"""``LatentStableReparam``: a latent ``Stable`` site as a function of an angle and an
exponential.

A Stable law has no closed-form density, so a latent Stable site cannot be scored directly. The
Chambers-Mallows-Stuck construction writes a Stable draw as a deterministic function of a
uniform angle ``u`` in (-pi/2, pi/2) and an ``Exponential(1)`` ``w``; this reparameterizer draws
those two as the sites ``{name}_uniform`` and ``{name}_exponential`` (parameter-free, with
ordinary densities, so SVI and MCMC can infer them) and makes the site their function. It is for
latent sites only: an observed Stable site needs a likelihood of the observation itself.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("x", dist.Stable(1.5, 0.3, torch.ones(2)).to_event(1))
>>> tr = poutine.trace(poutine.reparam(model, {"x": LatentStableReparam()})).get_trace()
>>> [n for n in tr.nodes if n.startswith("x_")], tr.nodes["x"]["value"].shape
(['x_uniform', 'x_exponential'], torch.Size([2]))
"""

from __future__ import annotations

import math

import engine
import engine.distributions as dist
from engine.errors import ReparamError
from engine.infer.reparam.reparam import (
    Reparam,
    ReparamMessage,
    ReparamResult,
    deterministic_result,
    require_family,
)


class LatentStableReparam(Reparam):
    """Rewrite a latent ``Stable`` site as a function of the sites ``{name}_uniform`` (the angle)
    and ``{name}_exponential``; see the module docstring.

    >>> config = {"x": LatentStableReparam()}
    >>> with engine.poutine.trace() as tracer, engine.poutine.reparam(config=config):
    ...     _ = engine.sample("x", dist.Stable(1.8, 0.0))
    >>> sorted(tracer.trace.nodes), type(tracer.trace.nodes["x_uniform"]["fn"]).__name__
    (['x', 'x_exponential', 'x_uniform'], 'Uniform')
    """

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw the angle and the exponential and return the site as their function."""
        name = msg["name"]
        fn, event_dim = self._unwrap(msg["fn"])
        require_family(name, fn, dist.Stable, "LatentStableReparam")
        if msg["is_observed"]:
            raise ReparamError(
                f"Site '{name}': LatentStableReparam rewrites latent Stable sites, but this one is "
                "observed. Score the observation with dist.StableWithLogProb instead, or leave the "
                "site out of the reparam config."
            )
        like = fn.loc
        half_pi = math.pi / 2
        angle = dist.Uniform(like.new_full((), -half_pi), like.new_full((), half_pi))
        u = engine.sample(f"{name}_uniform", self._wrap(angle.expand(fn.batch_shape), event_dim))
        exponential = dist.Exponential(like.new_ones(())).expand(fn.batch_shape)
        w = engine.sample(f"{name}_exponential", self._wrap(exponential, event_dim))
        return deterministic_result(fn.from_angle_and_exponential(u, w), event_dim)
