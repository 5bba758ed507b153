"""``DiscreteHMM``: a hidden Markov model with a finite hidden state and any observation law.

The generative story: a state ``z_{-1}`` is drawn from ``initial_logits``; at each step
``t = 0 .. T-1`` the state moves by a row of ``transition_logits`` (rows index the old state,
columns the new one) and ``x_t`` is drawn from ``observation_dist`` at the new state. ``log_prob``
sums every hidden path out by the forward algorithm, written as products of per-step matrices
in log space and contracted pairwise in logarithmic depth (``hmm_scan``).

>>> import torch, engine.distributions as dist
>>> d = dist.DiscreteHMM(torch.zeros(2), torch.zeros(3, 2, 2),
...                      dist.Normal(torch.tensor([0.0, 5.0]), 1.0))
>>> d.batch_shape, d.event_shape, d.sample((4,)).shape
(torch.Size([]), torch.Size([3]), torch.Size([4, 3]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.hidden_markov import HiddenMarkovModel, hmm_shapes
from engine.distributions.hmm_scan import reduce_time
from engine.distributions.torch_distribution import _as_shape, _check_expandable
from engine.distributions.torch_wrappers import Categorical
from engine.errors import ArgumentError, ShapeError, fmt_shape


def log_matmul_exp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(exp(a) @ exp(b))`` without overflow: each row of ``a`` and column of ``b`` is
    shifted by its maximum (a finite stand-in where the row is all ``-inf``).

    >>> a = torch.tensor([[0.0, float("-inf")], [1.0, 2.0]])
    >>> torch.allclose(log_matmul_exp(a, a), (a.exp() @ a.exp()).log())
    True
    """
    a_max = a.detach().amax(-1, keepdim=True)
    b_max = b.detach().amax(-2, keepdim=True)
    a_max = torch.where(torch.isfinite(a_max), a_max, torch.zeros_like(a_max))
    b_max = torch.where(torch.isfinite(b_max), b_max, torch.zeros_like(b_max))
    return ((a - a_max).exp() @ (b - b_max).exp()).log() + a_max + b_max


def _contract_steps(steps: torch.Tensor) -> torch.Tensor:
    """The ``(S, S)`` log matrix of ``steps[..., 0, :, :] @ ... @ steps[..., T-1, :, :]``."""
    return reduce_time(
        steps,
        steps.size(-3),
        log_matmul_exp,
        lambda x, index: x[..., index, :, :],
        lambda a, b: torch.cat([a, b], dim=-3),
    )


