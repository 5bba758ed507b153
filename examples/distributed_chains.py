"""NUTS chains spread over processes: eight schools with 8 chains, gathered on rank 0.

    torchrun --nproc-per-node 2 examples/distributed_chains.py

Each process runs its share of the chains batched in one sampler; rank 0 gathers them and prints
the summary as one process running all the chains would.
"""

from __future__ import annotations

import torch

import engine as pyro
import engine.distributions as dist
from engine.infer.distributed import DistributedMCMC, init_group
from engine.infer.mcmc import NUTS

Y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools(y: torch.Tensor, sigma: torch.Tensor) -> None:
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", len(y)):
        offset = pyro.sample("offset", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", mu + tau * offset)
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def main() -> None:
    group = init_group()
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    mcmc = DistributedMCMC(NUTS(eight_schools), num_samples=1000, warmup_steps=500, num_chains=8)
    mcmc.run(Y, SIGMA)
    if group.is_main:
        mcmc.summary()


if __name__ == "__main__":
    main()
