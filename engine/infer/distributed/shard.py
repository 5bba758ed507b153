"""Which rows of a data set this process holds, and the plate that scales them to the whole.

Each process of a data-parallel fit holds a shard of the data: :meth:`Shard.of` cuts ``total``
rows into contiguous blocks whose sizes differ by at most one, one per rank. A model written for
sharded data uses :meth:`Shard.plate` where it would use ``pyro.plate(name, total, ...)``: the
plate's size is the whole data set's, its indices are positions in this process's rows, so each
site is scaled by ``total / len(indices)`` and each process's ELBO estimates the whole data
set's. In one process (no group, or a group of one) a shard is all the rows and the plate is an
ordinary plate, so the same model runs unchanged.

>>> import torch, engine, engine.distributions as dist
>>> shard = Shard(total=10, start=4, stop=7)  # rank 1 of 3 holds rows 4, 5, 6
>>> x = torch.arange(10.0)
>>> local = shard.take(x)
>>> local.tolist(), shard.weight
([4.0, 5.0, 6.0], 0.3)
>>> with engine.poutine.trace() as tracer:
...     with shard.plate("data") as idx:
...         _ = engine.sample("obs", dist.Normal(0.0, 1.0), obs=local[idx])
>>> idx.tolist(), tracer.trace.nodes["obs"]["scale"] == 10 / 3
([0, 1, 2], True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from engine.errors import PlateError
from engine.infer.distributed.group import current_group
from engine.poutine.plate_messenger import PlateMessenger


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of a data set of ``total`` rows."""

    total: int
    start: int
    stop: int

    @classmethod
    def of(cls, total: int) -> Shard:
        """This process's shard of ``total`` rows: rank r of W holds rows
        ``[r * total // W, (r + 1) * total // W)``; outside a process group, all of them.

        >>> Shard.of(5)
        Shard(total=5, start=0, stop=5)
        """
        rank, world_size = 0, 1
        if dist.is_available() and dist.is_initialized():
            group = current_group()
            rank, world_size = group.rank, group.world_size
        if total < world_size:
            raise PlateError(
                f"{total} rows cannot be shared among {world_size} processes (each needs one at "
                "least). Fix: run fewer processes, or shard a larger data set."
            )
        return cls(total, rank * total // world_size, (rank + 1) * total // world_size)

    @property
    def size(self) -> int:
        """The number of rows this process holds."""
        return self.stop - self.start

    @property
    def weight(self) -> float:
        """This shard's share of the rows: a process's gradient, scaled to the whole data set by
        its plates, counts this much in the group's (so the shares add up to the full-data
        gradient, however uneven the shards)."""
        return self.size / self.total

    def take(self, data: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """This shard's rows of ``data`` (all ``total`` of them), along ``dim``."""
        if data.shape[dim] != self.total:
            raise PlateError(
                f"Shard.take: the data has {data.shape[dim]} rows along dim {dim}, the shard was "
                f"cut from {self.total}. Fix: take from the whole data set, or cut the shard with "
                f"Shard.of({data.shape[dim]})."
            )
        return data.narrow(dim, self.start, self.size)

    def plate(
        self, name: str, subsample_size: int | None = None, dim: int | None = None
    ) -> PlateMessenger:
        """``pyro.plate(name, total, subsample_size=...)`` over this shard: indices are positions
        in the shard's rows (all of them, or a random ``subsample_size`` of them, drawn once per
        run of guide and model as a plate's mini-batch is), and sites are scaled to ``total``."""
        if subsample_size is not None and subsample_size > self.size:
            raise PlateError(
                f"Plate '{name}': subsample_size={subsample_size} is more than this process's "
                f"{self.size} rows (rows {self.start} to {self.stop - 1} of {self.total}). Fix: "
                "make the mini-batch at most the smallest shard."
            )
        return _ShardPlate(self, name, subsample_size, dim)


class _ShardPlate(PlateMessenger):
    """A plate of the whole data set's size whose mini-batches come from one shard's rows."""

    def __init__(self, shard: Shard, name: str, subsample_size: int | None, dim: int | None):
        self.shard = shard
        size = shard.size if subsample_size is None else subsample_size
        super().__init__(name, shard.total, subsample_size=size, dim=dim)

    def _draw_indices(self, size: int, subsample_size: int) -> torch.Tensor:
        if subsample_size == self.shard.size:  # the whole shard, in order: nothing to draw
            return torch.arange(subsample_size, device=self.device)
        return super()._draw_indices(self.shard.size, subsample_size)
