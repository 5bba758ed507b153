"""Data-parallel SVI: a Bayesian linear regression on a million rows, sharded over processes.

Run on this machine with two processes (gloo on CPU; NCCL is chosen when each process has a GPU):

    torchrun --nproc-per-node 2 examples/distributed_svi.py --steps 500 --checkpoint fit.pt

Each process generates the same data set from a fixed seed and keeps only its shard of the rows
(a real script would read its shard from storage). Rank 0 prints the progress and writes the
checkpoint; ``--resume fit.pt`` continues from one, on any number of processes.
"""

from __future__ import annotations

import argparse

import torch

import engine as pyro
import engine.distributions as dist
from engine.infer import Trace_ELBO
from engine.infer.autoguide import AutoNormal
from engine.infer.distributed import DistributedSVI, Shard, init_group
from engine.optim import Adam


def make_data(rows: int, features: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, features, generator=generator)
    w = torch.randn(features, generator=generator)
    return x, x @ w + 0.5 + 0.5 * torch.randn(rows, generator=generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per process and step")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--checkpoint", help="write the state here at the end (rank 0)")
    parser.add_argument("--resume", help="continue from this checkpoint")
    options = parser.parse_args()

    group = init_group()
    torch.set_num_threads(1)
    pyro.set_rng_seed(1)
    shard = Shard.of(options.rows)
    x, y = (shard.take(t) for t in make_data(options.rows, options.features))

    def model(x: torch.Tensor, y: torch.Tensor) -> None:
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        b = pyro.sample("b", dist.Normal(0.0, 10.0))
        sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
        with shard.plate("data", subsample_size=options.batch) as idx:
            pyro.sample("y", dist.Normal(x[idx] @ w + b, sigma), obs=y[idx])

    guide = AutoNormal(model)
    svi = DistributedSVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO(), shard=shard)
    if options.resume:
        svi.load(options.resume)
    for step in range(options.steps):
        loss = svi.step(x, y)
        if group.is_main and step % 100 == 0:
            print(f"step {svi.step_count}: loss {loss:.1f}", flush=True)
    if options.checkpoint:
        svi.save(options.checkpoint)
    if group.is_main:
        sigma = guide.median(x, y)["sigma"].item()
        print(f"rows {options.rows} on {group.world_size} processes; sigma ~ {sigma:.3f}")


if __name__ == "__main__":
    main()
