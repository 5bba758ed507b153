"""Time to result on NumPyro (JAX), with its default settings, for the benchmark's comparison.

The four models of shared/benchmarks/WORKLOADS.md written for NumPyro, fed the very data the
torch libraries get (``svi_workloads`` / ``nuts_workloads``, turned into NumPy arrays). SVI runs
``jax.jit(svi.update)`` once per step from Python, reading each loss (as a live monitor does);
NUTS is ``MCMC(NUTS(model), ...)`` run twice on the same object: the first run, compilation
included, is the one a user waits for; the second is reported beside it. JAX's persistent
compilation cache is left off (the driver sets ``JAX_ENABLE_COMPILATION_CACHE=false``). Only
the benchmark imports this module; it needs the ``reference-jax`` extra.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO, TraceEnum_ELBO
from numpyro.infer.autoguide import AutoNormal
from numpyro.infer.initialization import init_to_feasible

from benchmarks.ttr_timing import NutsPlan, SviPlan, cpu_seconds, time_svi


def linreg(x: Any, y: Any) -> None:
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(x @ w + b, sigma), obs=y)


def gmm(x: Any) -> None:
    weights = numpyro.sample("weights", dist.Dirichlet(0.5 * jnp.ones(3)))
    scale = numpyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with numpyro.plate("components", 3):
        locs = numpyro.sample("locs", dist.Normal(0.0, 10.0))
    with numpyro.plate("data", x.shape[0]):
        assignment = numpyro.sample(
            "assignment", dist.Categorical(weights), infer={"enumerate": "parallel"}
        )
        numpyro.sample("x", dist.Normal(locs[assignment], scale), obs=x)


def eight_schools(y: Any, sigma: Any) -> None:
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", y.shape[0]):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)


def logistic(x: Any, y: Any) -> None:
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", dist.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=x @ w + b), obs=y)


MODELS = {
    "svi_small": linreg,
    "gmm_enum": gmm,
    "nuts_eight_schools": eight_schools,
    "nuts_logistic": logistic,
}


def _data(workload_name: str) -> tuple[Any, ...]:
    """The workload's data, the same numbers as the torch libraries get."""
    from benchmarks import nuts_workloads, svi_workloads

    found = [*svi_workloads.workloads(), *nuts_workloads.workloads()]
    workload = next(w for w in found if w.name == workload_name)
    return tuple(jnp.asarray(np.asarray(t)) for t in workload.args)


def svi(impl: str, workload_name: str, plan: SviPlan) -> dict[str, Any]:
    """Time ``plan.first`` SVI steps from a new model, then the steady ms per step."""
    model, args = MODELS[workload_name], _data(workload_name)
    enumerated = workload_name == "gmm_enum"

    def build() -> Any:
        guided = handlers.block(model, hide=["assignment"]) if enumerated else model
        guide = AutoNormal(guided, init_loc_fn=init_to_feasible, init_scale=0.1)
        elbo = TraceEnum_ELBO(max_plate_nesting=1) if enumerated else Trace_ELBO()
        optimizer = numpyro.optim.Adam(step_size=0.01, b1=0.9, b2=0.999, eps=1e-8)
        svi_object = SVI(model, guide, optimizer, elbo)
        state = [svi_object.init(jax.random.PRNGKey(0), *args)]
        update = jax.jit(svi_object.update)

        def step() -> float:
            state[0], loss = update(state[0], *args)
            return float(loss)

        return step

    name = "TraceEnum_ELBO" if enumerated else "Trace_ELBO"
    return {"elbo": name, **time_svi(build, plan)}


def nuts(impl: str, workload_name: str, chains: int, plan: NutsPlan) -> dict[str, Any]:
    """Time a first and a second whole NUTS run; ESS of each run's draws."""
    import torch

    from benchmarks.run_nuts import min_ess

    model, args = MODELS[workload_name], _data(workload_name)
    cpu, start = cpu_seconds(), time.perf_counter()
    mcmc = MCMC(
        NUTS(model), num_warmup=plan.num_warmup, num_samples=plan.num_samples, num_chains=chains
    )
    mcmc.run(jax.random.PRNGKey(0), *args)
    jax.block_until_ready(mcmc.get_samples())
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu

    def ess() -> float:
        draws = mcmc.get_samples(group_by_chain=True)
        return min_ess({k: torch.from_numpy(np.asarray(v).copy()) for k, v in draws.items()})

    record: dict[str, Any] = {"wall_s": wall, "cpu_s": cpu, "min_ess": ess(), "max_pause_s": None}
    record["ess_per_s"] = record["min_ess"] / wall
    cpu, start = cpu_seconds(), time.perf_counter()
    mcmc.run(jax.random.PRNGKey(1), *args)
    jax.block_until_ready(mcmc.get_samples())
    record["second_wall_s"] = time.perf_counter() - start
    record["second_cpu_s"] = cpu_seconds() - cpu
    record["second_min_ess"] = ess()
    record["second_ess_per_s"] = record["second_min_ess"] / record["second_wall_s"]
    return record
