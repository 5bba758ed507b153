"""Time the compiled ELBOs over arguments of several lengths: N steps over K lengths, eager
against compiled, compilation included.

    PYTHONPATH=. python benchmarks/run_jit_shapes.py --preset tutorial-hmm
    PYTHONPATH=. python benchmarks/run_jit_shapes.py --preset tutorial-normal --impls engine pyro
    PYTHONPATH=. python benchmarks/run_jit_shapes.py --workload hmm --lengths 16 20 24 28 \\
        --repeats 10 --epochs 3 --impls engine engine-jit engine-jit-static

The workloads are the two models of Pyro's JIT tutorial (``tutorial/source/jit.ipynb``):
``normal``, a Normal with unknown location and scale over a plate of ``size`` points
(``JitTrace_ELBO``), and ``hmm``, its Gaussian HMM with 16 hidden states summed out by
``JitTraceEnum_ELBO(max_plate_nesting=1)``, one site per time step, so that each length is a
model of its own structure. Both pass the length as a keyword argument, as the tutorial asks of
models run by a JIT ELBO. The guide is the tutorial's ``AutoDiagonalNormal``, set up before the
first step; the optimizer ``Adam({"lr": 0.01})``.

A schedule is ``--epochs`` passes over ``--lengths``, ``--repeats`` consecutive steps at each
(the HMM draws a new sequence of that length for each of them). The presets are the tutorial's
own: ``tutorial-normal`` is 1,000 steps on 100 points, ``tutorial-hmm`` 10 passes over 50
sequences of length 24, 20 of 48 and 5 of 72.

Implementations: ``engine`` (the eager ``Trace_ELBO``/``TraceEnum_ELBO``), ``engine-jit`` (the
compiled ELBO as shipped: sizes made dynamic only between shapes with the same sites),
``engine-jit-static``, ``engine-jit-auto``, ``engine-jit-dynamic`` and ``engine-jit-aot`` (the
same with ``jit_options`` ``{"dynamic": False}`` (every shape compiled for its sizes),
``{"dynamic": None}`` (torch's automatic dynamic shapes: sizes that changed are made dynamic at
the second compilation), ``{"dynamic": True}`` or ``{"backend": "aot_eager"}``), ``pyro`` and
``pyro-jit`` (Pyro 1.9.2, when it can be imported). Each runs in a process of its own with an
empty inductor cache, so every compilation is paid in full. Reported: the wall time of all
steps; the one-off cost (that wall time less each step's steady time: compilation, and the eager
first steps); the steady ms per step of each length (the median after its first three steps);
the number of graphs ``torch.compile`` built; the mean loss of the last pass (the
implementations must agree within Monte Carlo noise).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

PRESETS = {
    "tutorial-normal": {"workload": "normal", "lengths": [100], "repeats": [1000], "epochs": 1},
    "tutorial-hmm": {
        "workload": "hmm",
        "lengths": [24, 48, 72],
        "repeats": [50, 20, 5],
        "epochs": 10,
    },
}
# The engine's compiled variants: their jit_options.
ENGINE_JIT = {
    "engine-jit": {},
    "engine-jit-static": {"dynamic": False},
    "engine-jit-auto": {"dynamic": None},
    "engine-jit-dynamic": {"dynamic": True},
    "engine-jit-aot": {"backend": "aot_eager"},
}
IMPLEMENTATIONS = ["engine", *ENGINE_JIT, "pyro", "pyro-jit"]


def _import(impl: str) -> tuple[Any, Any, Any, Any, Any, Any]:
    if impl.startswith("pyro"):
        import pyro as ppl
        import pyro.distributions as dist
        import pyro.infer as infer
        import pyro.infer.autoguide as autoguide
        import pyro.optim as optim
        from pyro import poutine
    else:
        import engine as ppl
        import engine.distributions as dist
        import engine.infer as infer
        import engine.infer.autoguide as autoguide
        import engine.optim as optim
        from engine import poutine
    return ppl, dist, infer, autoguide, optim, poutine


def _normal(ppl: Any, dist: Any, poutine: Any) -> tuple[Any, Any]:
    def model(data: torch.Tensor, size: int) -> None:
        loc = ppl.sample("loc", dist.Normal(0.0, 10.0))
        scale = ppl.sample("scale", dist.LogNormal(0.0, 3.0))
        with ppl.plate("data", size):
            ppl.sample("obs", dist.Normal(loc, scale), obs=data)

    return model, model


def _hmm(ppl: Any, dist: Any, poutine: Any) -> tuple[Any, Any]:
    def model(sequence: torch.Tensor, num_sequences: int, length: int, state_dim: int = 16):
        with ppl.plate("states", state_dim):
            trans = ppl.sample("trans", dist.Dirichlet(0.5 * torch.ones(state_dim)))
            emit_loc = ppl.sample("emit_loc", dist.Normal(0.0, 10.0))
        emit_scale = ppl.sample("emit_scale", dist.LogNormal(0.0, 3.0))
        with poutine.scale(scale=num_sequences):
            x = 0
            for t in ppl.markov(range(length)):
                x = ppl.sample(
                    f"x_{t}", dist.Categorical(trans[x]), infer={"enumerate": "parallel"}
                )
                ppl.sample(f"y_{t}", dist.Normal(emit_loc[x], emit_scale), obs=sequence[t])

    return model, poutine.block(model, expose=["trans", "emit_scale", "emit_loc"])


def schedule(config: dict[str, Any]) -> list[tuple[torch.Tensor, dict[str, int]]]:
    """The arguments of every step, the same for every implementation."""
    generator = torch.Generator().manual_seed(0)
    lengths = config["lengths"]
    pairs = list(zip(lengths, config["repeats"], strict=True))
    if config["workload"] == "normal":
        data = {n: 0.5 + 2.0 * torch.randn(n, generator=generator) for n in lengths}
        one_pass = [(data[n], {"size": n}) for n, r in pairs for _ in range(r)]
    else:
        total = sum(config["repeats"])
        one_pass = [
            (torch.randn(n, generator=generator), {"num_sequences": total, "length": n})
            for n, r in pairs
            for _ in range(r)
        ]
    return one_pass * config["epochs"]


def _elbo(impl: str, infer: Any, config: dict[str, Any]) -> Any:
    enum = config["workload"] == "hmm"
    options = {"max_plate_nesting": 1} if enum else {}
    if impl in ("engine", "pyro"):
        return (infer.TraceEnum_ELBO if enum else infer.Trace_ELBO)(**options)
    jit_class = infer.JitTraceEnum_ELBO if enum else infer.JitTrace_ELBO
    if impl in ENGINE_JIT:
        options["jit_options"] = ENGINE_JIT[impl]
    if impl.startswith("engine") and config.get("max_compiled_shapes") is not None:
        options["max_compiled_shapes"] = config["max_compiled_shapes"]
    return jit_class(**options)


def run_one(impl: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run the schedule with one implementation, in this process."""
    import warnings

    from torch._dynamo.utils import counters

    torch.set_num_threads(1)
    ppl, dist, infer, autoguide, optim, poutine = _import(impl)
    model, guided = {"normal": _normal, "hmm": _hmm}[config["workload"]](ppl, dist, poutine)
    steps = schedule(config)
    ppl.clear_param_store()
    ppl.set_rng_seed(0)
    guide = autoguide.AutoDiagonalNormal(guided)
    guide(steps[0][0], **steps[0][1])  # lazy initialisation before compiling, as the tutorial
    svi = infer.SVI(model, guide, optim.Adam({"lr": 0.01}), _elbo(impl, infer, config))
    times, losses = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        for data, kwargs in steps:
            before = time.perf_counter()
            losses.append(svi.step(data, **kwargs))
            times.append(time.perf_counter() - before)
        wall = time.perf_counter() - start
    by_length: dict[int, list[float]] = {}
    lengths = [data.shape[0] for data, _ in steps]
    for n, seconds in zip(lengths, times, strict=True):
        by_length.setdefault(n, []).append(seconds)
    steady = {n: statistics.median(ts[3:] or ts) for n, ts in by_length.items()}
    one_pass = len(steps) // config["epochs"]
    return {
        "impl": impl,
        "wall_s": wall,
        "one_off_s": wall - sum(steady[n] for n in lengths),
        "steady_ms": {str(n): 1e3 * s for n, s in steady.items()},
        "graphs": counters["stats"]["unique_graphs"],
        "loss_last_pass": statistics.fmean(losses[-one_pass:]),
        "warnings": sorted({str(w.message) for w in caught if str(w.message).startswith("Jit")}),
    }


