"""Time to result, as a notebook user waits: the engine, Pyro and NumPyro side by side, cold.

    PYTHONPATH=. python -m benchmarks.time_to_result --pyro-path /tmp/pyrolib \\
        --jax-path /tmp/numpyrolib --out ttr.json --markdown ttr.md
    PYTHONPATH=. python -m benchmarks.time_to_result --smoke --impls engine   # a quick check

Every measurement runs in a fresh process with an empty torch compile cache (its own
``TORCHINDUCTOR_CACHE_DIR``, ``TRITON_CACHE_DIR`` and ``XDG_CACHE_HOME``) and JAX's persistent
compilation cache off, one thread, each library's default settings. SVI (svi_small, gmm_enum):
wall time from building the model, guide and SVI object to the end of the first 1,000 steps,
then the median ms per step over 5 blocks of 100 later steps. NUTS (eight schools, logistic
regression; 1 and 4 chains): the whole run's wall time (500 warm-up iterations and 1,000 draws
per chain, building the kernel included), the smallest ESS (``benchmarks.run_nuts.min_ess``) and
ESS per second; NumPyro's second run on the same object is reported beside its first.
``max pause`` is the longest wait between two results (SVI steps, NUTS iterations) from the
start, compilation included: the issue asks that no default path block for more than 2 s. Library
imports are done before the clock starts (a notebook has them already). Implementations whose
library cannot be imported are skipped with a message. Pyro and NumPyro come from scratch
folders named by ``--pyro-path`` / ``--jax-path`` (or are already importable): the extras
``reference`` and ``reference-jax`` of pyproject.toml name their versions.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.machinery
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.ttr_timing import NutsPlan, SviPlan

ROOT = Path(__file__).resolve().parent.parent
SVI_WORKLOADS = ["svi_small", "gmm_enum"]
NUTS_WORKLOADS = ["nuts_eight_schools", "nuts_logistic"]
SVI_IMPLS = ["engine", "engine-jit", "pyro", "pyro-jit", "numpyro"]
NUTS_IMPLS = ["engine", "engine-jit", "pyro", "numpyro"]
LIBRARY = {"engine": "engine", "pyro": "pyro", "numpyro": "numpyro"}
# The full plans of WORKLOADS.md, and the smoke plans of --smoke (a check that all runs).
PLANS = {
    False: (SviPlan(), NutsPlan()),
    True: (SviPlan(first=50, blocks=2, per_block=10), NutsPlan(num_warmup=20, num_samples=30)),
}


def _library(impl: str) -> str:
    return LIBRARY[impl.split("-")[0]]


def available(impl: str, extra_path: Sequence[str]) -> bool:
    """Whether ``impl``'s library can be imported from ``extra_path`` or this interpreter's path.

    >>> available("engine", [])
    True
    >>> available("pyro-jit", ["/nonexistent"]) == available("pyro", [])
    True
    """
    name = _library(impl)
    return importlib.machinery.PathFinder.find_spec(name, [*extra_path, *sys.path]) is not None


def run_child(
    job: dict[str, Any],
    extra_path: Sequence[str],
    timeout: float,
    module: str = "benchmarks.time_to_result",
) -> dict[str, Any]:
    """Run one measurement in a fresh process with empty compile caches (``module --child
    JOB``, which prints its record as the last line); its record."""
    with tempfile.TemporaryDirectory(prefix="ttr-cache-") as cache:
        path = [str(ROOT), *extra_path, os.environ.get("PYTHONPATH", "")]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in path if p),
            "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "inductor"),
            "TRITON_CACHE_DIR": os.path.join(cache, "triton"),
            "XDG_CACHE_HOME": cache,
            "JAX_ENABLE_COMPILATION_CACHE": "false",
            "JAX_PLATFORMS": "cpu",
            "OMP_NUM_THREADS": "1",
            # One thread for XLA's CPU backend too, as torch.set_num_threads(1) for the others.
            "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
        }
        command = [sys.executable, "-m", module, "--child", json.dumps(job)]
        try:
            done = subprocess.run(
                command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {**job, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {**job, "error": " ".join(done.stderr.strip().splitlines()[-1:])}
    return {**job, **json.loads(done.stdout.strip().splitlines()[-1])}


def _measure(job: dict[str, Any]) -> dict[str, Any]:
    """In the child: import the implementation's module and take the measurement."""
    if job["impl"] == "numpyro":
        from benchmarks import ttr_numpyro as module
    else:
        from benchmarks import ttr_torch as module
    if job["kind"] == "svi":
        return module.svi(job["impl"], job["workload"], SviPlan(**job["plan"]))
    return module.nuts(job["impl"], job["workload"], job["chains"], NutsPlan(**job["plan"]))


