"""The NUTS workloads of shared/benchmarks/WORKLOADS.md, written once for any Pyro-like PPL.

Each model takes the PPL module (``engine`` or ``pyro``) and its distributions module, so the same
code and the same data run on both in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

EIGHT_SCHOOLS_Y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
EIGHT_SCHOOLS_SIGMA = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]


def logistic_data(seed: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1000, 10))
    w = rng.standard_normal(10)
    u = rng.random(1000)
    p = 1 / (1 + np.exp(-(x @ w - 0.5)))
    y = (u < p).astype(np.float64)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def eight_schools_model(ppl: Any, dist: Any):
    def model(y: torch.Tensor, sigma: torch.Tensor) -> None:
        mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
        tau = ppl.sample("tau", dist.HalfCauchy(5.0))
        with ppl.plate("J", len(y)):
            theta_tilde = ppl.sample("theta_tilde", dist.Normal(0.0, 1.0))
            ppl.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)

    return model


def logistic_model(ppl: Any, dist: Any):
    def model(x: torch.Tensor, y: torch.Tensor) -> None:
        w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        b = ppl.sample("b", dist.Normal(0.0, 1.0))
        with ppl.plate("data", x.shape[0]):
            ppl.sample("y", dist.Bernoulli(logits=x @ w + b), obs=y)

    return model


@dataclass
class Workload:
    name: str
    build: Any  # (ppl, dist) -> model
    args: tuple
    num_warmup: int = 500
    num_samples: int = 1000


def workloads() -> list[Workload]:
    """The two NUTS workloads: 500 warm-up iterations and 1000 draws per chain."""
    schools = (torch.tensor(EIGHT_SCHOOLS_Y), torch.tensor(EIGHT_SCHOOLS_SIGMA))
    return [
        Workload("nuts_eight_schools", eight_schools_model, schools),
        Workload("nuts_logistic", logistic_model, logistic_data()),
    ]
