"""Run a function in a group of local processes: the engine's tests, and a notebook trying a
distributed fit on one machine before it moves to ``torchrun``.

:func:`spawn` starts ``nprocs`` processes on this machine, joins them in a gloo group over the
loopback interface, runs ``fn(*args)`` in each and returns what each returned, by rank. It never
hangs: a process that raises ends the group with a :class:`~engine.errors.DistributedError`
naming the rank and its error, and the whole group is stopped at ``timeout_s``.

Processes are started with ``spawn`` (a fresh interpreter that imports ``fn``'s module), except
for a function defined interactively (a notebook cell or a REPL, whose ``__main__`` a fresh
interpreter cannot import): those are started with ``fork``, where the operating system has it
(Linux, macOS).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch.distributed as dist

from engine.errors import DistributedError
from engine.infer.distributed.group import DEFAULT_TIMEOUT_S, init_group, report_failure


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_method(fn: Callable) -> str:
    interactive = fn.__module__ == "__main__" and not hasattr(sys.modules["__main__"], "__file__")
    if interactive and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


def _run_rank(
    fn: Callable, args: tuple, rank: int, world_size: int, port: int, timeout_s: float, results
) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "LOCAL_RANK": str(rank),
        }
    )
    try:
        init_group("gloo", timeout_s=timeout_s)
        value = fn(*args)
    except BaseException as error:  # the parent names this rank and its error
        failed_at = time.time()  # which rank failed first: the others' errors follow from it
        report_failure(error)
        message = f"{type(error).__name__}: {error}"
        results.put((rank, "error", (failed_at, message), traceback.format_exc()))
        return
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # Pickled here by value: a tensor put in the queue as it is would be shared through a file
    # descriptor that dies with this process.
    results.put((rank, "ok", pickle.dumps(value), None))


def _collect(results, outcomes: dict[int, tuple], wait_s: float) -> None:
    try:
        rank, status, value, trace = results.get(timeout=wait_s)
    except queue.Empty:
        return
    outcomes[rank] = (status, value, trace)


def _died(processes: list, outcomes: dict[int, tuple]) -> list[int]:
    """Ranks whose process ended without a result (killed, or exited from inside ``fn``)."""
    return [
        rank
        for rank, process in enumerate(processes)
        if rank not in outcomes and process.exitcode is not None
    ]


def _group_failure(processes: list, outcomes: dict[int, tuple]) -> DistributedError:
    """The error that names the cause: the first rank to fail with an error of its own, else a
    rank that died, else the first report of them (the others' collective operations fail
    because of the first failure, a moment later)."""
    errors = sorted(
        (outcome[1][0], rank, outcome[1][1], outcome[2])
        for rank, outcome in outcomes.items()
        if outcome[0] == "error"
    )
    causes = [error for error in errors if not error[2].startswith("DistributedError")]
    dead = _died(processes, outcomes)
    if dead and not causes:
        codes = ", ".join(f"rank {r} (exit code {processes[r].exitcode})" for r in dead)
        return DistributedError(f"{codes} ended without a result or an error.")
    _, rank, message, trace = (causes or errors)[0]
    return DistributedError(f"rank {rank} failed: {message}\n\n{trace}")


def spawn(
    fn: Callable[..., Any],
    nprocs: int,
    *args: Any,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Any]:
    """Run ``fn(*args)`` in ``nprocs`` local processes joined in a gloo group; returns their
    results by rank (each must be picklable). Raises a :class:`DistributedError` naming the
    first rank that failed and its error (the traceback follows in the message), or saying
    which ranks had not finished when ``timeout_s`` ran out.
    """
    if nprocs < 1:
        raise ValueError(f"spawn needs at least one process, got nprocs={nprocs}")
    context = multiprocessing.get_context(_start_method(fn))
    results = context.Queue()
    port = _free_port()
    processes = [
        context.Process(
            target=_run_rank,
            args=(fn, args, rank, nprocs, port, timeout_s, results),
            daemon=True,
        )
        for rank in range(nprocs)
    ]
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout_s + 30.0  # the group's own timeout comes first
    outcomes: dict[int, tuple] = {}
    try:
        while len(outcomes) < nprocs:
            _collect(results, outcomes, 0.2)
            failed = any(outcome[0] == "error" for outcome in outcomes.values())
            if failed or _died(processes, outcomes):
                # Let the others report or end too, so that the error names the cause.
                settle = time.monotonic() + 5.0
                while len(outcomes) + len(_died(processes, outcomes)) < nprocs:
                    if time.monotonic() > settle:
                        break
                    _collect(results, outcomes, 0.2)
                raise _group_failure(processes, outcomes)
            if time.monotonic() > deadline:
                waiting = [rank for rank in range(nprocs) if rank not in outcomes]
                raise DistributedError(
                    f"spawn: ranks {waiting} had not finished after {timeout_s:.0f} s; the group "
                    "was stopped."
                )
    finally:
        for process in processes:
            process.join(timeout=5.0)
            if process.is_alive():
                process.terminate()
    return [pickle.loads(outcomes[rank][1]) for rank in range(nprocs)]
