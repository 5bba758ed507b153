"""Small tensor helpers shared by the distributions and, later, by the inference code.

They live here rather than in ``engine.ops`` because the distributions package sits below every
other engine package and must import none of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Number

import torch

from engine.errors import ShapeError, fmt_shape


def broadcast_shape(*shapes: Iterable[int]) -> torch.Size:
    """Broadcast shapes the way torch broadcasts tensors, raising a readable ``ShapeError``.

    Plain Python on purpose: ``torch.broadcast_shapes`` costs microseconds per call, and shapes
    are broadcast for every site of every step.

    >>> broadcast_shape((3, 1), (4,))
    torch.Size([3, 4])
    """
    shapes = [tuple(s) for s in shapes]
    # No ``max(..., default=0)``: torch.compile cannot trace that keyword.
    ndim = max([len(s) for s in shapes] or [0])
    out = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape, start=ndim - len(shape)):
            if size == out[i] or size == 1:
                continue
            if out[i] != 1:
                listed = ", ".join(fmt_shape(s) for s in shapes)
                raise ShapeError(
                    f"Shapes {listed} do not broadcast: aligned from the right, each pair of dims "
                    "must be equal or one of them 1."
                )
            out[i] = size
    return torch.Size(out)


def sum_rightmost(value: torch.Tensor | Number, dim: int) -> torch.Tensor | Number:
    """Sum out the ``dim`` rightmost dims of ``value`` (numbers pass through untouched).

    >>> sum_rightmost(torch.ones(2, 3, 4), 2).shape
    torch.Size([2])
    """
    if isinstance(value, Number) or dim == 0:
        return value
    return value.reshape((*value.shape[: value.dim() - dim], -1)).sum(-1)


def is_identically_zero(x: object) -> bool:
    """True only for the Python number 0, so a scalar zero term can be skipped without a sync.

    >>> is_identically_zero(0), is_identically_zero(torch.zeros(()))
    (True, False)
    """
    return isinstance(x, Number) and x == 0


def is_identically_one(x: object) -> bool:
    """True only for the Python number 1 (tensors are never inspected: that would sync a GPU).

    >>> is_identically_one(1.0), is_identically_one(torch.ones(()))
    (True, False)
    """
    return isinstance(x, Number) and x == 1


def scale_and_mask(
    tensor: torch.Tensor | Number,
    scale: torch.Tensor | Number = 1.0,
    mask: torch.Tensor | bool | None = None,
) -> torch.Tensor | Number:
    """Multiply by ``scale`` and zero out entries where ``mask`` is False.

    ``torch.where`` rather than multiplication by the mask, so a ``-inf`` or ``nan`` at a masked
    entry becomes an exact 0 instead of ``nan``.

    >>> scale_and_mask(torch.tensor([1.0, -float("inf")]), 2.0, torch.tensor([True, False]))
    tensor([2., 0.])
    """
    if is_identically_zero(tensor):
        return tensor
    if mask is None or mask is True:
        return tensor if is_identically_one(scale) else tensor * scale
    if mask is False:
        return 0.0 if isinstance(tensor, Number) else torch.zeros_like(tensor)
    scaled = tensor if is_identically_one(scale) else tensor * scale
    return torch.where(mask, scaled, scaled.new_zeros(()))
