"""Householder flows (Tomczak and Welling, 2016): products of reflections
``x -> x - 2 (u . x) u`` across hyperplanes with unit normals ``u``. Volume-preserving (log-Jacobian
zero) and their own inverse, so they mix coordinates between other flows at no cost; plain
(``Householder``/``householder``) and conditional (``ConditionalHouseholder``/
``conditional_householder``).

>>> t = householder(3, count_transforms=2)
>>> x = torch.randn(4, 3)
>>> torch.allclose(t.inv(t(x)), x, atol=1e-5), torch.allclose(t(x).norm(dim=-1), x.norm(dim=-1))
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import constraints

from engine.distributions.torch_transform import TransformModule
from engine.distributions.transforms._parametrized import (
    HypernetConditional,
    ParametrizedTransform,
    default_hidden_dims,
    dense_hypernet,
    unflatten_last,
    uniform_parameter,
)
from engine.errors import ArgumentError


def _reflect(x: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    unit = normal / normal.norm(dim=-1, keepdim=True)
    return x - 2 * (unit * x).sum(-1, keepdim=True) * unit


class ConditionedHouseholder(ParametrizedTransform):
    """Reflections with given normals ``u_unnormed`` of shape ``(..., count, D)``, applied in
    order (they need not be unit vectors: each is normalised).

    >>> t = ConditionedHouseholder((torch.tensor([[1.0, 0.0]]),))
    >>> t(torch.tensor([3.0, 4.0]))
    tensor([-3.,  4.])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    volume_preserving = True

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        (normals,) = self.params()
        for i in range(normals.shape[-2]):
            x = _reflect(x, normals[..., i, :])
        return x

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        (normals,) = self.params()
        for i in reversed(range(normals.shape[-2])):
            y = _reflect(y, normals[..., i, :])
        return y

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(torch.broadcast_shapes(x.shape[:-1], y.shape[:-1]))


def _check_count(owner: str, count_transforms: int) -> None:
    if not isinstance(count_transforms, int) or count_transforms < 1:
        raise ArgumentError(
            f"{owner} needs count_transforms >= 1 (the number of reflections), got "
            f"{count_transforms!r}"
        )


def reflection_count(input_dim: int, count_transforms: int | None) -> int:
    """``count_transforms``, or Pyro's default number of reflections for ``input_dim`` entries
    (``input_dim // 2 + 1``) when it is None: what ``householder`` and ``sylvester`` use.

    >>> reflection_count(4, None), reflection_count(4, 2)
    (3, 2)
    """
    return input_dim // 2 + 1 if count_transforms is None else count_transforms


class Householder(ConditionedHouseholder, TransformModule):
    """``count_transforms`` learnable reflections of vectors of ``input_dim`` entries.

    >>> Householder(4, count_transforms=3).u_unnormed.shape
    torch.Size([3, 4])
    """

    def __init__(self, input_dim: int, count_transforms: int = 1) -> None:
        _check_count("Householder", count_transforms)
        super().__init__(None)
        self.input_dim = input_dim
        scale = 1.0 / input_dim**0.5
        self.u_unnormed = uniform_parameter(count_transforms, input_dim, scale=scale)

    def params(self) -> tuple[torch.Tensor, ...]:
        return (self.u_unnormed,)


class ConditionalHouseholder(HypernetConditional):
    """Reflections whose normals a network computes from the context (one output of
    ``count_transforms * input_dim`` entries).

    >>> t = conditional_householder(2, context_dim=3, count_transforms=2)
    >>> t.condition(torch.zeros(3))(torch.zeros(5, 2)).shape
    torch.Size([5, 2])
    """

    conditioned = ConditionedHouseholder
    count_params = 1

    def __init__(self, input_dim: int, nn: nn.Module, count_transforms: int = 1) -> None:
        _check_count("ConditionalHouseholder", count_transforms)
        super().__init__(nn)
        self.input_dim = input_dim
        self.count_transforms = count_transforms

    def shape_params(self, outputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        shape = (self.count_transforms, self.input_dim)
        return (unflatten_last(outputs[0], shape, type(self).__name__),)


def householder(input_dim: int, count_transforms: int | None = None) -> Householder:
    """A :class:`Householder` flow; ``count_transforms`` defaults to ``input_dim // 2 + 1``
    reflections.

    >>> householder(4).u_unnormed.shape
    torch.Size([3, 4])
    """
    return Householder(input_dim, count_transforms=reflection_count(input_dim, count_transforms))


def conditional_householder(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    count_transforms: int = 1,
) -> ConditionalHouseholder:
    """A :class:`ConditionalHouseholder` with a dense network from the context (hidden layers
    ``hidden_dims``, default ``[10 * input_dim, 10 * input_dim]``).

    >>> conditional_householder(2, 3, count_transforms=2).nn.param_dims
    [4]
    """
    _check_count("conditional_householder", count_transforms)
    hidden_dims = default_hidden_dims(hidden_dims, input_dim)
    net = dense_hypernet(context_dim, hidden_dims, [count_transforms * input_dim])
    return ConditionalHouseholder(input_dim, net, count_transforms=count_transforms)
