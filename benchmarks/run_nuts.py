"""Time NUTS on the engine and on Pyro in one run, and print ESS per second and the ratios.

    pip install -e '.[reference]'        # Pyro, for the side-by-side numbers
    python benchmarks/run_nuts.py        # --only nuts_eight_schools --chains 1 for a subset

Following shared/benchmarks/WORKLOADS.md: one thread, 500 warm-up iterations and 1000 draws per
chain, target acceptance 0.8, tree depth 10, diagonal mass matrix, init_to_uniform(radius 2),
seed 0. ``wall_s`` is warm-up plus sampling; ``min_ess`` is the smallest classic ESS
(:func:`engine.infer.mcmc.diagnostics.effective_sample_size`, NumPyro's algorithm) over every
scalar component of every latent site, the same function for every implementation. For
``engine-jit`` (``NUTS(jit_compile=True)``) the first run includes compiling; a second run of
the same ``MCMC`` object reuses the compiled code and is reported as ``warm``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.nuts_workloads import Workload, workloads
from engine.infer.mcmc.diagnostics import effective_sample_size


def _implementations() -> dict[str, tuple[Any, Any, Any, dict[str, Any]]]:
    """``name: (ppl, distributions, infer module, NUTS keyword arguments)``."""
    import engine
    import engine.distributions
    import engine.infer

    found = {
        "engine": (engine, engine.distributions, engine.infer, {}),
        "engine-jit": (engine, engine.distributions, engine.infer, {"jit_compile": True}),
    }
    try:
        import pyro
        import pyro.distributions
        import pyro.infer
    except ImportError:
        return found
    found["pyro"] = (pyro, pyro.distributions, pyro.infer, {})
    return found


def _count_pyro_gradients() -> list[int]:
    """Count Pyro's potential gradients by wrapping the function its integrator calls."""
    import pyro.ops.integrator as integrator

    count = [0]
    original = integrator.potential_grad

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    integrator.potential_grad = counted
    return count


def min_ess(samples: dict[str, torch.Tensor]) -> float:
    """The smallest ESS over every scalar component of the sites, draws grouped by chain."""
    smallest = float("inf")
    for value in samples.values():
        per_component = effective_sample_size(value.reshape(value.shape[0], value.shape[1], -1))
        smallest = min(smallest, float(per_component.min()))
    return smallest


def time_run(mcmc: Any, args: tuple) -> float:
    start = time.perf_counter()
    mcmc.run(*args)
    return time.perf_counter() - start


def measure(workload: Workload, name: str, impl: tuple, chains: int) -> dict[str, Any]:
    ppl, dist, infer, options = impl
    ppl.set_rng_seed(0)
    model = workload.build(ppl, dist)
    kernel = infer.NUTS(model, **options)
    quiet = {"disable_progbar": True} if name == "pyro" else {}
    mcmc = infer.MCMC(kernel, workload.num_samples, workload.num_warmup, num_chains=chains, **quiet)
    grads = _count_pyro_gradients() if name == "pyro" else None
    record: dict[str, Any] = {"wall_s": time_run(mcmc, workload.args)}
    record["min_ess"] = min_ess(mcmc.get_samples(group_by_chain=True))
    record["ess_per_s"] = record["min_ess"] / record["wall_s"]
    if grads is not None:
        record["grad_evals"] = grads[0]
    else:
        record["grad_evals"] = int(mcmc.num_leapfrog_steps.sum())
        record["chain_batching"] = kernel.potential.batching
    if name == "engine-jit":
        record["warm_wall_s"] = time_run(mcmc, workload.args)
        warm_ess = min_ess(mcmc.get_samples(group_by_chain=True))
        record["warm_min_ess"] = warm_ess
        record["warm_ess_per_s"] = warm_ess / record["warm_wall_s"]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="workload names to run")
    parser.add_argument("--chains", nargs="*", type=int, default=[1, 4])
    parser.add_argument("--impls", nargs="*", help="implementations (default: all found)")
    parser.add_argument("--out", type=Path, help="write the records as JSON here")
    options = parser.parse_args()
    torch.set_num_threads(1)
    impls = _implementations()
    if options.impls:
        impls = {name: impls[name] for name in options.impls}
    records = []
    for workload in workloads():
        if options.only and workload.name not in options.only:
            continue
        for chains in options.chains:
            row: dict[str, Any] = {"workload": workload.name, "chains": chains}
            for name, impl in impls.items():
                row[name] = measure(workload, name, impl, chains)
            records.append(row)
            print(f"{workload.name}, {chains} chain(s)", flush=True)
            for name in impls:
                r = row[name]
                line = (
                    f"  {name:10s} wall {r['wall_s']:7.2f} s  min ESS {r['min_ess']:7.1f}  "
                    f"ESS/s {r['ess_per_s']:7.1f}  grads {r['grad_evals']:6d}"
                )
                if "pyro" in row and name != "pyro":
                    line += f"  ESS/s vs pyro {r['ess_per_s'] / row['pyro']['ess_per_s']:.2f}"
                if "warm_wall_s" in r:
                    warm = r["warm_ess_per_s"]
                    line += f"  | warm: wall {r['warm_wall_s']:.2f} s, ESS/s {warm:.1f}"
                    if "pyro" in row:
                        line += f" ({warm / row['pyro']['ess_per_s']:.2f} x pyro)"
                print(line, flush=True)
    if options.out:
        options.out.write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
