"""An HMM whose hidden states are enumerated in the guide, on the engine and on Pyro: time and
peak memory at 30 and 300 steps, side by side.

    PYTHONPATH=. python -m benchmarks.run_guide_enum_hmm --pyro-path /tmp/pyrolib

The guide enumerates each step's state in parallel under ``markov`` (its transition table is a
parameter), the model has Gaussian emissions, and SVI with ``TraceEnum_ELBO`` and Adam takes
steps on it. Each measurement runs in a fresh process (``time_to_result.run_child``: one thread,
empty compile caches), after the library is imported and the data made: the first step's wall
time, the median ms per step over the next steps, and the peak resident memory the steps added
(``ru_maxrss`` after, minus before). Enumerating the guide must cost what the forward algorithm
costs, so both grow linearly with the number of steps. The default 8 timed steps stay on SVI's
checked path: from the 10th step SVI records a step plan (``engine/infer/svi_step_plan.py``),
whose recording of this long enumerated step is measured apart (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.time_to_result import available, run_child

STATES = 3
LENGTHS = (30, 300)
IMPLS = ("engine", "pyro")


def _hmm(ppl: Any, dist: Any, infer: Any) -> tuple[Any, Any]:
    import torch

    transition = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
    locs = torch.tensor([-1.5, 0.0, 1.8])

    def model(observed):
        state = 0
        for t in ppl.markov(range(len(observed))):
            state = ppl.sample(f"state_{t}", dist.Categorical(transition[state]))
            ppl.sample(f"y_{t}", dist.Normal(locs[state], 1.0), obs=observed[t])

    @infer.config_enumerate
    def guide(observed):
        simplex = dist.constraints.simplex
        table = ppl.param("table", torch.full((STATES, STATES), 1.0 / STATES), constraint=simplex)
        start = ppl.param("start", torch.full((STATES,), 1.0 / STATES), constraint=simplex)
        state = None
        for t in ppl.markov(range(len(observed))):
            probs = start if state is None else table[state]
            state = ppl.sample(f"state_{t}", dist.Categorical(probs))

    return model, guide


def measure(impl: str, steps: int, svi_steps: int) -> dict[str, Any]:
    """In the child: the first SVI step's time, the median of the next ones, the peak memory."""
    import torch

    torch.set_num_threads(1)
    ppl = importlib.import_module(impl)
    dist = importlib.import_module(f"{impl}.distributions")
    infer = importlib.import_module(f"{impl}.infer")
    optim = importlib.import_module(f"{impl}.optim")
    ppl.set_rng_seed(0)
    observed = torch.linspace(-2.0, 2.0, steps)
    model, guide = _hmm(ppl, dist, infer)
    svi = infer.SVI(
        model, guide, optim.Adam({"lr": 0.05}), infer.TraceEnum_ELBO(max_plate_nesting=0)
    )
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    svi.step(observed)
    first_s = time.perf_counter() - start
    step_ms = []
    for _ in range(svi_steps):
        start = time.perf_counter()
        loss = svi.step(observed)
        step_ms.append((time.perf_counter() - start) * 1e3)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "first_step_s": first_s,
        "ms_per_step": statistics.median(step_ms),
        "peak_added_mb": (peak_kb - before_kb) / 1024,
        "peak_rss_mb": peak_kb / 1024,
        "loss": loss,
    }


def _ratio(records: dict[tuple[str, int], dict[str, Any]], key: str, steps: int) -> str:
    engine, pyro = records.get(("engine", steps), {}), records.get(("pyro", steps), {})
    if key not in engine or key not in pyro or not pyro[key]:
        return "-"
    return f"{engine[key] / pyro[key]:.2f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pyro-path", action="append", default=[], help="where Pyro is")
    parser.add_argument("--svi-steps", type=int, default=8, help="timed steps after the first")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        job = json.loads(options.child)
        print(json.dumps(measure(job["impl"], job["steps"], job["svi_steps"])))
        return
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for impl in IMPLS:
        if not available(impl, options.pyro_path):
            print(f"{impl}: not importable, skipped", file=sys.stderr)
            continue
        for steps in LENGTHS:
            job = {"impl": impl, "steps": steps, "svi_steps": options.svi_steps}
            record = run_child(
                job, options.pyro_path, options.timeout, module="benchmarks.run_guide_enum_hmm"
            )
            records[(impl, steps)] = record
            print(json.dumps(record), flush=True)
    print("\n| steps | impl | first step (s) | ms per step | peak added (MB) | loss |")
    print("|---|---|---|---|---|---|")
    for steps in LENGTHS:
        for impl in IMPLS:
            r = records.get((impl, steps))
            if r is None:
                continue
            if "error" in r:
                print(f"| {steps} | {impl} | {r['error']} | | | |")
                continue
            print(
                f"| {steps} | {impl} | {r['first_step_s']:.3f} | {r['ms_per_step']:.1f} | "
                f"{r['peak_added_mb']:.1f} | {r['loss']:.2f} |"
            )
        print(
            f"| {steps} | engine / pyro | {_ratio(records, 'first_step_s', steps)} | "
            f"{_ratio(records, 'ms_per_step', steps)} | {_ratio(records, 'peak_added_mb', steps)} |"
            " |"
        )


if __name__ == "__main__":
    main()
