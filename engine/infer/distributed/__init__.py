"""Beyond one machine: the engine on ``torch.distributed`` (gloo on CPU, NCCL on GPU, started by
``torchrun``).

- :mod:`.group`: joining a process group (:func:`init_group`), this process's place in it, and
  how one process's failure is told to the others.
- :mod:`.launch`: :func:`spawn`, a group of local processes for tests and notebooks.
- :mod:`.shard`: :class:`Shard`, the rows of the data this process holds, and its plate.
- :mod:`.all_reduce`: many tensors summed or broadcast in few collective operations.
- :mod:`.svi`: :class:`DistributedSVI`, data-parallel SVI.
- :mod:`.mcmc`: :class:`DistributedMCMC`, chains spread over the processes.
"""

from engine.errors import DistributedError
from engine.infer.distributed.group import Group, current_group, init_group
from engine.infer.distributed.launch import spawn
from engine.infer.distributed.mcmc import DistributedMCMC
from engine.infer.distributed.shard import Shard
from engine.infer.distributed.svi import DistributedSVI

__all__ = [
    "DistributedError",
    "DistributedMCMC",
    "DistributedSVI",
    "Group",
    "Shard",
    "current_group",
    "init_group",
    "spawn",
]
