"""Relaxed discrete distributions with straight-through draws.

A relaxed (Concrete / Gumbel-softmax) distribution draws points inside the simplex (or the unit
interval) that approach one-hot vectors (or 0/1) as the temperature falls. The straight-through
variants here hand out the discrete value itself, the one-hot vector of the largest coordinate (or
the rounded number), so a model sees genuinely discrete data, while gradients flow back as if the
relaxed draw had been used: the backward pass treats the rounding as the identity.

``log_prob`` of a value these distributions drew scores the relaxed draw behind it (it rides on
the returned tensor), so ``rsample`` followed by ``log_prob`` is the relaxed distribution's own
pair and its gradients are unbiased for the relaxed objective.

>>> import torch
>>> d = RelaxedOneHotCategoricalStraightThrough(torch.tensor(0.5), probs=torch.ones(3) / 3)
>>> x = d.rsample()
>>> sorted(x.tolist()), bool(d.log_prob(x).isfinite())
([0.0, 0.0, 1.0], True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from engine.distributions.torch_wrappers import RelaxedBernoulli, RelaxedOneHotCategorical

# The attribute on a straight-through draw that keeps the relaxed draw it was rounded from.
_RELAXED = "_relaxed_value"


class _StraightThrough(torch.autograd.Function):
    """Forward: the rounded value. Backward: the gradient passes unchanged to the relaxed one."""

    @staticmethod
    def forward(ctx: object, relaxed: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
        return rounded

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def _straight_through(relaxed: torch.Tensor, rounding: Callable) -> torch.Tensor:
    value = _StraightThrough.apply(relaxed, rounding(relaxed.detach()))
    setattr(value, _RELAXED, relaxed)
    return value


def _relaxed_of(value: torch.Tensor) -> torch.Tensor:
    """The relaxed draw behind a straight-through draw; any other value as it is."""
    return getattr(value, _RELAXED, value)


def _one_hot_of_largest(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x).scatter_(-1, x.argmax(-1, keepdim=True), 1.0)


class RelaxedOneHotCategoricalStraightThrough(RelaxedOneHotCategorical):
    """``RelaxedOneHotCategorical`` whose ``rsample`` returns one-hot vectors with straight-through
    gradients (see the module docstring).

    >>> import torch
    >>> probs = torch.tensor([0.2, 0.8], requires_grad=True)
    >>> x = RelaxedOneHotCategoricalStraightThrough(torch.tensor(0.3), probs=probs).rsample()
    >>> x.sum().item(), x.requires_grad
    (1.0, True)
    """

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return _straight_through(super().rsample(sample_shape), _one_hot_of_largest)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(_relaxed_of(value))


class RelaxedBernoulliStraightThrough(RelaxedBernoulli):
    """``RelaxedBernoulli`` whose ``rsample`` returns 0 or 1 with straight-through gradients (see
    the module docstring).

    >>> import torch
    >>> x = RelaxedBernoulliStraightThrough(torch.tensor(0.5), probs=torch.full((4,), 0.5))
    >>> set(x.rsample().tolist()) <= {0.0, 1.0}
    True
    """

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return _straight_through(super().rsample(sample_shape), torch.round)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(_relaxed_of(value))
