"""The SVI workloads of shared/benchmarks/WORKLOADS.md, written once for any Pyro-like PPL.

Each model takes the PPL module (``engine`` or ``pyro``) and its distributions module, so the same
code, the same data and the same guide convention run on both in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def linreg_data(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    noise = rng.standard_normal(n)
    y = x @ w + 0.5 + 0.5 * noise
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def many_sites_data(seed: int = 2) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(50)
    eps = rng.standard_normal((50, 20))
    theta = 1 + 2 * z
    return torch.tensor(theta[:, None] + eps, dtype=torch.float32)


def linreg_model(ppl: Any, dist: Any, subsample_size: int | None = None):
    def model(x: torch.Tensor, y: torch.Tensor) -> None:
        n, d = x.shape
        w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([d]).to_event(1))
        b = ppl.sample("b", dist.Normal(0.0, 10.0))
        sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
        with ppl.plate("data", n, subsample_size=subsample_size) as idx:
            x_batch, y_batch = (x, y) if subsample_size is None else (x[idx], y[idx])
            ppl.sample("y", dist.Normal(x_batch @ w + b, sigma), obs=y_batch)

    return model


def many_sites_model(ppl: Any, dist: Any):
    def model(y: torch.Tensor) -> None:
        mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
        tau = ppl.sample("tau", dist.HalfNormal(5.0))
        for g in range(y.shape[0]):
            theta = ppl.sample(f"theta_{g}", dist.Normal(mu, tau))
            ppl.sample(f"y_{g}", dist.Normal(theta, 1.0).expand([y.shape[1]]).to_event(1), obs=y[g])

    return model


def gmm_data(seed: int = 5) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    u = rng.random(500)
    eps = rng.standard_normal(500)
    z = np.minimum(np.searchsorted(np.cumsum([0.5, 0.3, 0.2]), u, "right"), 2)
    return torch.tensor(np.array([-4.0, 0.0, 4.0])[z] + eps, dtype=torch.float32)


def gmm_model(ppl: Any, dist: Any):
    def model(x: torch.Tensor) -> None:
        weights = ppl.sample("weights", dist.Dirichlet(0.5 * torch.ones(3)))
        scale = ppl.sample("scale", dist.LogNormal(0.0, 2.0))
        with ppl.plate("components", 3):
            locs = ppl.sample("locs", dist.Normal(0.0, 10.0))
        with ppl.plate("data", len(x)):
            assignment = ppl.sample(
                "assignment", dist.Categorical(weights), infer={"enumerate": "parallel"}
            )
            ppl.sample("x", dist.Normal(locs[assignment], scale), obs=x)

    return model


@dataclass
class Workload:
    name: str
    build: Any  # (ppl, dist) -> model
    args: tuple
    warmup: int
    steps_per_block: int
    blocks: int = 5
    # Sites summed out by TraceEnum_ELBO(max_plate_nesting=1) and hidden from the guide.
    enumerated: tuple[str, ...] = ()


def make_svi(workload: Workload, ppl: Any, modules: tuple[Any, Any, Any], elbo: Any) -> Any:
    """The SVI object of WORKLOADS.md for ``workload``: the model built on ``ppl``, AutoNormal
    (``init_to_feasible``, scale 0.1) over the sites not enumerated, Adam(lr 0.01) and ``elbo``.

    ``modules`` is ``(infer, autoguide, optim)`` of that PPL (``engine`` or ``pyro``).
    """
    infer, autoguide, optim = modules
    model = workload.build(ppl, ppl.distributions)
    hidden = list(workload.enumerated)
    guided = ppl.poutine.block(model, hide=hidden) if hidden else model
    guide = autoguide.AutoNormal(guided, init_loc_fn=autoguide.init_to_feasible, init_scale=0.1)
    adam = optim.Adam({"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8})
    return infer.SVI(model, guide, adam, elbo)


def workloads(sizes: str = "full") -> list[Workload]:
    """The SVI workloads; ``sizes="smoke"`` shrinks the big data sets for a quick check."""
    smoke = sizes == "smoke"
    small = linreg_data(100, 3, 0)
    large = linreg_data(10_000 if smoke else 100_000, 50, 1)
    sub = linreg_data(100_000 if smoke else 1_000_000, 10, 3)
    return [
        Workload("svi_small", lambda p, d: linreg_model(p, d), small, 50, 100),
        Workload("svi_plate_large", lambda p, d: linreg_model(p, d), large, 50, 40),
        Workload("svi_many_sites", many_sites_model, (many_sites_data(),), 50, 100),
        Workload("svi_subsample", lambda p, d: linreg_model(p, d, 1000), sub, 50, 100),
        Workload("gmm_enum", gmm_model, (gmm_data(),), 50, 100, enumerated=("assignment",)),
    ]
