"""Affine coupling flows (RealNVP, Dinh et al., 2017): the first ``split_dim`` entries pass
through, the rest are scaled and shifted by amounts a network computes from the first part.
One network call in either direction; plain (``AffineCoupling``/``affine_coupling``) and
conditional (``ConditionalAffineCoupling``/``conditional_affine_coupling``).

With ``dim < -1`` the split runs along that dim of a multi-dim event (images, say): the event
is the last ``-dim`` dims, and the network sees the first part flattened.

>>> t = affine_coupling(4)
>>> x = torch.randn(3, 4)
>>> torch.allclose(t.inv(t(x)), x, atol=1e-5)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.distributions import constraints

from engine.distributions.affine_autoregressive import clamp_preserve_gradients
from engine.distributions.conditional import ConditionalTransformModule
from engine.distributions.orthonormal_transforms import RealEventAlongDim
from engine.distributions.spline_coupling import check_split
from engine.distributions.torch_transform import JointLogDetTransform, TransformModule
from engine.errors import ArgumentError


class ConditionedAffineCoupling(RealEventAlongDim, JointLogDetTransform):
    """``y[:d] = x[:d]``, ``y[d:] = exp(log_scale) * x[d:] + mean`` along ``dim``, where
    ``(mean, log_scale) = hypernet(x[:d])`` (flattened over the event), the log-scale clipped
    to ``[log_scale_min_clip, log_scale_max_clip]``.

    >>> net = lambda x1: (torch.ones_like(x1), torch.zeros_like(x1))  # shift by one
    >>> ConditionedAffineCoupling(1, net)(torch.tensor([5.0, 5.0]))
    tensor([5., 6.])
    """

    bijective = True

    def __init__(
        self,
        split_dim: int,
        hypernet: Callable[[torch.Tensor], Any],
        *,
        dim: int = -1,
        log_scale_min_clip: float = -5.0,
        log_scale_max_clip: float = 3.0,
    ) -> None:
        if dim >= 0:
            raise ArgumentError(f"AffineCoupling needs a negative dim (an event dim), got {dim}")
        super().__init__(cache_size=1)
        self.split_dim = split_dim
        self.nn = hypernet
        self.dim = dim
        self.log_scale_min_clip = log_scale_min_clip
        self.log_scale_max_clip = log_scale_max_clip

    def _mean_and_log_scale(
        self, x1: torch.Tensor, x2_shape: torch.Size
    ) -> tuple[torch.Tensor, torch.Tensor]:
        event = -self.dim
        flat = x1.reshape(*x1.shape[: x1.dim() - event], -1)
        mean, log_scale = self.nn(flat)
        target = (*mean.shape[:-1], *x2_shape[len(x2_shape) - event :])
        mean, log_scale = mean.reshape(target), log_scale.reshape(target)
        log_scale = clamp_preserve_gradients(
            log_scale, self.log_scale_min_clip, self.log_scale_max_clip
        )
        return mean, log_scale

    def _split(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = v.shape[self.dim]
        return v.narrow(self.dim, 0, self.split_dim), v.narrow(
            self.dim, self.split_dim, size - self.split_dim
        )

    def _join(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        # A context with batch dims of its own can widen the second part's batch shape.
        event = -self.dim
        batch = torch.broadcast_shapes(
            first.shape[: first.dim() - event], second.shape[: second.dim() - event]
        )
        first = first.expand(*batch, *first.shape[first.dim() - event :])
        second = second.expand(*batch, *second.shape[second.dim() - event :])
        return torch.cat([first, second], self.dim)

    def _log_det(self, log_scale: torch.Tensor) -> torch.Tensor:
        return log_scale.flatten(log_scale.dim() + self.dim).sum(-1)

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = self._split(x)
        mean, log_scale = self._mean_and_log_scale(x1, x2.shape)
        y2 = torch.exp(log_scale) * x2 + mean
        return self._join(x1, y2), self._log_det(log_scale)

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1, y2 = self._split(y)
        mean, log_scale = self._mean_and_log_scale(y1, y2.shape)
        x2 = (y2 - mean) * torch.exp(-log_scale)
        return self._join(y1, x2), self._log_det(log_scale)


class AffineCoupling(ConditionedAffineCoupling, TransformModule):
    """A learnable affine coupling: ``hypernet`` (an ``nn.Module``, e.g. ``DenseNN(split_dim,
    [...], param_dims=[D - split_dim, D - split_dim])``) is a submodule, so its weights train.

    >>> from engine.nn import DenseNN
    >>> t = AffineCoupling(2, DenseNN(2, [10], param_dims=[3, 3]))
    >>> t(torch.randn(7, 5)).shape
    torch.Size([7, 5])
    """

    def __init__(
        self,
        split_dim: int,
        hypernet: nn.Module,
        *,
        dim: int = -1,
        log_scale_min_clip: float = -5.0,
        log_scale_max_clip: float = 3.0,
    ) -> None:
        super().__init__(
            split_dim,
            hypernet,
            dim=dim,
            log_scale_min_clip=log_scale_min_clip,
            log_scale_max_clip=log_scale_max_clip,
        )


class ConditionalAffineCoupling(ConditionalTransformModule):
    """An affine coupling whose network also sees a context: ``hypernet(x1, context)``
    (e.g. a ``ConditionalDenseNN``); ``condition(context)`` gives the coupling for it.

    >>> t = conditional_affine_coupling(4, context_dim=2)
    >>> t.condition(torch.zeros(2))(torch.randn(3, 4)).shape
    torch.Size([3, 4])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, split_dim: int, hypernet: nn.Module, **kwargs: Any) -> None:
        super().__init__()
        self.split_dim = split_dim
        self.nn = hypernet
        self.kwargs = kwargs

    def condition(self, context: torch.Tensor) -> ConditionedAffineCoupling:
        return ConditionedAffineCoupling(
            self.split_dim, partial(self.nn, context=context), **self.kwargs
        )