def jobs(smoke: bool, impls: Sequence[str], only: Sequence[str] | None) -> list[dict[str, Any]]:
    """Every measurement of one run, in the order they are taken.

    >>> [(j["workload"], j["impl"]) for j in jobs(True, ["engine"], ["svi_small"])]
    [('svi_small', 'engine')]
    >>> [j["chains"] for j in jobs(False, ["pyro"], ["nuts_logistic"])]
    [1, 4]
    """
    svi_plan, nuts_plan = PLANS[smoke]
    found = []
    for workload in SVI_WORKLOADS:
        for impl in (i for i in SVI_IMPLS if i in impls):
            job = {"kind": "svi", "workload": workload, "impl": impl}
            found.append({**job, "plan": asdict(svi_plan)})
    for workload in NUTS_WORKLOADS:
        for chains in (1, 4):
            for impl in (i for i in NUTS_IMPLS if i in impls):
                job = {"kind": "nuts", "workload": workload, "chains": chains, "impl": impl}
                found.append({**job, "plan": asdict(nuts_plan)})
    return [j for j in found if not only or j["workload"] in only]


def versions(extra_path: Sequence[str]) -> dict[str, str]:
    """The versions of the libraries compared, read from their installed metadata."""
    import importlib.metadata

    found = {"python": platform.python_version()}
    distributions = importlib.metadata.distributions(path=[*extra_path, *sys.path])
    wanted = {"torch", "pyro-ppl", "numpyro", "jax", "jaxlib", "funsor", "pplkernel"}
    for distribution in distributions:
        name = distribution.metadata["Name"]
        if name and name.lower() in wanted and name.lower() not in found:
            found[name.lower()] = distribution.version
    return found


def _cell(record: dict[str, Any] | None, key: str, digits: int = 2) -> str:
    if record is None:
        return "—"
    if "error" in record:
        return "failed"
    value = record.get(key)
    return "—" if value is None else f"{value:.{digits}f}"


def _ratio(records: dict[str, dict[str, Any]], key: str, over: str) -> str:
    mine, theirs = records.get("engine", {}).get(key), records.get(over, {}).get(key)
    if mine is None or not theirs:  # not measured, failed, or not measurable (a pause)
        return "—"
    return f"{mine / theirs:.2f}"


