"""Time the SVI workloads on the engine and on Pyro in one run, and print the ratios.

    pip install -e '.[reference]'        # Pyro, for the side-by-side numbers
    python benchmarks/run_svi.py         # add --sizes smoke for a quick look

Timing follows shared/benchmarks/WORKLOADS.md: one thread, the first step untimed, warm-up steps,
then blocks of steps; the figure is the median over blocks of ms per step. The mean loss over the
last block must agree between the implementations within Monte Carlo noise: that shows both
optimise the same objective from the same start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from benchmarks.svi_torch_floor import HandWrittenLinearRegression
from benchmarks.svi_workloads import Workload, make_svi, workloads


def _implementations() -> dict[str, tuple[Any, Any, Any, str]]:
    """``name: (ppl, distributions, (infer, autoguide, optim), ELBO class name)``."""
    import engine
    import engine.distributions
    import engine.infer
    import engine.infer.autoguide
    import engine.optim

    engine_modules = (engine.infer, engine.infer.autoguide, engine.optim)
    found = {
        "torch": (torch, None, None, _HAND_WRITTEN),
        "engine": (engine, engine.distributions, engine_modules, "Trace_ELBO"),
        "engine-jit": (engine, engine.distributions, engine_modules, "JitTrace_ELBO"),
    }
    try:
        import pyro
        import pyro.distributions
        import pyro.infer
        import pyro.infer.autoguide
        import pyro.optim
    except ImportError:
        return found
    pyro_modules = (pyro.infer, pyro.infer.autoguide, pyro.optim)
    found["pyro"] = (pyro, pyro.distributions, pyro_modules, "Trace_ELBO")
    found["pyro-jit"] = (pyro, pyro.distributions, pyro_modules, "JitTrace_ELBO")
    return found


# Pyro's JIT traces the mini-batch indices into the compiled loss: it would reuse one batch. The
# engine has no compiled TraceEnum_ELBO, so gmm_enum compares the eager ELBOs only.
_SKIP = {("svi_subsample", "pyro-jit"), ("gmm_enum", "engine-jit"), ("gmm_enum", "pyro-jit")}
# The floor (benchmarks/svi_torch_floor.py) is written for the full-data linear regression.
_HAND_WRITTEN = "hand-written"
_SKIP |= {(name, "torch") for name in ("svi_many_sites", "svi_subsample", "gmm_enum")}


def time_workload(
    workload: Workload, ppl: Any, dist: Any, modules: Any, elbo_name: str
) -> dict[str, Any]:
    torch.manual_seed(0)
    if elbo_name == _HAND_WRITTEN:
        svi = SimpleNamespace(step=HandWrittenLinearRegression(workload.args[0].shape[1]))
        return _timed(workload, svi, compiled=False)
    infer = modules[0]
    ppl.clear_param_store()
    ppl.set_rng_seed(0)
    if workload.enumerated:
        elbo = infer.TraceEnum_ELBO(max_plate_nesting=1)
    else:
        elbo = getattr(infer, elbo_name)()
    return _timed(workload, make_svi(workload, ppl, modules, elbo), elbo_name.startswith("Jit"))


def _timed(workload: Workload, svi: Any, compiled: bool) -> dict[str, Any]:
    start = time.perf_counter()
    svi.step(*workload.args)
    if compiled:
        svi.step(*workload.args)  # the first compiled step (the first one runs eagerly)
    first_s = time.perf_counter() - start
    for _ in range(workload.warmup):
        svi.step(*workload.args)
    block_ms, last_losses = [], []
    for _ in range(workload.blocks):
        start = time.perf_counter()
        last_losses = [svi.step(*workload.args) for _ in range(workload.steps_per_block)]
        block_ms.append((time.perf_counter() - start) * 1e3 / workload.steps_per_block)
    return {
        "value": statistics.median(block_ms),
        "blocks_ms": block_ms,
        "min_ms": min(block_ms),
        "first_steps_s": first_s,
        "loss_last_block_mean": statistics.fmean(last_losses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", choices=["full", "smoke"], default="full")
    parser.add_argument("--only", nargs="*", help="workload names to run")
    parser.add_argument("--out", type=Path, help="write the records as JSON here")
    parser.add_argument("--impls", nargs="*", help="implementations to run (default: all found)")
    options = parser.parse_args()
    torch.set_num_threads(1)
    impls = _implementations()
    if options.impls:
        impls = {name: impls[name] for name in options.impls}
    records = []
    for workload in workloads(options.sizes):
        if options.only and workload.name not in options.only:
            continue
        row = {"workload": workload.name}
        for name, (ppl, dist, modules, elbo_name) in impls.items():
            if (workload.name, name) not in _SKIP:
                row[name] = time_workload(workload, ppl, dist, modules, elbo_name)
        records.append(row)
        print(workload.name, flush=True)
        for name in impls:
            if name not in row:
                continue
            r = row[name]
            line = f"  {name:11s} {r['value']:8.3f} ms/step  loss {r['loss_last_block_mean']:12.3f}"
            line += f"  first step(s) {r['first_steps_s']:6.2f} s"
            for reference in ("pyro", "pyro-jit", "torch"):
                if reference in row and reference != name and not name.startswith("pyro"):
                    line += f"  /{reference} {r['value'] / row[reference]['value']:.3f}"
            print(line, flush=True)
    if options.out:
        options.out.write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
