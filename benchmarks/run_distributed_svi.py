"""Data-parallel SVI throughput: svi_plate_large's model on N rows, on 1 and on W processes.

    PYTHONPATH=. python benchmarks/run_distributed_svi.py --rows 1000000 --processes 1 2

Each configuration runs in a fresh local process group (``engine.infer.distributed.spawn``, gloo
over the loopback interface, one torch thread per process): every process generates its shard of
the rows (blocks of rows from fixed seeds, so a shard is the same rows whatever the number of
processes), then takes full-data steps with ``DistributedSVI`` (AutoNormal, Adam, Trace_ELBO:
WORKLOADS.md's svi_plate_large, with N rows). Reported per configuration: ms per step (median of
blocks, after warm-up), data points per second (N per step), the share of a step spent in the
gradients' all-reduce (timed inside rank 0), and the throughput ratio against one process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import engine as pyro
import engine.distributions as dist
import engine.infer.distributed.svi as distributed_svi
from engine.infer import Trace_ELBO
from engine.infer.autoguide import AutoNormal, init_to_feasible
from engine.infer.distributed import DistributedSVI, Shard, current_group, spawn
from engine.optim import Adam

_BLOCK = 10_000  # rows generated from one seed


def _rows(start: int, stop: int, features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``[start, stop)`` of the data set (the same rows whoever generates them)."""
    w = torch.randn(features, generator=torch.Generator().manual_seed(1))
    xs, ys = [], []
    for block in range(start // _BLOCK, (stop - 1) // _BLOCK + 1):
        generator = torch.Generator().manual_seed(1000 + block)
        x = torch.randn(_BLOCK, features, generator=generator)
        y = x @ w + 0.5 + 0.5 * torch.randn(_BLOCK, generator=generator)
        low, high = max(start - block * _BLOCK, 0), min(stop - block * _BLOCK, _BLOCK)
        xs.append(x[low:high])
        ys.append(y[low:high])
    return torch.cat(xs), torch.cat(ys)


def _measure(rows: int, features: int, warmup: int, blocks: int, per_block: int) -> dict:
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    shard = Shard.of(rows)
    x, y = _rows(shard.start, shard.stop, features)

    def model(x: torch.Tensor, y: torch.Tensor) -> None:
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([features]).to_event(1))
        b = pyro.sample("b", dist.Normal(0.0, 10.0))
        sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
        # Full-data steps: the plate's indices are all of this process's rows, in order, so the
        # rows are used as they are (indexing them would copy them on every step).
        with shard.plate("data"):
            pyro.sample("y", dist.Normal(x @ w + b, sigma), obs=y)

    guide = AutoNormal(model, init_loc_fn=init_to_feasible, init_scale=0.1)
    svi = DistributedSVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO(), shard=shard)
    reduce_seconds = [0.0]
    summed_across = distributed_svi.summed_across

    def timed_sum(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        summed_across(*args, **kwargs)
        reduce_seconds[0] += time.perf_counter() - start

    distributed_svi.summed_across = timed_sum
    for _ in range(warmup):
        svi.step(x, y)
    block_ms, shares = [], []
    for _ in range(blocks):
        reduce_seconds[0] = 0.0
        start = time.perf_counter()
        for _ in range(per_block):
            loss = svi.step(x, y)
        elapsed = time.perf_counter() - start
        block_ms.append(elapsed * 1e3 / per_block)
        shares.append(reduce_seconds[0] / elapsed)
    return {
        "rank": current_group().rank,
        "ms_per_step": statistics.median(block_ms),
        "blocks_ms": block_ms,
        "all_reduce_share": statistics.median(shares),
        "loss": loss,
        "planned": bool(svi.planned_steps.plans),  # steps replayed from a recorded plan
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--per-block", type=int, default=5)
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    records = []
    for processes in options.processes:
        ranks = spawn(
            _measure,
            processes,
            options.rows,
            options.features,
            options.warmup,
            options.blocks,
            options.per_block,
            timeout_s=1800.0,
        )
        main_rank = ranks[0]
        ms = main_rank["ms_per_step"]
        record = {
            "processes": processes,
            "rows": options.rows,
            "ms_per_step": ms,
            "points_per_s": options.rows / (ms / 1e3),
            "all_reduce_share": main_rank["all_reduce_share"],
            "loss": main_rank["loss"],
            "ranks": ranks,
        }
        records.append(record)
        base = records[0]["points_per_s"]
        print(
            f"{processes} process(es): {ms:8.1f} ms/step  {record['points_per_s']:12.0f} points/s"
            f"  all-reduce {100 * record['all_reduce_share']:5.2f} % of a step"
            f"  throughput x{record['points_per_s'] / base:4.2f}  loss {record['loss']:.1f}"
            f"  planned {all(rank['planned'] for rank in ranks)}",
            flush=True,
        )
    if options.out:
        options.out.write_text(json.dumps(records, indent=2, default=str))


if __name__ == "__main__":
    main()
