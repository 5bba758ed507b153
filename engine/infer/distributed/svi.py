"""``DistributedSVI``: data-parallel SVI over a process group.

Each process holds a shard of the data (:class:`~engine.infer.distributed.shard.Shard`) and runs
the model with its plates scaled to the whole data set, so its loss and gradient estimate the
whole data set's. A step sums the processes' gradients weighted by their shards' shares of the
rows (``shard.weight``; equal shares without a shard) in one ``all_reduce`` (bucketed: one per
dtype and device, split past ``bucket_bytes``), together with the loss, so every process holds
the full-data gradient and takes the same optimizer step: parameters start identical (rank 0's,
broadcast when the first step creates them, and again whenever a step creates new ones) and stay
identical. Without mini-batches and with only global latent sites, that gradient is the
single-process full-data gradient, to float rounding.

Random draws: every process starts from rank 0's random state, so global latent sites are drawn
alike everywhere. Local latent sites (one per row) are drawn by each process for its own rows;
when the shards differ in size, the processes' random streams then drift apart and later global
draws differ between processes too. The params stay identical (every process applies the same
summed gradient); only the one-process equality of the steps is lost.

A checkpoint (:meth:`DistributedSVI.save`) is written by rank 0 alone, atomically, and holds
nothing about the number of processes: :meth:`DistributedSVI.load` on any number of them (rank 0
reads it and sends it to the others) continues the run.

Everything else is SVI's: the checks, the non-finite guard (every process sees the same summed
loss and gradient, so all of them stop, or skip, together), the recorded step plans, the
listeners. A process that fails stops every other one with a
:class:`~engine.errors.DistributedError` naming it (:mod:`~engine.infer.distributed.group`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from engine.errors import DistributedError
from engine.infer.distributed.all_reduce import (
    DEFAULT_BUCKET_BYTES,
    copy_from_main,
    summed_across,
)
from engine.infer.distributed.group import collective, current_group, reporting_failures
from engine.infer.distributed.shard import Shard
from engine.infer.svi import SVI
from engine.params import ParamStoreDict
from engine.rng import get_rng_state, restore_rng_state_payload, rng_state_payload, set_rng_state


class DistributedSVI(SVI):
    """:class:`~engine.infer.SVI` over the process group this process has joined (see the module
    docstring). ``shard`` is this process's :class:`Shard` of the data (its ``weight`` weighs the
    process's gradient); other arguments are SVI's.

    A sketch of a script run with ``torchrun --nproc-per-node 2 fit.py``::

        group = init_group()
        shard = Shard.of(len(y))
        x_local, y_local = shard.take(x), shard.take(y)

        def model(x, y):
            w = pyro.sample("w", dist.Normal(0.0, 1.0))
            with shard.plate("data", subsample_size=256) as idx:
                pyro.sample("obs", dist.Normal(w * x[idx], 1.0), obs=y[idx])

        svi = DistributedSVI(model, AutoNormal(model), Adam({"lr": 0.01}), Trace_ELBO(),
                             shard=shard)
        for step in range(1000):
            svi.step(x_local, y_local)
        svi.save("fit.pt")  # rank 0 writes
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optim: Callable,
        loss: Any,
        shard: Shard | None = None,
        bucket_bytes: int = DEFAULT_BUCKET_BYTES,
        **kwargs: Any,
    ):
        self.group = current_group()
        super().__init__(model, guide, optim, loss, **kwargs)
        self.shard = shard
        self.weight = shard.weight if shard is not None else 1.0 / self.group.world_size
        self.bucket_bytes = bucket_bytes
        self._shared_params: tuple[str, ...] = ()  # identical on every process
        self._share_random_state()

    # -- what every process must agree on ----------------------------------------------------

    def _share_random_state(self) -> None:
        payload = [rng_state_payload() if self.group.is_main else None]
        with collective("receiving rank 0's random state", self.group):
            dist.broadcast_object_list(payload, src=0)
        restore_rng_state_payload(payload[0])

    def _named_leaves(
        self, store: ParamStoreDict, leaves: list[torch.Tensor]
    ) -> tuple[tuple[str, ...], list[torch.Tensor]]:
        """The step's params by name, in name order (the same order on every process)."""
        named = {}
        for leaf in leaves:
            name = store.param_name(leaf)
            if name is None:
                raise DistributedError(
                    "DistributedSVI keeps the processes' params identical through the param "
                    "store, and this step has a param that is not in it (a torch module's own "
                    "parameter?). Register modules with pyro.module(name, module), or use "
                    "PyroModule."
                )
            named[name] = leaf
        names = tuple(sorted(named))
        return names, [named[name] for name in names]

    def _share_params(self, names: tuple[str, ...], leaves: list[torch.Tensor]) -> None:
        """Check that every process has the params ``names`` and give them rank 0's values."""
        every = [None] * self.group.world_size
        with collective("comparing the processes' params", self.group):
            dist.all_gather_object(every, names)
        for rank, theirs in enumerate(every):
            if tuple(theirs) != names:
                differ = sorted(set(theirs) ^ set(names))
                raise DistributedError(
                    f"Rank {rank}'s step has other params than rank {self.group.rank}'s "
                    f"({', '.join(differ[:5])}): every process must run the same model and "
                    "guide on its shard."
                )
        copy_from_main(leaves, self.group, "receiving rank 0's params", self.bucket_bytes)
        self._shared_params = names

    # -- one step ----------------------------------------------------------------------------

    def _loss_and_grads(
        self, store: ParamStoreDict, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[float, list[torch.Tensor]]:
        start = get_rng_state()
        with reporting_failures():
            loss, leaves = super()._loss_and_grads(store, args, kwargs)
            names, leaves = self._named_leaves(store, leaves)
        if names != self._shared_params:
            # New params (the first step creates a guide's): rank 0's values everywhere, and the
            # step again from the same draws with them.
            for leaf in leaves:
                leaf.grad = None
            self._share_params(names, leaves)
            set_rng_state(start)
            with reporting_failures():
                loss, leaves = super()._loss_and_grads(store, args, kwargs)
                names, leaves = self._named_leaves(store, leaves)
        return self._summed(loss, names, leaves), leaves

    def _summed(self, loss: float, names: tuple[str, ...], leaves: list[torch.Tensor]) -> float:
        """The weighted sums over the processes of the gradients (in place) and of the loss."""
        for leaf in leaves:
            if leaf.grad is None:  # this process's data did not reach it; another's may
                leaf.grad = torch.zeros_like(leaf)
            leaf.grad.mul_(self.weight)
        like = leaves[0].grad if leaves else torch.zeros(())
        # The loss and the number of params travel with the gradients, in the same all_reduce.
        extra = like.new_tensor([loss * self.weight, float(len(names))])
        grads = [leaf.grad for leaf in leaves]
        summed_across([*grads, extra], self.group, "summing the gradients", self.bucket_bytes)
        if extra[1].item() != len(names) * self.group.world_size:
            raise DistributedError(
                f"The processes' steps have different numbers of params (rank {self.group.rank} "
                f"has {len(names)}): every process must run the same model and guide."
            )
        return extra[0].item()

    def evaluate_loss(self, *args: Any, **kwargs: Any) -> float:
        """The loss over the whole data set (each process's estimate, weighted by its shard)."""
        with reporting_failures():
            local = super().evaluate_loss(*args, **kwargs)
        total = torch.tensor([local * self.weight], dtype=torch.float64)
        summed_across([total], self.group, "summing the loss", self.bucket_bytes)
        return total.item()

    # -- checkpoints -------------------------------------------------------------------------

    def save(self, filename: str | os.PathLike[str]) -> None:
        """Rank 0 writes the state (atomically: a crash never leaves half a file); every process
        returns once it is written."""
        if self.group.is_main:
            with reporting_failures():
                super().save(filename)
        with collective("waiting for rank 0's checkpoint", self.group):
            dist.barrier()

    def load(self, filename: str | os.PathLike[str], map_location: Any = None) -> None:
        """Rank 0 reads the state saved by :meth:`save` (by any number of processes) and every
        process continues from it."""
        payload = [None]
        if self.group.is_main:
            with reporting_failures():
                super().load(filename, map_location)
                payload = [self.get_state()]
        with collective("receiving rank 0's checkpoint", self.group):
            dist.broadcast_object_list(payload, src=0)
        if not self.group.is_main:
            self.set_state(payload[0])
        self._shared_params = ()  # checked again at the next step
