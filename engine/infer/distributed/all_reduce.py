"""Moving many small tensors between the processes of a group in few collective operations.

A step of a data-parallel fit has one gradient per parameter: one collective operation each
would pay the group's latency once per parameter. :func:`summed_across` flattens them into
buckets (one per dtype and device, split where a bucket would pass ``bucket_bytes``), sums each
bucket across the processes in one ``all_reduce`` and copies the sums back in place.
:func:`copy_from_main` does the same with ``broadcast`` from rank 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist

from engine.infer.distributed.group import Group, collective

DEFAULT_BUCKET_BYTES = 25 * 2**20


def _buckets(tensors: Sequence[torch.Tensor], bucket_bytes: int) -> Iterator[list[torch.Tensor]]:
    """Consecutive runs of ``tensors`` of one dtype and device, each at most ``bucket_bytes``
    (a single larger tensor is a bucket of its own).

    >>> ts = [torch.zeros(2), torch.zeros(2), torch.zeros(2, dtype=torch.float64)]
    >>> [len(b) for b in _buckets(ts, 1 << 20)], [len(b) for b in _buckets(ts, 8)]
    ([2, 1], [1, 1, 1])
    """
    bucket: list[torch.Tensor] = []
    size = 0
    for tensor in tensors:
        nbytes = tensor.numel() * tensor.element_size()
        fits = bucket and (tensor.dtype, tensor.device) == (bucket[0].dtype, bucket[0].device)
        if bucket and (not fits or size + nbytes > bucket_bytes):
            yield bucket
            bucket, size = [], 0
        bucket.append(tensor)
        size += nbytes
    if bucket:
        yield bucket


def summed_across(
    tensors: Sequence[torch.Tensor],
    group: Group,
    what: str,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
) -> None:
    """Replace each tensor, in place, by its sum over the group's processes (``what`` names the
    operation in a failure's message)."""
    _bucket_by_bucket(tensors, group, what, bucket_bytes, lambda flat: dist.all_reduce(flat))


def copy_from_main(
    tensors: Sequence[torch.Tensor],
    group: Group,
    what: str,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
) -> None:
    """Replace each tensor, in place, by rank 0's."""
    _bucket_by_bucket(tensors, group, what, bucket_bytes, lambda flat: dist.broadcast(flat, 0))


def _bucket_by_bucket(
    tensors: Sequence[torch.Tensor],
    group: Group,
    what: str,
    bucket_bytes: int,
    operation: Callable[[torch.Tensor], Any],
) -> None:
    """Flatten each bucket into one tensor, apply the collective ``operation`` to it in place,
    and copy the result back into the bucket's tensors."""
    for bucket in _buckets(tensors, bucket_bytes):
        flat = torch.cat([t.detach().reshape(-1) for t in bucket])
        with collective(what, group):
            operation(flat)
        offset = 0
        with torch.no_grad():
            for tensor in bucket:
                tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
                offset += tensor.numel()