def _run_in_child(impl: str, config: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="inductor-cache-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        command = [sys.executable, "-m", "benchmarks.run_jit_shapes", "--child", impl]
        done = subprocess.run(
            [*command, "--config", json.dumps(config)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        return {"impl": impl, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _print(config: dict[str, Any], record: dict[str, Any]) -> None:
    if "error" in record:
        print(f"  {record['impl']:19s} failed: {record['error']}", flush=True)
        return
    steady = ", ".join(f"{n}: {ms:.1f}" for n, ms in record["steady_ms"].items())
    print(
        f"  {record['impl']:19s} wall {record['wall_s']:7.1f} s"
        f"  one-off {record['one_off_s']:7.1f} s"
        f"  graphs {record['graphs']:2d}  loss {record['loss_last_pass']:10.2f}"
        f"  ms/step by length {{{steady}}}",
        flush=True,
    )
    for message in record["warnings"]:
        print(f"    warning: {message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS))
    parser.add_argument("--workload", choices=["normal", "hmm"], default="hmm")
    parser.add_argument("--lengths", type=int, nargs="+", default=[24, 48, 72])
    parser.add_argument("--repeats", type=int, nargs="+", default=[10])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--impls", nargs="+", choices=IMPLEMENTATIONS, default=IMPLEMENTATIONS)
    parser.add_argument(
        "--max-compiled-shapes", type=int, help="the engine's bound (default: the ELBO's own)"
    )
    parser.add_argument("--out", type=Path, help="write the records as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(run_one(options.child, json.loads(options.config))))
        return
    if options.preset:
        config = dict(PRESETS[options.preset])
    else:
        repeats = options.repeats * len(options.lengths) if len(options.repeats) == 1 else None
        config = {
            "workload": options.workload,
            "lengths": options.lengths,
            "repeats": repeats or options.repeats,
            "epochs": options.epochs,
        }
    config["max_compiled_shapes"] = options.max_compiled_shapes
    if len(config["repeats"]) != len(config["lengths"]):
        parser.error("give one --repeats, or one per length")
    steps = sum(config["repeats"]) * config["epochs"]
    print(
        f"{config['workload']}: {steps} steps over lengths {config['lengths']} "
        f"(repeats {config['repeats']}, {config['epochs']} passes)",
        flush=True,
    )
    records = []
    for impl in options.impls:
        record = _run_in_child(impl, config)
        records.append(record)
        _print(config, record)
    if options.out:
        options.out.write_text(json.dumps({"config": config, "records": records}, indent=2))


if __name__ == "__main__":
    main()
