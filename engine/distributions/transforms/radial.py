"""Radial flows (Rezende and Mohamed, 2015): ``y = x + beta (x - x0) / (alpha + |x - x0|)``,
which contracts or expands space around a reference point ``x0``; plain (``Radial``/``radial``)
and conditional (``ConditionalRadial``/``conditional_radial``).

``alpha > 0`` and ``beta >= -alpha`` keep the map invertible; the inverse has no closed form.

>>> t = radial(3)
>>> x = torch.randn(4, 3)
>>> t.log_abs_det_jacobian(x, t(x)).shape
torch.Size([4])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import constraints

from engine.distributions.torch_transform import TransformModule
from engine.distributions.transforms._parametrized import (
    HypernetConditional,
    ParametrizedTransform,
    default_hidden_dims,
    dense_hypernet,
    no_inverse,
    uniform_parameter,
)


class ConditionedRadial(ParametrizedTransform):
    """A radial flow with given parameters ``(x0, alpha_prime, beta_prime)`` of shapes
    ``(..., D)``, ``(..., 1)``, ``(..., 1)``; ``alpha = softplus(alpha_prime)`` and
    ``beta = -alpha + softplus(beta_prime)``.

    >>> x0, a, b = torch.zeros(2), torch.zeros(1), torch.full((1,), -30.0)
    >>> ConditionedRadial((x0, a, b))(torch.tensor([3.0, 4.0]))  # beta = -alpha: pulled to x0
    tensor([2.6347, 3.5130])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def _pieces(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x0, alpha_prime, beta_prime = self.params()
        alpha = F.softplus(alpha_prime)
        beta = -alpha + F.softplus(beta_prime)
        diff = x - x0
        r = diff.norm(dim=-1, keepdim=True)
        h = 1.0 / (alpha + r)
        return diff, r, h, beta

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        diff, _, h, beta = self._pieces(x)
        return x + beta * h * diff

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise no_inverse(type(self).__name__)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # J = (1 + beta h) I + beta h'(r) (x - x0)(x - x0)^T / r with h' = -h^2: D - 1
        # eigenvalues 1 + beta h (across the radius) and 1 + beta h - beta h^2 r (along it).
        _, r, h, beta = self._pieces(x)
        across = 1 + beta * h
        along = across - beta * h.pow(2) * r
        dim = x.shape[-1]
        return ((dim - 1) * across.log() + along.log()).squeeze(-1)


class Radial(ConditionedRadial, TransformModule):
    """A learnable radial flow on vectors of ``input_dim`` entries.

    >>> sorted(name for name, _ in Radial(2).named_parameters())
    ['alpha_prime', 'beta_prime', 'x0']
    """

    def __init__(self, input_dim: int) -> None:
        super().__init__(None)
        scale = 1.0 / input_dim**0.5
        self.x0 = uniform_parameter(input_dim, scale=scale)
        self.alpha_prime = uniform_parameter(1, scale=scale)
        self.beta_prime = uniform_parameter(1, scale=scale)

    def params(self) -> tuple[torch.Tensor, ...]:
        return self.x0, self.alpha_prime, self.beta_prime


class ConditionalRadial(HypernetConditional):
    """A radial flow whose ``(x0, alpha_prime, beta_prime)`` a network computes from the
    context (its outputs: ``D``, 1 and 1 entries).

    >>> t = conditional_radial(2, context_dim=3)
    >>> t.condition(torch.zeros(3))(torch.zeros(5, 2)).shape
    torch.Size([5, 2])
    """

    conditioned = ConditionedRadial
    count_params = 3

    def __init__(self, nn: nn.Module) -> None:
        super().__init__(nn)


def radial(input_dim: int) -> Radial:
    """A :class:`Radial` flow on ``input_dim`` entries (Pyro's helper).

    >>> radial(4).x0.shape
    torch.Size([4])
    """
    return Radial(input_dim)


def conditional_radial(
    input_dim: int, context_dim: int, hidden_dims: Sequence[int] | None = None
) -> ConditionalRadial:
    """A :class:`ConditionalRadial` with a dense network from the context (hidden layers
    ``hidden_dims``, default ``[10 * input_dim, 10 * input_dim]``).

    >>> conditional_radial(2, 3).nn.param_dims
    [2, 1, 1]
    """
    hidden_dims = default_hidden_dims(hidden_dims, input_dim)
    return ConditionalRadial(dense_hypernet(context_dim, hidden_dims, [input_dim, 1, 1]))
