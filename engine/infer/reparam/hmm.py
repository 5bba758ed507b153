"""``LinearHMMReparam``: a ``LinearHMM`` site made a ``GaussianHMM`` given auxiliary variables.

A ``LinearHMM`` with heavy-tailed noises has no density to score. Most such noises are scale
mixtures (or, for Stable laws, more general mixtures) of Gaussians: drawing the mixing variables
as auxiliary sites leaves Gaussian noises, and a linear model with Gaussian noises is a
``GaussianHMM``, whose ``log_prob`` integrates the hidden states out exactly. This
reparameterizer hands the initial, transition and observation noises to the component
reparameterizers it is given (``StudentTReparam`` and the like), which add the auxiliary sites
``{name}_init_*``, ``{name}_trans_*`` and ``{name}_obs_*``, and rebuilds the site as a
``GaussianHMM`` of what they return. Observation transforms (a ``LogNormal`` observation's
``exp``) are put back around the ``GaussianHMM``; an ``IndependentHMM`` of ``LinearHMM`` stays
an ``IndependentHMM`` of the result.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> from engine.infer.reparam import StudentTReparam
>>> t = dist.StudentT(4.0, torch.zeros(1), 1.0).to_event(1)
>>> hmm = dist.LinearHMM(t, torch.eye(1), t, torch.eye(1), t, duration=5)
>>> def model():
...     return engine.sample("x", hmm, obs=torch.zeros(5, 1))
>>> rep = LinearHMMReparam(trans=StudentTReparam(), obs=StudentTReparam(), init=StudentTReparam())
>>> tr = poutine.trace(poutine.reparam(model, {"x": rep})).get_trace()
>>> type(tr.nodes["x"]["fn"]).__name__, tr.nodes["x_trans_gamma"]["fn"].event_shape
('GaussianHMM', torch.Size([5, 1]))
"""

from __future__ import annotations

from typing import Any

import torch

import engine.distributions as dist
from engine.errors import ArgumentError, ReparamError
from engine.infer.reparam.reparam import (
    Reparam,
    ReparamMessage,
    ReparamResult,
    require_family,
)


class LinearHMMReparam(Reparam):
    """Rewrite a ``LinearHMM`` (or ``IndependentHMM`` of one) site as a ``GaussianHMM`` given
    auxiliary sites drawn by the component reparameterizers ``init``, ``trans`` and ``obs``
    (each optional: a noise that is already Gaussian needs none).

    >>> from engine.infer.reparam import StudentTReparam
    >>> LinearHMMReparam(obs=StudentTReparam()).init is None
    True
    """

    def __init__(
        self,
        init: Reparam | None = None,
        trans: Reparam | None = None,
        obs: Reparam | None = None,
    ) -> None:
        for what, rep in (("init", init), ("trans", trans), ("obs", obs)):
            if rep is not None and not isinstance(rep, Reparam):
                raise ArgumentError(
                    f"LinearHMMReparam: {what} must be a reparameterizer (an instance of "
                    f"engine.infer.reparam.Reparam) or None, got {type(rep).__name__}."
                )
        self.init = init
        self.trans = trans
        self.obs = obs

    def _component(
        self, rep: Reparam, name: str, fn: Any, event_dim: int, value: Any, is_observed: bool
    ) -> ReparamResult:
        """Let ``rep`` rewrite one noise, presented with ``event_dim`` event dims; the noise it
        returns comes back with one event dim."""
        result = rep.apply(
            {
                "name": name,
                "fn": self._wrap(fn, event_dim),
                "value": value,
                "is_observed": is_observed,
            }
        )
        fn = result["fn"]
        return {**result, "fn": fn.to_event(1 - len(fn.event_shape))}

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Rewrite the site; see the class docstring."""
        name = msg["name"]
        fn, event_dim = self._unwrap(msg["fn"])
        require_family(name, fn, (dist.LinearHMM, dist.IndependentHMM), "LinearHMMReparam")
        if fn.duration is None:
            raise ReparamError(
                f"Site '{name}': LinearHMMReparam needs to know the number of time steps, but "
                "this LinearHMM's parameters are all shared by every step. Fix: build it with "
                "duration=T."
            )
        if isinstance(fn, dist.IndependentHMM):
            return self._apply_independent(msg, fn, event_dim)
        value, is_observed = msg["value"], msg["is_observed"]
        steps = (*fn.batch_shape, fn.duration)

        init_dist = fn.initial_dist
        if self.init is not None:
            init_dist = self._component(
                self.init, f"{name}_init", init_dist, event_dim - 1, None, False
            )["fn"]

        trans_dist = fn.transition_dist
        if self.trans is not None:
            trans_dist = self._component(
                self.trans, f"{name}_trans", trans_dist.expand(steps), event_dim, None, False
            )["fn"]

        obs_dist = fn.observation_dist
        if self.obs is not None:
            result = self._component(
                self.obs, f"{name}_obs", obs_dist.expand(steps), event_dim, value, is_observed
            )
            obs_dist, value, is_observed = result["fn"], result["value"], result["is_observed"]

        hmm = dist.GaussianHMM(
            init_dist,
            fn.transition_matrix,
            trans_dist,
            fn.observation_matrix,
            obs_dist,
            duration=fn.duration,
        )
        hmm = self._wrap(hmm, event_dim)
        if fn.transforms:
            hmm = dist.TransformedDistribution(hmm, fn.transforms)
        return {"fn": hmm, "value": value, "is_observed": is_observed}

    def _apply_independent(
        self, msg: ReparamMessage, fn: dist.IndependentHMM, event_dim: int
    ) -> ReparamResult:
        """Rewrite the batch of one-dimensional HMMs inside, moving the series dim of the value
        to where the base HMMs keep it and back."""
        value = msg["value"]
        base_value = None if value is None else value.transpose(-1, -2).unsqueeze(-1)
        result = self.apply(
            {
                "name": msg["name"],
                "fn": fn.base_dist.to_event(1),
                "value": base_value,
                "is_observed": msg["is_observed"],
            }
        )
        base = result["fn"]
        if isinstance(base, torch.distributions.TransformedDistribution):
            raise ReparamError(
                f"Site '{msg['name']}': LinearHMMReparam cannot rewrite an IndependentHMM whose "
                "LinearHMMs transform their observations (an IndependentHMM of a transformed "
                "GaussianHMM is not a distribution the engine has)."
            )
        hmm = dist.IndependentHMM(base.to_event(-1))
        new_value = result["value"]
        if new_value is not base_value and new_value is not None:
            value = new_value.squeeze(-1).transpose(-1, -2)
        return {
            "fn": self._wrap(hmm, event_dim),
            "value": value,
            "is_observed": result["is_observed"],
        }