class DiscreteHMM(HiddenMarkovModel):
    """A hidden Markov model with ``S`` discrete hidden states (Pyro's ``DiscreteHMM``).

    :param initial_logits: logits of the state before the first step, shape
        ``batch_shape + (S,)`` (broadcastable).
    :param transition_logits: logits of each step's move, ``(old, new)`` in the last two dims:
        shape ``batch_shape + (T, S, S)``, or ``(S, S)`` / ``(1, S, S)`` when shared by all steps.
    :param observation_dist: the law of an observation given the state: ``batch_shape`` ending in
        ``(T, S)`` (or ``(S,)``), any ``event_shape``.
    :param duration: the number of steps, needed to draw when every parameter is shared.

    Logits are normalized over their last dim. ``event_shape = (T,) + obs_event_shape``.

    >>> import torch, engine.distributions as dist
    >>> stay = torch.tensor([[0.9, 0.1], [0.1, 0.9]]).log()
    >>> d = dist.DiscreteHMM(torch.zeros(2), stay, dist.Bernoulli(torch.tensor([0.1, 0.9])))
    >>> d.log_prob(torch.tensor([1.0, 1.0, 1.0])) > d.log_prob(torch.tensor([1.0, 0.0, 1.0]))
    tensor(True)
    """

    arg_constraints = {
        "initial_logits": constraints.real_vector,
        "transition_logits": constraints.independent(constraints.real, 2),
    }
    has_rsample = False

    def __init__(
        self,
        initial_logits: torch.Tensor,
        transition_logits: torch.Tensor,
        observation_dist: torch.distributions.Distribution,
        validate_args: bool | None = None,
        duration: int | None = None,
    ) -> None:
        name = "DiscreteHMM"
        for what, t in (
            ("initial_logits", initial_logits),
            ("transition_logits", transition_logits),
        ):
            if not isinstance(t, torch.Tensor):
                raise ArgumentError(f"{name}: {what} must be a tensor, got {type(t).__name__}.")
        if not isinstance(observation_dist, torch.distributions.Distribution):
            raise ArgumentError(
                f"{name}: observation_dist must be a distribution, got "
                f"{type(observation_dist).__name__}."
            )
        if initial_logits.dim() < 1:
            raise ShapeError(
                f"{name}: initial_logits must have at least one dim (the states), got shape "
                f"{fmt_shape(initial_logits.shape)}."
            )
        if transition_logits.dim() < 2:
            raise ShapeError(
                f"{name}: transition_logits must have at least two dims (old, new state), got "
                f"shape {fmt_shape(transition_logits.shape)}."
            )
        obs_batch = observation_dist.batch_shape
        if len(obs_batch) < 1:
            raise ShapeError(
                f"{name}: observation_dist must have a batch dim for the states (batch_shape "
                f"ending in (S,)), got batch_shape {fmt_shape(obs_batch)}. Fix: give it one "
                "parameter per state, e.g. dist.Normal(locs_per_state, 1.0)."
            )
        num_states = initial_logits.size(-1)
        sizes = {
            "initial_logits": initial_logits.size(-1),
            "transition_logits (rows)": transition_logits.size(-2),
            "transition_logits (columns)": transition_logits.size(-1),
        }
        if obs_batch[-1] != 1:  # 1: an observation law shared by all states
            sizes["observation_dist.batch_shape[-1]"] = obs_batch[-1]
        if len(set(sizes.values())) != 1:
            listed = ", ".join(f"{k} {v}" for k, v in sizes.items())
            raise ShapeError(
                f"{name}: the number of hidden states disagrees: {listed}; shapes "
                f"initial_logits {fmt_shape(initial_logits.shape)}, transition_logits "
                f"{fmt_shape(transition_logits.shape)}, observation_dist.batch_shape "
                f"{fmt_shape(obs_batch)}."
            )
        batch_shape, time = hmm_shapes(
            name,
            [
                ("initial_logits", (*initial_logits.shape[:-1], 1)),
                ("transition_logits", transition_logits.shape[:-2]),
                ("observation_dist", obs_batch[:-1]),
            ],
        )
        self.num_states = num_states
        self.initial_logits = initial_logits - initial_logits.logsumexp(-1, keepdim=True)
        self.transition_logits = transition_logits - transition_logits.logsumexp(-1, keepdim=True)
        self.observation_dist = observation_dist
        super().__init__(
            duration, batch_shape, (time, *observation_dist.event_shape), validate_args
        )

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(self.observation_dist.support, 1)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> DiscreteHMM:
        batch_shape = _as_shape(batch_shape, self, "expand")
        _check_expandable(self, batch_shape)
        new = self._get_checked_instance(DiscreteHMM, _instance)
        # Only the initial logits are expanded: they enter after the time contraction, so the
        # per-step work stays at the parameters' own batch shape.
        new.num_states = self.num_states
        new.initial_logits = self.initial_logits.expand((*batch_shape, self.num_states))
        new.transition_logits = self.transition_logits
        new.observation_dist = self.observation_dist
        HiddenMarkovModel.__init__(
            new, self._duration, batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def _step_logits(self, value: torch.Tensor) -> torch.Tensor:
        """Per-step log matrices ``trans[t, i, j] + log p(x_t | z_t = j)``."""
        obs_event_dim = len(self.observation_dist.event_shape)
        obs_logp = self.observation_dist.log_prob(value.unsqueeze(-1 - obs_event_dim))
        return self.transition_logits + obs_logp.unsqueeze(-2)

    def _final_logits(self, value: torch.Tensor) -> torch.Tensor:
        """Unnormalized log weights of the last state jointly with the observations."""
        self._check_value(value)
        steps = self._step_logits(value)
        chain = _contract_steps(steps)
        return (self.initial_logits.unsqueeze(-1) + chain).logsumexp(-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """The log likelihood of a sequence, every hidden path summed out."""
        return self._final_logits(value).logsumexp(-1)

    def filter(self, value: torch.Tensor) -> Categorical:
        """The posterior of the hidden state at the last step given the sequence ``value``: a
        ``Categorical`` whose ``logits`` can serve as the ``initial_logits`` of a forecast.

        >>> import torch, engine.distributions as dist
        >>> d = dist.DiscreteHMM(torch.zeros(2), torch.zeros(2, 2),
        ...                      dist.Normal(torch.tensor([-3.0, 3.0]), 1.0))
        >>> d.filter(torch.tensor([0.0, 3.0])).probs.argmax().item()
        1
        """
        return Categorical(logits=self._final_logits(value), validate_args=self._validate_args)

    @torch.no_grad()
    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        """Draw sequences: the hidden path forward in time, then each observation at its state."""
        steps = self._require_duration("sample")
        sample_shape = torch.Size(sample_shape)
        S = self.num_states
        state = Categorical(
            logits=self.initial_logits.expand(sample_shape + self.batch_shape + (S,))
        ).sample()
        trans = self.transition_logits.expand((*self.batch_shape, steps, S, S))
        # One draw per (step, old state); the path then reads the row of the state it is in.
        moves = Categorical(logits=trans).sample(sample_shape)
        path = []
        for t in range(steps):
            state = moves[..., t, :].gather(-1, state.unsqueeze(-1)).squeeze(-1)
            path.append(state)
        path = torch.stack(path, -1)  # sample + batch + (T,)
        obs_dist = self.observation_dist.expand((*self.batch_shape, steps, S))
        every = obs_dist.sample(sample_shape)  # sample + batch + (T, S) + obs_event
        event_shape = self.observation_dist.event_shape
        index = path.reshape(path.shape + (1,) + (1,) * len(event_shape))
        index = index.expand((*path.shape, 1, *event_shape))
        return every.gather(len(path.shape), index).squeeze(len(path.shape))
