"""Planar flows (Rezende and Mohamed, 2015): ``y = x + u tanh(w . x + b)``, plain
(``Planar``/``planar``) and conditional (``ConditionalPlanar``/``conditional_planar``).

The vector ``u`` is adjusted so that ``w . u >= -1``, which keeps the map invertible; the inverse
has no closed form, so the flow draws and scores its own draws.

>>> t = planar(3)
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


class ConditionedPlanar(ParametrizedTransform):
    """A planar flow with given parameters ``(bias, u, w)`` of shapes ``(..., 1)``,
    ``(..., D)``, ``(..., D)``: what ``ConditionalPlanar.condition`` returns.

    >>> w, u = torch.tensor([1.0, 0.0]), torch.tensor([-5.0, 0.0])  # w . u = -5 folds space
    >>> t = ConditionedPlanar((torch.zeros(1), u, w))
    >>> x = torch.zeros(2)
    >>> t.log_abs_det_jacobian(x, t(x)) > -10  # u moved so that w . u > -1: still invertible
    tensor(True)
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def _pieces(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bias, u, w = self.params()
        # Rezende and Mohamed's fix: move u along w so that w . u = -1 + softplus(w . u).
        wu = (w * u).sum(-1, keepdim=True)
        u_hat = u + (F.softplus(wu) - 1 - wu) * w / w.pow(2).sum(-1, keepdim=True)
        activation = torch.tanh((w * x).sum(-1, keepdim=True) + bias)
        return u_hat, w, activation

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        u_hat, _, activation = self._pieces(x)
        return x + u_hat * activation

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise no_inverse(type(self).__name__)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Matrix determinant lemma: det(I + u_hat psi^T) = 1 + psi . u_hat,
        # psi = (1 - tanh^2) w.
        u_hat, w, activation = self._pieces(x)
        psi = (1 - activation.pow(2)) * w
        return (1 + (psi * u_hat).sum(-1)).abs().log()


class Planar(ConditionedPlanar, TransformModule):
    """A learnable planar flow on vectors of ``input_dim`` entries.

    >>> sorted(name for name, _ in Planar(2).named_parameters())
    ['bias', 'u', 'w']
    """

    def __init__(self, input_dim: int) -> None:
        super().__init__(None)
        scale = 1.0 / input_dim**0.5
        self.bias = uniform_parameter(1, scale=scale)
        self.u = uniform_parameter(input_dim, scale=scale)
        self.w = uniform_parameter(input_dim, scale=scale)

    def params(self) -> tuple[torch.Tensor, ...]:
        return self.bias, self.u, self.w


class ConditionalPlanar(HypernetConditional):
    """A planar flow whose ``(bias, u, w)`` a network computes from the context (its outputs:
    1, ``D`` and ``D`` entries).

    >>> t = conditional_planar(2, context_dim=3)
    >>> t.condition(torch.zeros(3))(torch.zeros(5, 2)).shape
    torch.Size([5, 2])
    """

    conditioned = ConditionedPlanar
    count_params = 3

    def __init__(self, nn: nn.Module) -> None:
        super().__init__(nn)


def planar(input_dim: int) -> Planar:
    """A :class:`Planar` flow on ``input_dim`` entries (Pyro's helper).

    >>> planar(4).u.shape
    torch.Size([4])
    """
    return Planar(input_dim)


def conditional_planar(
    input_dim: int, context_dim: int, hidden_dims: Sequence[int] | None = None
) -> ConditionalPlanar:
    """A :class:`ConditionalPlanar` with a dense network from the context (hidden layers
    ``hidden_dims``, default ``[10 * input_dim, 10 * input_dim]``).

    >>> conditional_planar(2, 3).nn.param_dims
    [1, 2, 2]
    """
    hidden_dims = default_hidden_dims(hidden_dims, input_dim)
    return ConditionalPlanar(dense_hypernet(context_dim, hidden_dims, [1, input_dim, input_dim]))
