"""``GaussianHMM``: a linear-Gaussian state space model (the Kalman filter's model) as one
distribution over a whole sequence.

The generative story: ``z_{-1} ~ initial_dist``; at each step ``t = 0 .. T-1``,
``z_t = z_{t-1} @ transition_matrix + transition noise`` and
``x_t = z_t @ observation_matrix + observation noise``, with Gaussian noises. Every piece is a
Gaussian factor (``gaussian_factor``): ``log_prob`` conditions the observation factors on the
data, links the steps pairwise in logarithmic depth (``hmm_scan``) and integrates the hidden
states out; ``filter`` stops before the last integration and returns the last state's
posterior; ``rsample`` draws the hidden path backwards from the filtered states, then the
observations, all reparameterized.

>>> import torch, engine.distributions as dist
>>> mvn = dist.MultivariateNormal(torch.zeros(1), torch.eye(1))
>>> d = dist.GaussianHMM(mvn, torch.eye(1), mvn, torch.eye(1), mvn, duration=3)
>>> d.event_shape, d.rsample((2,)).shape
(torch.Size([3, 1]), torch.Size([2, 3, 1]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.gaussian_factor import GaussianFactor, from_linear, from_mvn
from engine.distributions.hidden_markov import HiddenMarkovModel, linear_hmm_shapes
from engine.distributions.hmm_scan import absorb_initial, contract_chain
from engine.distributions.torch_distribution import _as_shape, _check_expandable
from engine.distributions.util import broadcast_shape
from engine.errors import ArgumentError, ShapeError, fmt_shape


def forward_filter_backward_sample(
    initial: GaussianFactor,
    steps: GaussianFactor,
    num_steps: int,
    hidden_dim: int,
    sample_shape: Sequence[int] = (),
) -> torch.Tensor:
    """Draw ``z_0 .. z_{T-1}`` (stacked in dim -2) from the chain ``initial(z_{-1}) prod_t
    steps_t(z_{t-1}, z_t)``, normalized: filter forwards, then draw the last state and each
    earlier one given the next. Reparameterized in every argument.
    """
    steps = steps.with_time(num_steps)
    filtered = [initial]  # filtered[t + 1] is over z_t
    for t in range(num_steps):
        filtered.append(absorb_initial(filtered[-1], steps.take(t), hidden_dim))
    z = filtered[-1].rsample(sample_shape)
    path = [z]
    for t in range(num_steps - 1, 0, -1):
        joint = filtered[t].pad(right=hidden_dim) + steps.take(t)  # over (z_{t-1}, z_t)
        z = joint.condition(z).rsample()
        path.append(z)
    path.reverse()
    batch = broadcast_shape(*(p.shape for p in path))
    return torch.stack([p.expand(batch) for p in path], -2)


def one_event_dim_gaussian(d: torch.distributions.Distribution, role: str):
    """``d`` with one event dim fewer (time moved into the batch), for a Gaussian over
    ``(T, dim)``: an ``Independent`` of ``Normal`` or of ``MultivariateNormal``."""
    if isinstance(d, torch.distributions.Independent):
        base, n = d.base_dist, d.reinterpreted_batch_ndims - 1
        if isinstance(base, torch.distributions.MultivariateNormal) and n == 0:
            return base
        if isinstance(base, torch.distributions.Normal) and n == 1:
            return torch.distributions.Independent(base, 1)
    raise ArgumentError(
        f"{role} must be a Gaussian over (duration, obs_dim): Normal(...).to_event(2) or "
        f"MultivariateNormal(...).to_event(1); got {type(d).__name__} with event_shape "
        f"{fmt_shape(d.event_shape)}."
    )


def _time_slice(factor: GaussianFactor, start: int, stop: int, num_steps: int) -> GaussianFactor:
    """Steps ``start:stop`` of a step factor (a homogeneous one is its own slice)."""
    batch = factor.batch_shape
    if not batch or batch[-1] == 1:
        return factor
    return factor.with_time(num_steps).take(slice(start, stop))


class GaussianHMM(HiddenMarkovModel):
    """A hidden Markov model with linear dynamics and Gaussian noises (Pyro's ``GaussianHMM``).

    :param initial_dist: ``MultivariateNormal`` (or ``Normal(...).to_event(1)``) of the state
        before the first step, event_shape ``(hidden_dim,)``.
    :param transition_matrix: ``(old, new)`` in its last two dims, shape broadcastable to
        ``batch_shape + (T, hidden_dim, hidden_dim)``.
    :param transition_dist: the process noise, event_shape ``(hidden_dim,)``, batch_shape
        broadcastable to ``batch_shape + (T,)``.
    :param observation_matrix: shape broadcastable to ``batch_shape + (T, hidden_dim, obs_dim)``.
    :param observation_dist: the observation noise, event_shape ``(obs_dim,)``.
    :param duration: the number of steps, needed to draw when every parameter is shared.

    ``event_shape = (T, obs_dim)``; with only shared parameters ``T`` is 1 and ``log_prob``
    scores sequences of any length.

    >>> import torch, engine.distributions as dist
    >>> mvn = dist.MultivariateNormal(torch.zeros(2), torch.eye(2))
    >>> d = dist.GaussianHMM(mvn, 0.9 * torch.eye(2), mvn, torch.ones(2, 1),
    ...                      dist.Normal(torch.zeros(1), 0.5).to_event(1))
    >>> d.log_prob(torch.zeros(10, 1)).shape, d.filter(torch.zeros(10, 1)).event_shape
    (torch.Size([]), torch.Size([2]))
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 2)
    has_rsample = True

    def __init__(
        self,
        initial_dist: torch.distributions.Distribution,
        transition_matrix: torch.Tensor,
        transition_dist: torch.distributions.Distribution,
        observation_matrix: torch.Tensor,
        observation_dist: torch.distributions.Distribution,
        validate_args: bool | None = None,
        duration: int | None = None,
    ) -> None:
        hidden_dim, obs_dim, batch_shape, time = linear_hmm_shapes(
            type(self).__name__,
            initial_dist,
            transition_matrix,
            transition_dist,
            observation_matrix,
            observation_dist,
        )
        name = type(self).__name__
        self.hidden_dim = hidden_dim
        self.obs_dim = obs_dim
        self._init = from_mvn(initial_dist, f"{name}: initial_dist").expand(batch_shape)
        self._trans = from_linear(transition_matrix, transition_dist, f"{name}: transition_dist")
        self._obs = from_linear(observation_matrix, observation_dist, f"{name}: observation_dist")
        super().__init__(duration, batch_shape, (time, obs_dim), validate_args=validate_args)

    def _like(
        self,
        init: GaussianFactor,
        trans: GaussianFactor,
        obs: GaussianFactor,
        duration: Any,
        batch_shape: Sequence[int],
        validate_args: bool | None,
    ) -> GaussianHMM:
        """A distribution of this class built directly from its factors."""
        new = self._get_checked_instance(GaussianHMM)
        new.hidden_dim, new.obs_dim = self.hidden_dim, self.obs_dim
        new._init, new._trans, new._obs = init, trans, obs
        time = duration if duration is not None else 1
        HiddenMarkovModel.__init__(
            new, duration, batch_shape, (time, self.obs_dim), validate_args=False
        )
        new._validate_args = validate_args
        return new

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> GaussianHMM:
        batch_shape = _as_shape(batch_shape, self, "expand")
        _check_expandable(self, batch_shape)
        # Only the initial factor grows: it enters after the time contraction.
        return self._like(
            self._init.expand(batch_shape),
            self._trans,
            self._obs,
            self._duration,
            batch_shape,
            self._validate_args,
        )

    def _observed_steps(self, value: torch.Tensor) -> GaussianFactor:
        """Step factors over ``(z_{t-1}, z_t)`` with the observations fixed at ``value``."""
        return self._trans + self._obs.condition(value).pad(left=self.hidden_dim)

    def _final_state(self, value: torch.Tensor) -> GaussianFactor:
        steps = self._check_value(value)
        chain = contract_chain(self._observed_steps(value), steps, self.hidden_dim)
        return absorb_initial(self._init, chain, self.hidden_dim)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """The log density of a sequence, every hidden state integrated out."""
        return self._final_state(value).integrate()

    def filter(self, value: torch.Tensor):
        """The posterior of the hidden state at the last step given the sequence ``value``: a
        ``MultivariateNormal`` that can serve as the ``initial_dist`` of a forecast.

        >>> import torch, engine.distributions as dist
        >>> mvn = dist.MultivariateNormal(torch.zeros(1), torch.eye(1))
        >>> d = dist.GaussianHMM(mvn, torch.eye(1), mvn, torch.eye(1), mvn)
        >>> d.filter(torch.full((50, 1), 3.0)).loc.round(decimals=2)
        tensor([3.])
        """
        return self._final_state(value).to_mvn(validate_args=self._validate_args)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        """Draw sequences, differentiably in every parameter."""
        steps = self._require_duration("rsample")
        h, o = self.hidden_dim, self.obs_dim
        prior_steps = self._trans + self._obs.marginalize(h, h + o).pad(left=h)
        z = forward_filter_backward_sample(self._init, prior_steps, steps, h, sample_shape)
        return self._obs.condition(z, left=True).rsample()

    def rsample_posterior(
        self, value: torch.Tensor, sample_shape: Sequence[int] = torch.Size()
    ) -> torch.Tensor:
        """Draw the hidden states ``z_0 .. z_{T-1}`` given the observations ``value``: shape
        ``sample_shape + batch_shape + (T, hidden_dim)``."""
        steps = self._check_value(value)
        return forward_filter_backward_sample(
            self._init, self._observed_steps(value), steps, self.hidden_dim, sample_shape
        )

    def conjugate_update(
        self, other: torch.distributions.Distribution
    ) -> tuple[GaussianHMM, torch.Tensor]:
        """Fuse a Gaussian likelihood ``other`` of the whole sequence into the model:
        ``(updated, log_normalizer)`` with
        ``self.log_prob(x) + other.log_prob(x) == updated.log_prob(x) + log_normalizer``.

        ``other`` is ``Normal(...).to_event(2)`` or ``MultivariateNormal(...).to_event(1)``
        over ``(T, obs_dim)``.
        """
        name = type(self).__name__
        like = one_event_dim_gaussian(other, f"{name}.conjugate_update: other")
        duration = other.event_shape[0] if self._duration is None else self._duration
        if tuple(other.event_shape) != (duration, self.obs_dim):
            raise ShapeError(
                f"{name}.conjugate_update: other has event_shape {fmt_shape(other.event_shape)}"
                f" but this distribution's sequences have shape ({duration}, {self.obs_dim})."
            )
        h, o = self.hidden_dim, self.obs_dim
        obs = self._obs + from_mvn(like, f"{name}.conjugate_update: other").pad(left=h)
        steps = self._trans + obs.marginalize(h, h + o).pad(left=h)
        chain = contract_chain(steps, duration, h)
        log_normalizer = absorb_initial(self._init, chain, h).integrate()
        init = self._init + (-log_normalizer)
        updated = self._like(
            init, self._trans, obs, duration, log_normalizer.shape, self._validate_args
        )
        return updated, log_normalizer

    def prefix_condition(self, data: torch.Tensor) -> GaussianHMM:
        """Condition on the first ``t`` steps ``data`` (shape ``batch + (t, obs_dim)``) of a
        ``duration = t + f`` model: the distribution of the remaining ``f`` steps."""
        name = type(self).__name__
        duration = self._require_duration("prefix_condition")
        if data.dim() < 2 or data.size(-1) != self.obs_dim or data.size(-2) >= duration:
            raise ShapeError(
                f"{name}.prefix_condition: data must have shape (..., t, {self.obs_dim}) with "
                f"t < duration = {duration}, got {fmt_shape(data.shape)}."
            )
        t = data.size(-2)
        head = self._like(
            self._init,
            _time_slice(self._trans, 0, t, duration),
            _time_slice(self._obs, 0, t, duration),
            t,
            self.batch_shape,
            self._validate_args,
        )
        init = from_mvn(head.filter(data))
        batch_shape = broadcast_shape(init.batch_shape, self.batch_shape)
        return self._like(
            init.expand(batch_shape),
            _time_slice(self._trans, t, duration, duration),
            _time_slice(self._obs, t, duration, duration),
            duration - t,
            batch_shape,
            self._validate_args,
        )
