"""``LinearHMM``: linear dynamics and observations with noises of any (reparameterizable) law.

The generative story is that of ``GaussianHMM`` (``z_t = z_{t-1} @ A + noise``,
``y_t = z_t @ B + noise``) with the three noises free to be heavy-tailed (``StudentT``,
``Stable``) and the observation optionally pushed through transforms (a ``LogNormal``
observation is a ``Normal`` noise followed by ``exp``). Such a sequence has no closed-form
density, so ``log_prob`` is not available: draw it with :meth:`LinearHMM.rsample`, or score it
after ``poutine.reparam`` with ``LinearHMMReparam``, which makes it conditionally a
``GaussianHMM``.

>>> import torch, engine.distributions as dist
>>> t = dist.StudentT(3.0, torch.zeros(2), 1.0).to_event(1)
>>> d = dist.LinearHMM(t, torch.eye(2), t, torch.eye(2), t, duration=5)
>>> d.rsample((3,)).shape
torch.Size([3, 5, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.hidden_markov import HiddenMarkovModel, linear_hmm_shapes
from engine.distributions.torch_distribution import _as_shape, _check_expandable
from engine.errors import ArgumentError


def _split_transforms(d: torch.distributions.Distribution):
    """``(noise, transforms)``: the observation law without its ``Independent`` and
    ``TransformedDistribution`` layers (one event dim again), and the transforms in order."""
    transforms: list = []
    while True:
        if isinstance(d, torch.distributions.Independent):
            d = d.base_dist
        elif isinstance(d, torch.distributions.TransformedDistribution):
            transforms = list(d.transforms) + transforms
            d = d.base_dist
        else:
            break
    if not d.event_shape:
        d = d.to_event(1) if hasattr(d, "to_event") else torch.distributions.Independent(d, 1)
    return d, transforms


class LinearHMM(HiddenMarkovModel):
    """A hidden Markov model with linear dynamics and arbitrary noises (Pyro's ``LinearHMM``).

    The arguments are those of :class:`~engine.distributions.GaussianHMM`, each noise any
    distribution with ``rsample`` and one event dim (``observation_dist`` may also be a
    ``TransformedDistribution`` of one). Unlike ``GaussianHMM`` at least one parameter must carry
    the time dim, or ``duration`` be given, to draw.

    >>> import torch, engine.distributions as dist
    >>> normal = dist.Normal(torch.zeros(1), 1.0).to_event(1)
    >>> d = dist.LinearHMM(normal, torch.eye(1), normal, torch.eye(1),
    ...                    dist.LogNormal(torch.zeros(4, 1), 1.0).to_event(1))
    >>> bool((d.rsample() > 0).all()), d.event_shape
    (True, torch.Size([4, 1]))
    """

    arg_constraints: dict = {}
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
        name = type(self).__name__
        hidden_dim, obs_dim, batch_shape, time = linear_hmm_shapes(
            name,
            initial_dist,
            transition_matrix,
            transition_dist,
            observation_matrix,
            observation_dist,
        )
        for what, d in (
            ("initial_dist", initial_dist),
            ("transition_dist", transition_dist),
            ("observation_dist", observation_dist),
        ):
            if not d.has_rsample:
                raise ArgumentError(
                    f"{name}: {what} ({type(d).__name__}) has no reparameterized sampler "
                    "(rsample), which LinearHMM draws with."
                )
        super().__init__(duration, batch_shape, (time, obs_dim), validate_args=validate_args)
        steps = (*batch_shape, time)
        self.hidden_dim = hidden_dim
        self.obs_dim = obs_dim
        # Expanded to the full shapes once, so rsample and the reparameterizer can slice freely.
        self.initial_dist = initial_dist.expand(batch_shape)
        self.transition_matrix = transition_matrix.expand((*steps, hidden_dim, hidden_dim))
        self.transition_dist = transition_dist.expand(steps)
        self.observation_matrix = observation_matrix.expand((*steps, hidden_dim, obs_dim))
        self.observation_dist, self.transforms = _split_transforms(observation_dist.expand(steps))

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        support = self.observation_dist.support
        for t in self.transforms:
            support = t.codomain
        return constraints.independent(support, 2 - support.event_dim)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> LinearHMM:
        batch_shape = _as_shape(batch_shape, self, "expand")
        _check_expandable(self, batch_shape)
        new = self._get_checked_instance(LinearHMM, _instance)
        time = self.transition_dist.batch_shape[-1]
        steps = (*batch_shape, time)
        h, o = self.hidden_dim, self.obs_dim
        new.hidden_dim, new.obs_dim = h, o
        new.initial_dist = self.initial_dist.expand(batch_shape)
        new.transition_matrix = self.transition_matrix.expand((*steps, h, h))
        new.transition_dist = self.transition_dist.expand(steps)
        new.observation_matrix = self.observation_matrix.expand((*steps, h, o))
        new.observation_dist = self.observation_dist.expand(steps)
        new.transforms = self.transforms
        HiddenMarkovModel.__init__(
            new, self._duration, batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "LinearHMM has no closed-form log_prob. Fix: score it under "
            "poutine.reparam(config={site: LinearHMMReparam(...)}) (engine.infer.reparam), "
            "which makes it a GaussianHMM given auxiliary variables, or use a likelihood-free "
            "method."
        )

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        """Draw sequences, differentiably in every parameter."""
        steps = self._require_duration("rsample")
        sample_shape = torch.Size(sample_shape)
        timed = (*self.batch_shape, steps)
        z = self.initial_dist.rsample(sample_shape)
        trans_noise = self.transition_dist.expand(timed).rsample(sample_shape)
        obs_noise = self.observation_dist.expand(timed).rsample(sample_shape)
        trans = self.transition_matrix.expand((*timed, self.hidden_dim, self.hidden_dim))
        obs = self.observation_matrix.expand((*timed, self.hidden_dim, self.obs_dim))
        states = []
        for t in range(steps):
            z = (z.unsqueeze(-2) @ trans[..., t, :, :]).squeeze(-2) + trans_noise[..., t, :]
            states.append(z)
        z = torch.stack(states, -2)
        x = (z.unsqueeze(-2) @ obs).squeeze(-2) + obs_noise
        for transform in self.transforms:
            x = transform(x)
        return x