def _split_and_sizes(
    owner: str, input_dim: int | Sequence[int], split_dim: int | None, dim: int
) -> tuple[int, int, int]:
    """``(split_dim, first_part_size, second_part_size)``, the sizes flattened over the event."""
    if isinstance(input_dim, int):
        if dim != -1:
            raise ArgumentError(
                f"{owner}(dim={dim}) needs input_dim as the event shape (a tuple of {-dim} sizes)"
            )
        shape: tuple[int, ...] = (input_dim,)
    else:
        shape = tuple(input_dim)
        if len(shape) != -dim:
            raise ArgumentError(
                f"{owner}: input_dim={shape} must be the event shape from dim {dim} on "
                f"({-dim} sizes)"
            )
    size, rest = shape[0], math.prod(shape[1:])
    if split_dim is None:
        split_dim = size // 2
    check_split(owner, size, split_dim)
    return split_dim, split_dim * rest, (size - split_dim) * rest


def affine_coupling(
    input_dim: int | Sequence[int],
    hidden_dims: Sequence[int] | None = None,
    split_dim: int | None = None,
    dim: int = -1,
    **kwargs: Any,
) -> AffineCoupling:
    """An :class:`AffineCoupling` with a ``DenseNN`` (hidden layers ``hidden_dims``, default
    ``[10 * D]`` for ``D`` entries in the event); ``split_dim`` defaults to half the size of
    ``dim``; with ``dim < -1`` give ``input_dim`` as the event shape.

    >>> affine_coupling((4, 3), dim=-2)(torch.randn(5, 4, 3)).shape
    torch.Size([5, 4, 3])
    """
    from engine.nn.dense_nn import DenseNN  # engine.nn imports engine.distributions at its top

    split_dim, first, second = _split_and_sizes("affine_coupling", input_dim, split_dim, dim)
    if hidden_dims is None:
        hidden_dims = [10 * (first + second)]
    net = DenseNN(first, hidden_dims, param_dims=[second, second])
    return AffineCoupling(split_dim, net, dim=dim, **kwargs)


def conditional_affine_coupling(
    input_dim: int | Sequence[int],
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    split_dim: int | None = None,
    dim: int = -1,
    **kwargs: Any,
) -> ConditionalAffineCoupling:
    """A :class:`ConditionalAffineCoupling` with a ``ConditionalDenseNN`` (defaults as for
    :func:`affine_coupling`).

    >>> t = conditional_affine_coupling((4, 3), context_dim=2, dim=-2)
    >>> t.condition(torch.zeros(2))(torch.randn(5, 4, 3)).shape
    torch.Size([5, 4, 3])
    """
    from engine.nn.dense_nn import ConditionalDenseNN  # see affine_coupling

    split_dim, first, second = _split_and_sizes(
        "conditional_affine_coupling", input_dim, split_dim, dim
    )
    if hidden_dims is None:
        hidden_dims = [10 * (first + second)]
    net = ConditionalDenseNN(first, context_dim, hidden_dims, param_dims=[second, second])
    return ConditionalAffineCoupling(split_dim, net, dim=dim, **kwargs)
