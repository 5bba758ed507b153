"""The process group the distributed engine runs on: who this process is, and how a failure of
one process is told to the others.

Everything distributed in the engine runs on ``torch.distributed``: gloo on CPU, NCCL on GPU,
started by ``torchrun`` (which describes the group in the environment: ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``) and joined with :func:`init_group`, or started
on this machine by :func:`~engine.infer.distributed.launch.spawn` (tests, notebooks). A group
joined another way (``torch.distributed.init_process_group`` called by the user) works too.

Failures. A process that raises inside the engine's distributed code first writes its rank and
its error into the group's key-value store (:func:`report_failure`), then lets the error end it.
The others are waiting in a collective operation; it fails when the failed process's connections
close, or at the group's timeout if the process stays alive, and :func:`collective` turns that
into a :class:`~engine.errors.DistributedError` naming the rank that failed and why. A process
that dies without a word (killed, out of memory) is named by the error as gone.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from engine.errors import DistributedError

DEFAULT_TIMEOUT_S = 120.0

# Keys of the group's store under which a failed process leaves its error.
_FAILURE_KEY = "pplkernel/failed/{rank}"


@dataclass(frozen=True)
class Group:
    """This process's place in the group: its ``rank`` among ``world_size`` processes, the
    ``backend`` ("gloo" or "nccl"), and the ``device`` its tensors live on (its GPU with NCCL,
    the CPU with gloo)."""

    rank: int
    world_size: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes checkpoints and gathers draws."""
        return self.rank == 0


def _device_for(backend: str) -> torch.device:
    if backend == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def current_group() -> Group:
    """The group this process has joined; a :class:`DistributedError` saying how to join one
    when there is none.

    >>> try:
    ...     current_group()
    ... except DistributedError as error:
    ...     print(str(error).split(".")[0])
    This process has not joined a process group
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise DistributedError(
            "This process has not joined a process group. Start the script with torchrun "
            "(torchrun --nproc-per-node 2 fit.py) and call engine.infer.distributed.init_group() "
            "first, or run a function in several local processes with "
            "engine.infer.distributed.spawn(fn, 2)."
        )
    backend = str(dist.get_backend())
    return Group(dist.get_rank(), dist.get_world_size(), backend, _device_for(backend))


def init_group(backend: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Group:
    """Join the group that ``torchrun`` describes in the environment; returns this process's
    :class:`Group`. ``backend`` defaults to NCCL when this process has a GPU and gloo otherwise;
    ``timeout_s`` bounds every wait for another process (a failed peer is reported by then).

    With NCCL each process uses the GPU ``LOCAL_RANK`` (torchrun sets it per process).
    """
    if dist.is_initialized():
        return current_group()
    missing = [
        name
        for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
        if name not in os.environ
    ]
    if missing:
        raise DistributedError(
            f"init_group() reads the process group from the environment, and {', '.join(missing)} "
            "is not set. Start the script with torchrun (torchrun --nproc-per-node 2 fit.py), or "
            "across machines with torchrun --nnodes N --rdzv-endpoint HOST:PORT ...; to try it "
            "on one machine from Python, use engine.infer.distributed.spawn(fn, 2)."
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() and "LOCAL_RANK" in os.environ else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(_device_for(backend))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    # Leaving a script with the group alive lets the interpreter's teardown race the backend's
    # threads (an abort, "terminate called without an active exception", seen under load).
    atexit.register(_leave_group)
    return current_group()


def _leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _store() -> dist.Store | None:
    """The group's key-value store, where failures are left (None when it cannot be reached)."""
    try:
        return dist.distributed_c10d._get_default_store()
    except (RuntimeError, ValueError, AttributeError):
        return None


def report_failure(error: BaseException) -> None:
    """Leave this process's ``error`` in the group's store, for the others to name (best effort:
    a store that cannot be reached leaves the others to say that this process is gone)."""
    store = _store()
    if store is None or not dist.is_initialized():
        return
    message = f"{type(error).__name__}: {error}".strip()
    with contextlib.suppress(Exception):
        store.set(_FAILURE_KEY.format(rank=dist.get_rank()), message[:2000])


def reported_failures(world_size: int) -> dict[int, str]:
    """The errors the group's processes have left in its store, by rank."""
    store = _store()
    failures: dict[int, str] = {}
    if store is None:
        return failures
    for rank in range(world_size):
        key = _FAILURE_KEY.format(rank=rank)
        with contextlib.suppress(Exception):
            if store.check([key]):
                failures[rank] = store.get(key).decode(errors="replace")
    return failures


@contextlib.contextmanager
def reporting_failures() -> Iterator[None]:
    """Run a block whose error must reach the other processes: it is left in the store
    (:func:`report_failure`) before it propagates. A :class:`DistributedError` (another process
    failed first) is not reported again."""
    try:
        yield
    except DistributedError:
        raise
    except BaseException as error:
        report_failure(error)
        raise


@contextlib.contextmanager
def collective(what: str, group: Group) -> Iterator[None]:
    """Run a collective operation (``what`` says which, for the message); when it fails because
    another process failed, raise a :class:`DistributedError` naming that process and its
    error, or saying that it is gone."""
    try:
        yield
    except (RuntimeError, dist.DistBackendError) as error:
        failures = {r: m for r, m in reported_failures(group.world_size).items() if r != group.rank}
        if failures:
            named = "; ".join(
                f"rank {rank} failed with {message}" for rank, message in failures.items()
            )
            raise DistributedError(
                f"Rank {group.rank} stopped while {what}: {named}. Every process of the group "
                "stops with it; the last checkpoint written by rank 0 is intact."
            ) from error
        raise DistributedError(
            f"Rank {group.rank} stopped while {what}: another process of the group is gone or did "
            f"not answer within the group's timeout, without leaving an error ({error}). A "
            "process may have been killed (out of memory?) or be stuck; every process stops."
        ) from error
