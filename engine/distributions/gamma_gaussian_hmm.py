"""``GammaGaussianHMM``: a linear-Gaussian state space model whose noise scale is one shared
Gamma variable, integrated out (a robust, Student-t-like Kalman model).

The generative story: ``s ~ scale_dist`` (a ``Gamma``); then as in ``GaussianHMM`` with every
Gaussian's covariance divided by ``s``: ``z_{-1} ~ N(m0, C0 / s)``,
``z_t = z_{t-1} @ A + N(m, Q / s)``, ``x_t = z_t @ B + N(n, R / s)``. Given ``s`` the sequence
is Gaussian; over ``s`` it is a multivariate Student-t-like law whose tails the data can
fatten. ``log_prob`` contracts Gamma-Gaussian factors (``gamma_gaussian_factor``) along time
and integrates the states and ``s`` out; ``filter`` returns the posterior of ``s`` and of the
last state.

>>> import torch, engine.distributions as dist
>>> mvn = dist.MultivariateNormal(torch.zeros(1), torch.eye(1))
>>> d = dist.GammaGaussianHMM(dist.Gamma(3.0, 3.0), mvn, torch.eye(1), mvn, torch.eye(1), mvn)
>>> d.log_prob(torch.zeros(6, 1)).shape
torch.Size([])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.gamma_gaussian_factor import from_gamma_and_mvn, from_linear_scaled
from engine.distributions.hidden_markov import HiddenMarkovModel, linear_hmm_shapes
from engine.distributions.hmm_scan import absorb_initial, contract_chain
from engine.distributions.torch_distribution import _as_shape, _check_expandable
from engine.distributions.torch_wrappers import Gamma, MultivariateNormal
from engine.errors import ArgumentError


class GammaGaussianHMM(HiddenMarkovModel):
    """A Gaussian HMM with a shared Gamma precision multiplier (Pyro's ``GammaGaussianHMM``).

    :param scale_dist: ``Gamma`` prior of the multiplier ``s``, batch_shape broadcastable to
        ``batch_shape``.
    :param initial_dist: ``MultivariateNormal`` of the state before the first step at unit
        scale, event_shape ``(hidden_dim,)``.
    :param transition_matrix: shape broadcastable to ``batch_shape + (T, hidden_dim,
        hidden_dim)``, ``(old, new)``.
    :param transition_dist: ``MultivariateNormal`` process noise at unit scale.
    :param observation_matrix: shape broadcastable to ``batch_shape + (T, hidden_dim,
        obs_dim)``.
    :param observation_dist: ``MultivariateNormal`` observation noise at unit scale.
    :param duration: the number of steps, when every parameter is shared.

    >>> import torch, engine.distributions as dist
    >>> mvn = dist.MultivariateNormal(torch.zeros(2), torch.eye(2))
    >>> d = dist.GammaGaussianHMM(dist.Gamma(2.0, 2.0), mvn, torch.eye(2), mvn,
    ...                           torch.eye(2), mvn)
    >>> scale, state = d.filter(torch.zeros(4, 2))
    >>> type(scale).__name__, state.event_shape
    ('Gamma', torch.Size([2]))
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 2)

    def __init__(
        self,
        scale_dist: torch.distributions.Gamma,
        initial_dist: torch.distributions.MultivariateNormal,
        transition_matrix: torch.Tensor,
        transition_dist: torch.distributions.MultivariateNormal,
        observation_matrix: torch.Tensor,
        observation_dist: torch.distributions.MultivariateNormal,
        validate_args: bool | None = None,
        duration: int | None = None,
    ) -> None:
        name = type(self).__name__
        if not isinstance(scale_dist, torch.distributions.Gamma):
            raise ArgumentError(
                f"{name}: scale_dist must be a Gamma, got {type(scale_dist).__name__}."
            )
        hidden_dim, obs_dim, batch_shape, time = linear_hmm_shapes(
            name,
            initial_dist,
            transition_matrix,
            transition_dist,
            observation_matrix,
            observation_dist,
            extra=[("scale_dist.batch_shape + (1,)", (*scale_dist.batch_shape, 1))],
        )
        self.hidden_dim = hidden_dim
        self.obs_dim = obs_dim
        self._init = from_gamma_and_mvn(scale_dist, initial_dist, f"{name}: initial_dist")
        self._init = self._init.expand(batch_shape)
        self._trans = from_linear_scaled(
            transition_matrix, transition_dist, f"{name}: transition_dist"
        )
        self._obs = from_linear_scaled(
            observation_matrix, observation_dist, f"{name}: observation_dist"
        )
        super().__init__(duration, batch_shape, (time, obs_dim), validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> GammaGaussianHMM:
        batch_shape = _as_shape(batch_shape, self, "expand")
        _check_expandable(self, batch_shape)
        new = self._get_checked_instance(GammaGaussianHMM, _instance)
        new.hidden_dim, new.obs_dim = self.hidden_dim, self.obs_dim
        new._init = self._init.expand(batch_shape)
        new._trans, new._obs = self._trans, self._obs
        HiddenMarkovModel.__init__(
            new, self._duration, batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def _final_state(self, value: torch.Tensor):
        steps = self._check_value(value)
        h = self.hidden_dim
        observed = self._trans + self._obs.condition(value).pad(left=h)
        return absorb_initial(self._init, contract_chain(observed, steps, h), h)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """The log density of a sequence, the states and the scale integrated out."""
        return self._final_state(value).integrate()

    def filter(self, value: torch.Tensor) -> tuple[Gamma, MultivariateNormal]:
        """The posterior of the multiplier ``s`` (a ``Gamma``) and of the last hidden state
        given ``s = 1`` (a ``MultivariateNormal``; given ``s`` its covariance is divided by
        ``s``), given the sequence ``value``."""
        final = self._final_state(value)
        _, concentration, rate = final.scale_posterior()
        batch = final.batch_shape
        scale = Gamma(
            concentration.expand(batch), rate.expand(batch), validate_args=self._validate_args
        )
        return scale, final.quad.to_mvn(validate_args=self._validate_args)
