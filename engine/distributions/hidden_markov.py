"""``HiddenMarkovModel``: what every hidden Markov model distribution shares, the time axis.

An HMM distribution's event is a whole sequence: ``event_shape = (duration,) + obs_event_shape``
with time on the left. Its parameters may be per step (heterogeneous, a time dim of size
``duration``) or shared by all steps (homogeneous). When every parameter is shared the length is
not fixed by them: the event shape then says ``1`` for time and ``log_prob`` scores a sequence of
any length, while drawing needs the ``duration`` argument to know how many steps to draw.

This module holds that bookkeeping (the duration, checking a value's shape against the event, the
batch shapes of the parameters) for the families in ``discrete_hmm``, ``gaussian_hmm``,
``gamma_gaussian_hmm`` and ``linear_hmm``.

>>> import torch, engine.distributions as dist
>>> d = dist.DiscreteHMM(torch.zeros(2), torch.zeros(2, 2), dist.Normal(torch.zeros(2), 1.0))
>>> d.event_shape, d.duration, d.log_prob(torch.zeros(7)).shape
(torch.Size([1]), None, torch.Size([]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.util import broadcast_shape
from engine.errors import ArgumentError, ShapeError, fmt_shape


def hmm_shapes(name: str, parts: Sequence[tuple[str, Sequence[int]]]) -> tuple[torch.Size, int]:
    """``(batch_shape, time_size)`` of an HMM from its parameters' ``batch + (time,)`` shapes.

    Each part is ``(what, shape)``; the shapes broadcast, the last dim is time. A clash names
    every part and its shape.

    >>> hmm_shapes("X", [("initial", (3, 1)), ("transition", (5,))])
    (torch.Size([3]), 5)
    """
    try:
        shape = broadcast_shape(*(s for _, s in parts))
    except ShapeError:
        listed = ", ".join(f"{what} {fmt_shape(s)}" for what, s in parts)
        raise ShapeError(
            f"{name}: the batch + time shapes of the parameters do not broadcast: {listed} "
            "(aligned from the right, the last dim is time; each pair of sizes must be equal or "
            "one of them 1). Fix: give per-step parameters the same number of steps and "
            "batch dims that broadcast."
        ) from None
    return shape[:-1], shape[-1]


def linear_hmm_shapes(
    name: str,
    initial_dist: torch.distributions.Distribution,
    transition_matrix: torch.Tensor,
    transition_dist: torch.distributions.Distribution,
    observation_matrix: torch.Tensor,
    observation_dist: torch.distributions.Distribution,
    extra: Sequence[tuple[str, Sequence[int]]] = (),
) -> tuple[int, int, torch.Size, int]:
    """Check the arguments of a linear-dynamics HMM (``z_t = z_{t-1} @ A + noise``,
    ``x_t = z_t @ B + noise``); return ``(hidden_dim, obs_dim, batch_shape, time_size)``.

    >>> import engine.distributions as dist
    >>> mvn = dist.MultivariateNormal(torch.zeros(2), torch.eye(2))
    >>> linear_hmm_shapes("X", mvn, torch.eye(2), mvn, torch.ones(5, 2, 3),
    ...                   dist.Normal(torch.zeros(3), 1.0).to_event(1))
    (2, 3, torch.Size([]), 5)
    """
    for what, m in (
        ("transition_matrix", transition_matrix),
        ("observation_matrix", observation_matrix),
    ):
        if not isinstance(m, torch.Tensor) or m.dim() < 2:
            got = fmt_shape(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise ShapeError(f"{name}: {what} must be a tensor of at least two dims, got {got}.")
    for what, d in (
        ("initial_dist", initial_dist),
        ("transition_dist", transition_dist),
        ("observation_dist", observation_dist),
    ):
        if not isinstance(d, torch.distributions.Distribution):
            raise ArgumentError(f"{name}: {what} must be a distribution, got {type(d).__name__}.")
    hidden_dim, obs_dim = observation_matrix.shape[-2:]
    expected = [
        ("transition_matrix.shape[-2:]", transition_matrix.shape[-2:], (hidden_dim, hidden_dim)),
        ("initial_dist.event_shape", initial_dist.event_shape, (hidden_dim,)),
        ("transition_dist.event_shape", transition_dist.event_shape, (hidden_dim,)),
        ("observation_dist.event_shape", observation_dist.event_shape, (obs_dim,)),
    ]
    for what, got, want in expected:
        if tuple(got) != want:
            raise ShapeError(
                f"{name}: {what} is {fmt_shape(got)} but observation_matrix has shape "
                f"{fmt_shape(observation_matrix.shape)} (hidden_dim={hidden_dim}, "
                f"obs_dim={obs_dim}), so it must be {fmt_shape(want)}."
            )
    batch_shape, time = hmm_shapes(
        name,
        [
            *extra,
            ("initial_dist.batch_shape + (1,)", (*initial_dist.batch_shape, 1)),
            ("transition_matrix.shape[:-2]", transition_matrix.shape[:-2]),
            ("transition_dist.batch_shape", transition_dist.batch_shape),
            ("observation_matrix.shape[:-2]", observation_matrix.shape[:-2]),
            ("observation_dist.batch_shape", observation_dist.batch_shape),
        ],
    )
    return hidden_dim, obs_dim, batch_shape, time


class HiddenMarkovModel(TorchDistribution):
    """Base class of the HMM distributions: the ``duration`` logic and value shape checks.

    ``duration`` is the length of the time axis, ``event_shape[0]``. It is inferred from
    per-step parameters; for homogeneous parameters it may be given, which fixes the event shape
    and enables drawing.

    >>> import torch, engine.distributions as dist
    >>> d = dist.DiscreteHMM(torch.zeros(2), torch.zeros(2, 2), dist.Normal(torch.zeros(2), 1.0),
    ...                      duration=4)
    >>> d.event_shape, d.sample().shape
    (torch.Size([4]), torch.Size([4]))
    """

    def __init__(
        self,
        duration: int | None,
        batch_shape: Sequence[int],
        event_shape: Sequence[int],
        validate_args: bool | None = None,
    ) -> None:
        event_shape = torch.Size(event_shape)
        if duration is not None:
            if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
                raise ArgumentError(
                    f"{type(self).__name__}: duration must be a positive int (the number of time "
                    f"steps), got {duration!r}."
                )
            if event_shape[0] not in (1, duration):
                raise ShapeError(
                    f"{type(self).__name__}: duration={duration} but the parameters are given "
                    f"for {event_shape[0]} time steps (event_shape {fmt_shape(event_shape)}). "
                    "Fix: drop duration, or give per-step parameters of that many steps."
                )
            event_shape = torch.Size((duration,)) + event_shape[1:]
        elif event_shape[0] != 1:
            duration = event_shape[0]
        self._duration = duration
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def duration(self) -> int | None:
        """The number of time steps, or None when homogeneous parameters leave it open."""
        return self._duration

    def _require_duration(self, method: str) -> int:
        if self._duration is None:
            raise ArgumentError(
                f"{type(self).__name__}.{method}(): every parameter is shared by all time "
                "steps, so the number of steps to draw is unknown. Fix: pass duration=T when "
                "building the distribution."
            )
        return self._duration

    def _check_value(self, value: torch.Tensor) -> int:
        """Raise a readable error unless ``value`` ends in ``(T,) + event_shape[1:]`` with a
        ``T`` this distribution can score; return ``T``. Checks the support under validation."""
        if not isinstance(value, torch.Tensor):
            raise ArgumentError(
                f"{type(self).__name__}.log_prob: the value must be a tensor, got "
                f"{type(value).__name__}."
            )
        event_dim = len(self.event_shape)
        inner = self.event_shape[1:]
        if value.dim() < event_dim or value.shape[value.dim() - len(inner) :] != inner:
            raise ShapeError(
                f"{type(self).__name__}: a value must have shape (..., num_steps) + "
                f"{fmt_shape(inner)} (time, then each observation's shape), got "
                f"{fmt_shape(value.shape)}. Fix: put time in dim {-event_dim} of the value."
            )
        steps = value.size(-event_dim)
        fixed = self.event_shape[0]
        if self._duration is not None and steps != fixed:
            raise ShapeError(
                f"{type(self).__name__}: the value has {steps} time steps (shape "
                f"{fmt_shape(value.shape)}) but the distribution has {fixed} (event_shape "
                f"{fmt_shape(self.event_shape)})."
            )
        if self._validate_args:
            ok = self.support.check(value)
            if not bool(ok.all()):
                raise self._support_error(value)
        return steps

    def _support_error(self, value: torch.Tensor) -> Exception:
        from engine.errors import SupportError

        return SupportError(
            f"{type(self).__name__}.log_prob: the value lies outside the support "
            f"{self.support} of the observations (shape {fmt_shape(value.shape)})."
        )

    def _validate_sample(self, value: torch.Tensor) -> None:
        self._check_value(value)
