"""Time to result on the torch libraries: the engine and Pyro, with their default settings.

One call measures one implementation on one workload, in the calling process (the driver,
``benchmarks/time_to_result.py``, gives each its own process and an empty compile cache).
Implementations: ``engine`` (``Trace_ELBO``/``TraceEnum_ELBO``, ``NUTS(model)``), ``engine-jit``
(``JitTrace_ELBO``/``JitTraceEnum_ELBO``, ``NUTS(model, jit_compile=True)``), ``pyro`` and
``pyro-jit`` (Pyro's own ELBOs of those names; its NUTS with defaults).
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import torch

from benchmarks import nuts_workloads, svi_workloads
from benchmarks.run_nuts import min_ess
from benchmarks.ttr_timing import NutsPlan, SviPlan, cpu_seconds, longest_pause, time_svi


def _library(impl: str) -> tuple[Any, tuple[Any, Any, Any]]:
    """The PPL module of ``impl`` and its ``(infer, autoguide, optim)`` modules."""
    name = "pyro" if impl.startswith("pyro") else "engine"
    ppl = importlib.import_module(name)
    modules = tuple(importlib.import_module(f"{name}.{m}") for m in ("infer", "infer.autoguide"))
    return ppl, (*modules, importlib.import_module(f"{name}.optim"))


def svi(impl: str, workload_name: str, plan: SviPlan) -> dict[str, Any]:
    """Time ``plan.first`` SVI steps from a new model, then the steady ms per step."""
    torch.set_num_threads(1)
    ppl, modules = _library(impl)
    workload = next(w for w in svi_workloads.workloads() if w.name == workload_name)
    infer = modules[0]
    name = "TraceEnum_ELBO" if workload.enumerated else "Trace_ELBO"
    if impl.endswith("-jit"):
        name = "Jit" + name
    options = {"max_plate_nesting": 1} if workload.enumerated else {}
    ppl.clear_param_store()
    ppl.set_rng_seed(0)

    def build() -> Any:
        svi_object = svi_workloads.make_svi(workload, ppl, modules, getattr(infer, name)(**options))
        return lambda: float(svi_object.step(*workload.args))

    return {"elbo": name, **time_svi(build, plan)}


def nuts(impl: str, workload_name: str, chains: int, plan: NutsPlan) -> dict[str, Any]:
    """Time one whole NUTS run (warm-up and draws) from a new kernel; ESS of its draws."""
    torch.set_num_threads(1)
    ppl, (infer, _, _) = _library(impl)
    workload = next(w for w in nuts_workloads.workloads() if w.name == workload_name)
    ppl.set_rng_seed(0)
    stamps: list[float] = []

    # Pyro runs several chains in worker processes, where a hook's stamps would be lost.
    def hook(*_: Any) -> None:
        stamps.append(time.perf_counter())

    if impl == "pyro" and chains > 1:
        hook = None
    cpu, start = cpu_seconds(), time.perf_counter()
    kernel = infer.NUTS(workload.build(ppl, ppl.distributions), jit_compile=impl == "engine-jit")
    mcmc = infer.MCMC(kernel, plan.num_samples, plan.num_warmup, num_chains=chains, hook_fn=hook)
    mcmc.run(*workload.args)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    ess = min_ess(mcmc.get_samples(group_by_chain=True))
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "min_ess": ess,
        "ess_per_s": ess / wall,
        "max_pause_s": longest_pause(start, stamps) if stamps else None,
    }
