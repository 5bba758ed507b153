"""Generalised channel permutations (Glow's invertible 1x1 convolution, Kingma and Dhariwal,
2018): images ``(..., C, H, W)`` whose channels at every pixel are mixed by one invertible
``C x C`` matrix ``W = P L U`` (``P`` a fixed permutation, ``L`` unit lower-triangular, ``U``
upper-triangular with a positive diagonal), so ``log |det| = H W sum log U_ii``; plain
(``GeneralizedChannelPermute``/``generalized_channel_permute``) and conditional
(``ConditionalGeneralizedChannelPermute``/``conditional_generalized_channel_permute``).

>>> t = generalized_channel_permute(channels=3)
>>> x = torch.randn(2, 3, 4, 4)
>>> torch.allclose(t.inv(t(x)), x, atol=1e-5)
True
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
    dense_hypernet,
    unflatten_last,
)
from engine.errors import ArgumentError


def _permutation(owner: str, channels: int, permutation: torch.Tensor | None) -> torch.Tensor:
    if permutation is None:
        return torch.randperm(channels)
    permutation = torch.as_tensor(permutation, dtype=torch.long)
    if not torch.equal(permutation.sort().values, torch.arange(channels)):
        raise ArgumentError(
            f"{owner}: permutation {permutation.tolist()} must hold each channel 0..{channels - 1} "
            "once"
        )
    return permutation


class ConditionedGeneralizedChannelPermute(ParametrizedTransform):
    """A channel mixing with given ``(L_raw, U_raw)``, each ``(..., C, C)``: ``L`` is the
    strict lower triangle of ``L_raw`` plus the identity, ``U`` the strict upper triangle of
    ``U_raw`` plus ``exp`` of its diagonal; ``permutation`` orders the channels (``P``).

    >>> zero = torch.zeros(2, 2)
    >>> t = ConditionedGeneralizedChannelPermute((zero, zero), permutation=torch.tensor([1, 0]))
    >>> t(torch.tensor([[[1.0]], [[2.0]]])).flatten()  # W = P: the channels swap
    tensor([2., 1.])
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(self, params: object, permutation: torch.Tensor) -> None:
        super().__init__(params)
        self.permutation = torch.as_tensor(permutation, dtype=torch.long)

    def _triangles(self) -> tuple[torch.Tensor, torch.Tensor]:
        l_raw, u_raw = self.params()
        size = l_raw.shape[-1]
        eye = torch.eye(size, dtype=l_raw.dtype, device=l_raw.device)
        # Masks rather than tril/triu: those tiny kernels are slow to schedule under load.
        rows = torch.arange(size, device=l_raw.device)
        strictly_lower = rows[:, None] > rows[None, :]
        lower = l_raw * strictly_lower + eye
        upper = u_raw * strictly_lower.T + torch.diag_embed(u_raw.diagonal(dim1=-2, dim2=-1).exp())
        return lower, upper

    def weight(self) -> torch.Tensor:
        """The channel-mixing matrix ``W = P L U``."""
        lower, upper = self._triangles()
        return (lower @ upper)[..., self.permutation.to(lower.device), :]

    @staticmethod
    def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        # Channels last, so the (..., C, C) matrix broadcasts over the pixels.
        pixels = image.movedim(-3, -1).unsqueeze(-1)
        mixed = matrix.unsqueeze(-3).unsqueeze(-3) @ pixels
        return mixed.squeeze(-1).movedim(-1, -3)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self._mix(self.weight(), x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        lower, upper = self._triangles()
        eye = torch.eye(lower.shape[-1], dtype=lower.dtype, device=lower.device)
        # W^-1 = U^-1 L^-1 P^T, with both triangular solves exact.
        lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        upper_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
        inverse = (upper_inv @ lower_inv)[..., :, self.permutation.to(lower.device)]
        return self._mix(inverse, y)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, u_raw = self.params()
        height, width = x.shape[-2:]
        log_det = height * width * u_raw.diagonal(dim1=-2, dim2=-1).sum(-1)
        return log_det.expand(torch.broadcast_shapes(log_det.shape, x.shape[:-3]))


class GeneralizedChannelPermute(ConditionedGeneralizedChannelPermute, TransformModule):
    """A learnable channel mixing of ``channels`` channels; it starts as the permutation
    ``permutation`` (random if not given).

    >>> t = GeneralizedChannelPermute(channels=3, permutation=torch.tensor([2, 0, 1]))
    >>> t.weight()
    tensor([[0., 0., 1.],
            [1., 0., 0.],
            [0., 1., 0.]], grad_fn=<IndexBackward0>)
    """

    def __init__(self, channels: int = 3, permutation: torch.Tensor | None = None) -> None:
        permutation = _permutation("GeneralizedChannelPermute", channels, permutation)
        super().__init__(None, permutation)
        self.channels = channels
        self.L_raw = nn.Parameter(torch.zeros(channels, channels))
        self.U_raw = nn.Parameter(torch.zeros(channels, channels))

    def params(self) -> tuple[torch.Tensor, ...]:
        return self.L_raw, self.U_raw


class ConditionalGeneralizedChannelPermute(HypernetConditional):
    """A channel mixing whose ``(L_raw, U_raw)`` a network computes from the context (two
    outputs of ``channels ** 2`` entries).

    >>> t = conditional_generalized_channel_permute(context_dim=2, channels=3)
    >>> t.condition(torch.zeros(2))(torch.zeros(5, 3, 4, 4)).shape
    torch.Size([5, 3, 4, 4])
    """

    conditioned = ConditionedGeneralizedChannelPermute
    count_params = 2
    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)

    def __init__(
        self, nn: nn.Module, channels: int = 3, permutation: torch.Tensor | None = None
    ) -> None:
        permutation = _permutation("ConditionalGeneralizedChannelPermute", channels, permutation)
        super().__init__(nn, permutation=permutation)
        self.channels = channels

    def shape_params(self, outputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        shape = (self.channels, self.channels)
        return tuple(unflatten_last(out, shape, type(self).__name__) for out in outputs)


def generalized_channel_permute(
    channels: int = 3, permutation: torch.Tensor | None = None
) -> GeneralizedChannelPermute:
    """A :class:`GeneralizedChannelPermute` (Pyro's helper; keyword arguments as for the
    class).

    >>> generalized_channel_permute(channels=4).L_raw.shape
    torch.Size([4, 4])
    """
    return GeneralizedChannelPermute(channels=channels, permutation=permutation)


def conditional_generalized_channel_permute(
    context_dim: int, channels: int = 3, hidden_dims: Sequence[int] | None = None
) -> ConditionalGeneralizedChannelPermute:
    """A :class:`ConditionalGeneralizedChannelPermute` with a dense network from the context
    (hidden layers ``hidden_dims``, default ``[10 * channels ** 2]``).

    >>> conditional_generalized_channel_permute(2, channels=3).nn.param_dims
    [9, 9]
    """
    if hidden_dims is None:
        hidden_dims = [10 * channels * channels]
    net = dense_hypernet(context_dim, hidden_dims, [channels * channels] * 2)
    return ConditionalGeneralizedChannelPermute(net, channels=channels)
