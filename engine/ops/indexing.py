"""``Vindex``: indexing that treats the dims left of the indexed ones as batch dims, so it stays
right when the index is an enumerated value.

``probs[z]`` with ``probs`` of shape ``(3, 4)`` and an enumerated ``z`` of shape ``(3, 1)`` gives
``(3, 1, 4)``: correct. But with ``probs`` batched over a plate, ``(N, 3, 4)``, ``probs[z]``
indexes the plate dim, not the category dim. ``Vindex(probs)[..., z, :]`` indexes the dims named
after the ``...`` and broadcasts the index with the batch dims on the left, as torch's
``gather`` would, so the enumerated dim stays on the left where enumeration put it.

>>> import torch
>>> probs = torch.rand(5, 3, 4)                  # batch 5, then 3 x 4 tables
>>> z = torch.arange(3).reshape(3, 1)            # an enumerated value, its dim at -2
>>> Vindex(probs)[..., z, :].shape               # batch (3, 1) with (5,) -> (3, 5), then 4
torch.Size([3, 5, 4])
"""

from __future__ import annotations

from typing import Any

import torch


def vindex(tensor: torch.Tensor, args: tuple[Any, ...]) -> torch.Tensor:
    """Index ``tensor[..., *args]`` with every tensor or integer index broadcast against the
    batch dims (those left of the indexed dims); ``:`` keeps a dim, and only trailing ``:`` are
    allowed after the last index. Without the leading ``...``, the indices take the leftmost
    dims (no batch dims) and the dims right of them are kept.

    >>> x = torch.arange(6.0).reshape(2, 3)
    >>> vindex(x, (Ellipsis, torch.tensor([2, 0])))
    tensor([2., 3.])
    """
    batched = bool(args) and args[0] is Ellipsis
    indices = list(args[1:] if batched else args)
    kept = 0
    while indices and _is_full_slice(indices[-1]):
        indices.pop()
        kept += 1
    if not batched:  # x[i, j] indexes the leftmost dims and keeps the rest, as plain indexing
        kept = tensor.dim() - len(indices)
    if any(_is_full_slice(index) for index in indices) or any(
        not isinstance(index, int | torch.Tensor) for index in indices
    ):
        raise IndexError(
            "Vindex takes integers or integer tensors for the indexed dims, and `:` only for "
            f"trailing dims it keeps; got {args[1:]!r}"
        )
    indexed = len(indices)
    batch_dims = tensor.dim() - indexed - kept
    if batch_dims < 0:
        raise IndexError(
            f"Vindex: a tensor of shape {tuple(tensor.shape)} has too few dims for {indexed} "
            f"indexed and {kept} kept dims"
        )
    index_tensors = [torch.as_tensor(index, device=tensor.device) for index in indices]
    batch_shape = torch.broadcast_shapes(
        tensor.shape[:batch_dims], *(index.shape for index in index_tensors)
    )
    width = len(batch_shape)
    batch_index = []
    for dim in range(batch_dims):
        view = [1] * width
        view[width - batch_dims + dim] = tensor.shape[dim]
        batch_index.append(torch.arange(tensor.shape[dim], device=tensor.device).reshape(view))
    return tensor[(*batch_index, *index_tensors)]


def _is_full_slice(index: Any) -> bool:
    return isinstance(index, slice) and index == slice(None)


class Vindex:
    """``Vindex(x)[..., i, j]``: :func:`vindex` with indexing syntax (see the module docstring).

    >>> Vindex(torch.eye(3))[..., torch.tensor([[0], [1]]), 1].shape
    torch.Size([2, 1])
    """

    def __init__(self, tensor: torch.Tensor):
        self._tensor = tensor

    def __getitem__(self, args: Any) -> torch.Tensor:
        if not isinstance(args, tuple):
            args = (args,)
        return vindex(self._tensor, args)
