"""``GaussianMRF``: a temporal Markov random field with Gaussian factors.

Where ``GaussianHMM`` is built from conditional laws (a transition matrix plus noise), a Markov
random field is built from joint Gaussian *factors*: one over the initial state, one over each
pair of successive states and one over each state with its observation. Their product is a
joint density over states and observations that need not factor into conditionals, so the
density of the observations is the ratio

    p(x) = integral prod(factors) dz / integral prod(factors with x integrated out) dz,

each integral a chain contracted in logarithmic depth (``hmm_scan``).

>>> import torch, engine.distributions as dist
>>> def mvn(n):
...     return dist.MultivariateNormal(torch.zeros(n), torch.eye(n))
>>> d = dist.GaussianMRF(mvn(1), mvn(2).expand([5]), mvn(3))
>>> d.event_shape, d.log_prob(torch.zeros(5, 2)).shape
(torch.Size([5, 2]), torch.Size([]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.gaussian_factor import from_mvn
from engine.distributions.hidden_markov import hmm_shapes
from engine.distributions.hmm_scan import absorb_initial, contract_chain
from engine.distributions.torch_distribution import (
    TorchDistribution,
    _as_shape,
    _check_expandable,
)
from engine.errors import ArgumentError, ShapeError, fmt_shape


class GaussianMRF(TorchDistribution):
    """A Gaussian Markov random field over time (Pyro's ``GaussianMRF``).

    :param initial_dist: a ``MultivariateNormal`` factor over the initial state, event_shape
        ``(hidden_dim,)``.
    :param transition_dist: a ``MultivariateNormal`` factor over ``(old, new)`` states, event_shape
        ``(2 * hidden_dim,)``, batch_shape broadcastable to ``batch_shape + (T,)``.
    :param observation_dist: a ``MultivariateNormal`` factor over ``(state, observation)``,
        event_shape ``(hidden_dim + obs_dim,)``, batch_shape broadcastable to
        ``batch_shape + (T,)``.

    >>> import torch, engine.distributions as dist
    >>> init = dist.MultivariateNormal(torch.zeros(1), torch.eye(1))
    >>> pair = dist.MultivariateNormal(torch.zeros(2), torch.eye(2))
    >>> d = dist.GaussianMRF(init, pair.expand([3]), pair)
    >>> bool(torch.isclose(d.log_prob(torch.zeros(3, 1)),  # independent unit factors
    ...                    dist.Normal(0.0, 1.0).log_prob(torch.zeros(3)).sum()))
    True
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 2)

    def __init__(
        self,
        initial_dist: torch.distributions.MultivariateNormal,
        transition_dist: torch.distributions.MultivariateNormal,
        observation_dist: torch.distributions.MultivariateNormal,
        validate_args: bool | None = None,
    ) -> None:
        name = type(self).__name__
        for what, d in (
            ("initial_dist", initial_dist),
            ("transition_dist", transition_dist),
            ("observation_dist", observation_dist),
        ):
            if not isinstance(d, torch.distributions.MultivariateNormal):
                raise ArgumentError(
                    f"{name}: {what} must be a MultivariateNormal, got {type(d).__name__}."
                )
        hidden_dim = initial_dist.event_shape[0]
        obs_dim = observation_dist.event_shape[0] - hidden_dim
        if transition_dist.event_shape[0] != 2 * hidden_dim or obs_dim < 1:
            raise ShapeError(
                f"{name}: initial_dist has event_shape {fmt_shape(initial_dist.event_shape)} "
                f"(hidden_dim={hidden_dim}), so transition_dist needs event_shape "
                f"({2 * hidden_dim},) (old, new) and observation_dist ({hidden_dim} + obs_dim,); "
                f"got {fmt_shape(transition_dist.event_shape)} and "
                f"{fmt_shape(observation_dist.event_shape)}."
            )
        batch_shape, time = hmm_shapes(
            name,
            [
                ("initial_dist.batch_shape + (1,)", (*initial_dist.batch_shape, 1)),
                ("transition_dist.batch_shape", transition_dist.batch_shape),
                ("observation_dist.batch_shape", observation_dist.batch_shape),
            ],
        )
        self.hidden_dim = hidden_dim
        self.obs_dim = obs_dim
        self._init = from_mvn(initial_dist).expand(batch_shape)
        self._trans = from_mvn(transition_dist)
        self._obs = from_mvn(observation_dist)
        super().__init__(batch_shape, (time, obs_dim), validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> GaussianMRF:
        batch_shape = _as_shape(batch_shape, self, "expand")
        _check_expandable(self, batch_shape)
        new = self._get_checked_instance(GaussianMRF, _instance)
        new.hidden_dim, new.obs_dim = self.hidden_dim, self.obs_dim
        new._init = self._init.expand(batch_shape)
        new._trans, new._obs = self._trans, self._obs
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _log_integral(self, obs_part, steps: int) -> torch.Tensor:
        h = self.hidden_dim
        chain = contract_chain(self._trans + obs_part.pad(left=h), steps, h)
        return absorb_initial(self._init, chain, h).integrate()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """The log density of a sequence of observations, states integrated out."""
        if value.dim() < 2 or value.size(-1) != self.obs_dim:
            raise ShapeError(
                f"{type(self).__name__}: a value must have shape (..., num_steps, "
                f"{self.obs_dim}), got {fmt_shape(value.shape)}."
            )
        steps = value.size(-2)
        if self.event_shape[0] != 1 and steps != self.event_shape[0]:
            raise ShapeError(
                f"{type(self).__name__}: the value has {steps} time steps (shape "
                f"{fmt_shape(value.shape)}) but the distribution has {self.event_shape[0]}."
            )
        h = self.hidden_dim
        joint = self._log_integral(self._obs.condition(value), steps)
        hidden = self._log_integral(self._obs.marginalize(h, h + self.obs_dim), steps)
        return joint - hidden
