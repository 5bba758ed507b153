"""The MCMC potential's gradient on its recorded plan against the full path, A/B in one process.

    PYTHONPATH=. python benchmarks/run_potential_plan.py            # both NUTS workloads
    PYTHONPATH=. python benchmarks/run_potential_plan.py --runs 0   # gradient evaluations only

For each NUTS workload (:mod:`benchmarks.nuts_workloads`) and chain count, one thread, the
process CPU time (``time.process_time``, which a busy machine inflates less than wall time) of
one energy-and-gradient evaluation, the full path (the model through the handler stack, then
autograd) and the plan alternating in rounds, median of the rounds; then whole NUTS runs
(``--warmup``/``--samples``) with and without the plan, alternating, with their gradient counts
and CPU time per gradient evaluation (all chains at once). Also the one-off cost of recording
the plan.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import engine
import engine.distributions as dist
from benchmarks.nuts_workloads import workloads
from engine.distributions.validation import trusted_run
from engine.infer import MCMC, NUTS
from engine.infer.mcmc.flat_layout import FlatLayout
from engine.infer.mcmc.gradient_plan import PlannedGradient
from engine.infer.mcmc.potential import Potential


def _cpu_per_call(fn: Callable[[], Any], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls


def gradient_ab(model: Callable, args: tuple, chains: int, rounds: int, calls: int) -> dict:
    """CPU seconds per evaluation on each path, alternating rounds, and the recording's cost."""
    potential = Potential(model, args)
    z = torch.randn(chains, potential.num_latent, generator=torch.Generator().manual_seed(0))
    with trusted_run():
        start = time.process_time()
        for _ in range(PlannedGradient.record_after):
            potential.energy_and_grad(z)
        record_s = time.process_time() - start
        if not potential._planned_gradient.plans:
            raise RuntimeError(f"no plan recorded: {potential._planned_gradient.refused}")
        times: dict[str, list[float]] = {"full": [], "plan": []}
        for _ in range(rounds):
            times["full"].append(
                _cpu_per_call(lambda: FlatLayout.energy_and_grad(potential, z), calls)
            )
            times["plan"].append(_cpu_per_call(lambda: potential.energy_and_grad(z), calls))
    full, plan = statistics.median(times["full"]), statistics.median(times["plan"])
    ratio = full / plan
    return {"full_us": 1e6 * full, "plan_us": 1e6 * plan, "ratio": ratio, "record_s": record_s}


def _nuts_run(model: Callable, args: tuple, chains: int, warmup: int, samples: int) -> dict:
    """One NUTS run: its process CPU time and its gradient evaluations (calls of the
    potential's ``energy_and_grad``, each for every chain at once)."""
    calls = [0]
    original = Potential.energy_and_grad

    def counted(self: Potential, z: torch.Tensor) -> Any:
        calls[0] += 1
        return original(self, z)

    Potential.energy_and_grad = counted
    try:
        engine.set_rng_seed(0)
        mcmc = MCMC(NUTS(model), num_samples=samples, warmup_steps=warmup, num_chains=chains)
        start = time.process_time()
        mcmc.run(*args)
        cpu = time.process_time() - start
    finally:
        Potential.energy_and_grad = original
    return {"cpu_s": cpu, "gradients": calls[0]}


def nuts_ab(model: Callable, args: tuple, chains: int, warmup: int, samples: int, runs: int):
    """Whole NUTS runs with the plan (as by default) and without (no shape may record one)."""
    results: dict[str, list[dict]] = {"full": [], "plan": []}
    default_max = PlannedGradient.max_plans
    for _ in range(runs):
        for path in ("full", "plan"):
            PlannedGradient.max_plans = 0 if path == "full" else default_max
            try:
                results[path].append(_nuts_run(model, args, chains, warmup, samples))
            finally:
                PlannedGradient.max_plans = default_max
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1, help="whole NUTS runs per path")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200)
    options = parser.parse_args()
    torch.set_num_threads(1)
    for workload in workloads():
        model = workload.build(engine, dist)
        for chains in options.chains:
            ab = gradient_ab(model, workload.args, chains, options.rounds, options.calls)
            print(
                f"{workload.name} chains={chains}: per gradient full {ab['full_us']:.0f} us, "
                f"plan {ab['plan_us']:.0f} us, ratio {ab['ratio']:.2f}x "
                f"(recording {ab['record_s']:.2f} s CPU)"
            )
            if options.runs:
                for path, runs in nuts_ab(
                    model, workload.args, chains, options.warmup, options.samples, options.runs
                ).items():
                    for run in runs:
                        print(
                            f"  NUTS {options.warmup}+{options.samples} {path}: "
                            f"{run['cpu_s']:.2f} s CPU, {run['gradients']} gradients, "
                            f"{1e6 * run['cpu_s'] / run['gradients']:.0f} us CPU per gradient"
                        )


if __name__ == "__main__":
    main()
