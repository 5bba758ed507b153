"""``DistributedMCMC``: MCMC chains spread over the processes of a group, gathered on rank 0.

Each process runs its share of the chains (``num_chains`` split in blocks whose sizes differ by
at most one) batched in one sampler, as :class:`~engine.infer.mcmc.MCMC` runs chains in one
process. The chains are independent: each process draws from a stream seeded by rank 0's
generator and its own rank. At the end rank 0 gathers every process's draws and statistics, in
rank order, and from then on its ``get_samples``, ``summary``, ``diagnostics`` and ``to_arviz``
are those of one process that ran all the chains; the other processes keep their own chains.

A sketch of a script run with ``torchrun --nproc-per-node 2 chains.py``::

    init_group()
    mcmc = DistributedMCMC(NUTS(model), num_samples=1000, warmup_steps=500, num_chains=8)
    mcmc.run(data)
    if current_group().is_main:
        print(mcmc.summary())
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from engine.errors import DistributedError
from engine.infer.distributed.group import collective, current_group, reporting_failures
from engine.infer.mcmc.hmc import HMC
from engine.infer.mcmc.mcmc import MCMC
from engine.rng import set_rng_seed


class DistributedMCMC(MCMC):
    """:class:`~engine.infer.mcmc.MCMC` with ``num_chains`` chains over the group this process
    has joined (see the module docstring); ``initial_params`` with a leading dim of
    ``num_chains`` give each process its chains' rows. Other arguments are MCMC's."""

    def __init__(
        self,
        kernel: HMC,
        num_samples: int,
        warmup_steps: int | None = None,
        initial_params: dict[str, torch.Tensor] | None = None,
        num_chains: int = 1,
        **kwargs: Any,
    ):
        self.group = current_group()
        if not isinstance(num_chains, int) or num_chains < self.group.world_size:
            raise DistributedError(
                f"DistributedMCMC runs at least one chain per process: num_chains={num_chains!r} "
                f"for {self.group.world_size} processes. Fix: num_chains >= "
                f"{self.group.world_size}, or run fewer processes."
            )
        self.total_chains = num_chains
        world, rank = self.group.world_size, self.group.rank
        self.chain_range = range(rank * num_chains // world, (rank + 1) * num_chains // world)
        if initial_params is not None:
            initial_params = {
                name: self._own_rows(name, value) for name, value in initial_params.items()
            }
        super().__init__(
            kernel, num_samples, warmup_steps, initial_params, len(self.chain_range), **kwargs
        )

    def _own_rows(self, name: str, value: torch.Tensor) -> torch.Tensor:
        value = torch.as_tensor(value)
        if value.dim() == 0 or value.shape[0] != self.total_chains:
            return value  # one starting point for every chain
        return value[self.chain_range.start : self.chain_range.stop]

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Run this process's chains, then gather every process's on rank 0."""
        self._seed_own_stream()
        self.num_chains = len(self.chain_range)
        with reporting_failures():
            super().run(*args, **kwargs)
        self._gather()

    def _seed_own_stream(self) -> None:
        seed = [int(torch.randint(0, 2**62, ()).item()) if self.group.is_main else None]
        with collective("receiving rank 0's seed", self.group):
            dist.broadcast_object_list(seed, src=0)
        set_rng_seed((seed[0] + self.group.rank) % 2**63)

    def _gather(self) -> None:
        own = {
            "draws": self._draws.cpu(),
            "stats": {name: values.cpu() for name, values in self._stats.items()},
            "leapfrog_steps": self.num_leapfrog_steps.cpu(),
            "interrupted": self.interrupted,
        }
        every = [None] * self.group.world_size if self.group.is_main else None
        with collective("gathering the chains on rank 0", self.group):
            dist.gather_object(own, every, dst=0)
        if not self.group.is_main:
            return
        kept = min(part["draws"].shape[1] for part in every)  # a stopped process keeps fewer
        device = self._draws.device
        self._draws = torch.cat([part["draws"][:, :kept] for part in every]).to(device)
        self._stats = {
            name: torch.cat([part["stats"][name][:, :kept] for part in every]).to(device)
            for name in own["stats"]
        }
        self.num_leapfrog_steps = torch.cat([part["leapfrog_steps"] for part in every]).to(device)
        self.interrupted = any(part["interrupted"] for part in every)
        self.num_chains = self.total_chains
        self._samples = None
