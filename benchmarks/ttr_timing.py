"""The clock of the time-to-result benchmark, shared by every implementation (no torch, no JAX).

A notebook user waits from the cell that builds the model to the first results, compilation
included; after that, each step's cost is what matters. :func:`time_svi` times both from one
sequence of steps, and :func:`longest_pause` finds the longest wait between two results.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SviPlan:
    """How many SVI steps to time: ``first`` from a new model, then ``blocks`` of ``per_block``."""

    first: int = 1000
    blocks: int = 5
    per_block: int = 100


@dataclass(frozen=True)
class NutsPlan:
    """Warm-up iterations and draws per chain of one NUTS run."""

    num_warmup: int = 500
    num_samples: int = 1000


def cpu_seconds() -> float:
    """CPU time of this process, its threads and its ended children, in seconds: unlike wall
    time, it hardly moves when other work shares the machine.

    >>> before = cpu_seconds(); _ = sum(range(10**6)); cpu_seconds() > before
    True
    """
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def longest_pause(start: float, stamps: Sequence[float]) -> float:
    """The longest time between ``start`` and the first stamp or between two stamps, in seconds.

    >>> longest_pause(0.0, [0.5, 0.75, 3.0, 3.5])
    2.25
    >>> longest_pause(1.0, [])
    0.0
    """
    previous, longest = start, 0.0
    for stamp in stamps:
        longest = max(longest, stamp - previous)
        previous = stamp
    return longest


def time_svi(build: Callable[[], Callable[[], float]], plan: SviPlan) -> dict[str, Any]:
    """Time ``build()`` (which returns one SVI step, giving the loss as a float) and its steps.

    ``first_s`` runs from the start of the build to the end of the first ``plan.first`` steps
    (``first_cpu_s`` is the CPU time it took);
    ``max_pause_s`` is the longest wait for one result in that time (the build and the first
    step count as one wait: the user sees nothing before the first loss); ``steady_ms`` is the
    median over the later blocks of ms per step.

    >>> record = time_svi(lambda: (lambda: 1.5), SviPlan(first=3, blocks=2, per_block=2))
    >>> sorted(record)[:4]
    ['blocks_ms', 'first_cpu_s', 'first_s', 'first_step_s']
    >>> record["loss_last_block"], record["max_pause_s"] <= record["first_s"]
    (1.5, True)
    """
    cpu, start = cpu_seconds(), time.perf_counter()
    step = build()
    stamps = []
    for _ in range(plan.first):
        step()
        stamps.append(time.perf_counter())
    first_cpu = cpu_seconds() - cpu
    block_ms, losses = [], []
    for _ in range(plan.blocks):
        began = time.perf_counter()
        losses = [step() for _ in range(plan.per_block)]
        block_ms.append((time.perf_counter() - began) * 1e3 / plan.per_block)
    return {
        "first_s": stamps[-1] - start,
        "first_cpu_s": first_cpu,
        "first_step_s": stamps[0] - start,
        "max_pause_s": longest_pause(start, stamps),
        "steady_ms": statistics.median(block_ms),
        "blocks_ms": block_ms,
        "loss_last_block": statistics.fmean(losses),
    }