def markdown(records: list[dict[str, Any]]) -> str:
    """Two tables (SVI, NUTS) with the engine's ratios against Pyro and NumPyro.

    >>> row = {"kind": "svi", "workload": "w", "first_s": 2.0, "max_pause_s": None}
    >>> text = markdown([{**row, "impl": "engine"}, {**row, "impl": "pyro", "first_s": 4.0}])
    >>> "| w | first 1,000 steps (s) | 2.00 | — | 4.00 | — | — | 0.50 | — |" in text
    True
    >>> "| w | max pause (s) | — | — | — | — | — | — | — |" in text
    True
    """
    grouped: dict[tuple, dict[str, dict[str, Any]]] = {}
    for record in records:
        key = (record["kind"], record["workload"], record.get("chains"))
        grouped.setdefault(key, {})[record["impl"]] = record
    lines = [
        "| workload | measure | engine | engine-jit | pyro | pyro-jit | numpyro "
        "| engine /pyro | engine /numpyro |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    svi_rows = [
        ("first 1,000 steps (s)", "first_s", 2),
        ("CPU of those (s)", "first_cpu_s", 2),
        ("later steps (ms/step)", "steady_ms", 3),
        ("max pause (s)", "max_pause_s", 2),
    ]
    for (kind, workload, _), by_impl in grouped.items():
        if kind != "svi":
            continue
        # --smoke takes fewer first steps: the label says how many.
        first = next((r["plan"]["first"] for r in by_impl.values() if "plan" in r), 1000)
        for label, key, digits in svi_rows:
            label = label.replace("1,000", f"{first:,}")
            cells = [_cell(by_impl.get(i), key, digits) for i in SVI_IMPLS]
            ratios = [_ratio(by_impl, key, "pyro"), _ratio(by_impl, key, "numpyro")]
            lines.append(f"| {workload} | {label} | {' | '.join(cells + ratios)} |")
    lines += [
        "",
        "| workload | chains | measure | engine | engine-jit | pyro | numpyro (first run) "
        "| numpyro (second run) | engine /pyro | engine /numpyro (first) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    nuts_rows = [
        ("wall (s)", "wall_s", 1),
        ("CPU (s)", "cpu_s", 1),
        ("min ESS", "min_ess", 0),
        ("ESS/s", "ess_per_s", 1),
        ("max pause (s)", "max_pause_s", 2),
    ]
    for (kind, workload, chains), by_impl in grouped.items():
        if kind != "nuts":
            continue
        for label, key, digits in nuts_rows:
            cells = [_cell(by_impl.get(i), key, digits) for i in NUTS_IMPLS]
            cells.append(_cell(by_impl.get("numpyro"), "second_" + key, digits))
            ratios = [_ratio(by_impl, key, "pyro"), _ratio(by_impl, key, "numpyro")]
            lines.append(f"| {workload} | {chains} | {label} | {' | '.join(cells + ratios)} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="fewer steps and draws")
    parser.add_argument("--impls", nargs="+", default=SVI_IMPLS, choices=SVI_IMPLS)
    parser.add_argument("--only", nargs="+", choices=SVI_WORKLOADS + NUTS_WORKLOADS)
    parser.add_argument("--pyro-path", action="append", default=[], help="where Pyro is")
    parser.add_argument("--jax-path", action="append", default=[], help="where NumPyro is")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement")
    parser.add_argument("--out", type=Path, help="write the JSON record here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        print(json.dumps(_measure(json.loads(options.child))))
        return
    paths = {"engine": [], "pyro": options.pyro_path, "numpyro": options.jax_path}
    impls = []
    for impl in options.impls:
        if available(impl, paths[_library(impl)]):
            impls.append(impl)
        else:
            print(f"skipping {impl}: {_library(impl)} cannot be imported (see --help)", flush=True)
    command = sys.argv[1:] if argv is None else list(argv)
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "threads": 1,
        "smoke": options.smoke,
        "command": " ".join(["python -m benchmarks.time_to_result", *command]),
        "versions": versions(options.pyro_path + options.jax_path),
        "load_average": {"before": os.getloadavg()},
        "records": [],
    }

    def save() -> None:
        # After every measurement, so that a long run cut short keeps what it took.
        result["load_average"]["after"] = os.getloadavg()
        if options.out:
            options.out.write_text(json.dumps(result, indent=2))
        if options.markdown:
            options.markdown.write_text(markdown(result["records"]))

    save()
    for job in jobs(options.smoke, impls, options.only):
        record = run_child(job, paths[_library(job["impl"])], options.timeout)
        result["records"].append(record)
        print(json.dumps({k: v for k, v in record.items() if k != "plan"}), flush=True)
        save()
    print(markdown(result["records"]))


if __name__ == "__main__":
    main()
