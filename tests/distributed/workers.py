"""What each process of the distributed tests runs (module-level functions: ``spawn`` starts fresh
interpreters that import them by name)."""

from __future__ import annotations

import os

import torch

import engine as pyro
import engine.distributions as dist
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import AutoNormal, init_to_feasible
from engine.infer.distributed import DistributedMCMC, DistributedSVI, Shard, current_group
from engine.infer.mcmc import NUTS
from engine.optim import SGD, Adam
from engine.params import ParamStoreDict
from tests.eight_schools import SIGMA, Y, schools_noncentred

ROWS = 101  # uneven shards among 2 and 3 processes


def regression_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(ROWS, 2, generator=generator)
    y = x @ torch.tensor([1.5, -0.5]) + 0.7 + 0.4 * torch.randn(ROWS, generator=generator)
    return x, y


def regression(shard: Shard, subsample_size: int | None = None):
    """Global latent sites only: the weighted sum of the shards' gradients is the full data's."""

    def model(x: torch.Tensor, y: torch.Tensor) -> None:
        w = pyro.sample("w", dist.Normal(0.0, 2.0).expand([2]).to_event(1))
        b = pyro.sample("b", dist.Normal(0.0, 2.0))
        with shard.plate("data", subsample_size=subsample_size) as idx:
            pyro.sample("y", dist.Normal(x[idx] @ w + b, 0.4), obs=y[idx])

    return model


def fit(
    steps: int,
    world_size: int | None,
    optim: str = "sgd",
    subsample_size: int | None = None,
    load: str | None = None,
    save: str | None = None,
) -> dict[str, torch.Tensor]:
    """``steps`` steps of the regression on this process's shard (``world_size`` None: one
    process without a group, on all rows); returns the params."""
    pyro.set_rng_seed(0)
    x, y = regression_data()
    shard = Shard.of(ROWS)
    model = regression(shard, subsample_size)
    guide = AutoNormal(model, init_loc_fn=init_to_feasible)
    optimizer = SGD({"lr": 1e-3}) if optim == "sgd" else Adam({"lr": 0.02})
    store = ParamStoreDict()
    if world_size is None:
        svi = SVI(model, guide, optimizer, Trace_ELBO(), param_store=store)
    else:
        assert current_group().world_size == world_size
        svi = DistributedSVI(model, guide, optimizer, Trace_ELBO(), shard=shard, param_store=store)
    local = (shard.take(x), shard.take(y))
    if load is not None:
        svi.load(load)
    for _ in range(steps):
        svi.step(*local)
    if save is not None:
        svi.save(save)
    return {name: value.detach().clone() for name, value in store.items()}


def fail_at_step(failing_rank: int, step: int, how: str) -> None:
    """Fit, and on ``failing_rank`` raise (``how="raise"``) or die (``"exit"``) at ``step``."""
    x, y = regression_data()
    shard = Shard.of(ROWS)
    model = regression(shard)
    svi = DistributedSVI(model, AutoNormal(model), Adam({"lr": 0.01}), Trace_ELBO(), shard=shard)
    local = (shard.take(x), shard.take(y))
    for number in range(20):
        if number == step and current_group().rank == failing_rank:
            if how == "exit":
                os._exit(3)
            raise ValueError(f"rank {failing_rank} read a corrupt shard")
        svi.step(*local)


def shard_of(total: int) -> Shard:
    return Shard.of(total)


def eight_schools_chains(num_chains: int) -> dict | None:
    """Eight schools (non-centred) by NUTS with ``num_chains`` chains over the group; rank 0
    returns the gathered draws by chain, and the others their own chains' number."""
    pyro.set_rng_seed(3)
    mcmc = DistributedMCMC(NUTS(schools_noncentred), 1000, 500, num_chains=num_chains)
    mcmc.run(Y, SIGMA)
    if not current_group().is_main:
        return {"own_chains": mcmc.num_chains}
    samples = mcmc.get_samples(group_by_chain=True)
    return {
        "samples": {name: samples[name] for name in ("mu", "tau", "theta_trans", "theta")},
        "divergences": mcmc.diagnostics()["divergences"],
        "arviz_mu_shape": tuple(mcmc.to_arviz().posterior["mu"].shape),
        "chain_range": (mcmc.chain_range.start, mcmc.chain_range.stop),
    }


CONJUGATE_ROWS = 1000


def conjugate_data() -> torch.Tensor:
    return 2.0 + torch.randn(CONJUGATE_ROWS, generator=torch.Generator().manual_seed(5))


def conjugate_fit(distributed: bool, steps: int, batch: int, keep: int) -> torch.Tensor:
    """Mini-batch SVI of y ~ Normal(mu, 1), mu ~ Normal(0, 10) (AutoNormal is the exact family);
    returns the guide's loc over the last ``keep`` steps."""
    pyro.set_rng_seed(0)
    shard = Shard.of(CONJUGATE_ROWS)

    def model(y: torch.Tensor) -> None:
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        with shard.plate("data", subsample_size=batch) as idx:
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y[idx])

    store = ParamStoreDict()
    guide = AutoNormal(model, init_loc_fn=init_to_feasible)
    make = DistributedSVI if distributed else SVI
    options = {"shard": shard} if distributed else {}
    svi = make(model, guide, Adam({"lr": 0.01}), Trace_ELBO(), param_store=store, **options)
    local = shard.take(conjugate_data())
    locs = []
    for _ in range(steps):
        svi.step(local)
        locs.append(store["AutoNormal.locs.mu"].item())
    return torch.tensor(locs[-keep:])


def collectives_per_step(steps: int) -> dict[str, int]:
    """The collective operations ``steps`` steps make after the first (which shares the params)."""
    x, y = regression_data()
    shard = Shard.of(ROWS)
    model = regression(shard, subsample_size=8)
    svi = DistributedSVI(model, AutoNormal(model), Adam({"lr": 0.01}), Trace_ELBO(), shard=shard)
    local = (shard.take(x), shard.take(y))
    svi.step(*local)
    counts = {"all_reduce": 0, "broadcast": 0}
    originals = {name: getattr(torch.distributed, name) for name in ("all_reduce", "broadcast")}

    def counted(name):
        def call(*args, **kwargs):
            counts[name] += 1
            return originals[name](*args, **kwargs)

        return call

    for name in originals:
        setattr(torch.distributed, name, counted(name))
    try:
        for _ in range(steps):
            svi.step(*local)
    finally:
        for name, original in originals.items():
            setattr(torch.distributed, name, original)
    counts["params"] = len(list(pyro.get_param_store().keys()))
    return counts
