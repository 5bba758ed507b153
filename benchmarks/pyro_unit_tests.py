"""Run Pyro's own unit tests of its public API against the engine, and against Pyro, file by file.

    PYTHONPATH=. python -m benchmarks.pyro_unit_tests --pyro-checkout ~/src/pyro
    PYTHONPATH=. python -m benchmarks.pyro_unit_tests --pyro-checkout ~/src/pyro \\
        --pyro-path /opt/pyrolib --only tests/poutine --json results/pyro_unit.json

The checkout is only read: each test file runs in a fresh ``python -m pytest`` subprocess (with
Pyro's own ``conftest.py`` and ``setup.cfg``, so warnings are errors and the default dtype is
float64, as in Pyro's CI), once where ``import pyro`` is the engine (the alias package of
``tutorial_runner/pyro_alias.py``) and, with ``--pyro-path``, once where it is Pyro. Nothing of
Pyro's is copied into the project.

A file's pass rate is passed / (passed + failed + errors): skipped and expected failures are left
out; a file that fails to import counts 0; a file cut off by ``--timeout`` counts its tests that
never ran as failed. Files in which nothing runs here (all skipped: CUDA only, funsor missing) are
left out of the mean, on both sides alike. The areas are those the engine's API covers:
``tests/infer``, ``tests/poutine``, ``tests/distributions`` and ``tests/test_primitives.py``,
less ``NOT_PUBLIC`` (files whose subject is a Pyro internal).

On the engine side a file that imports one of Pyro's internals (``pyro.ops``, contrib, a private
name: issue 17's non-goals) gets a stand-in for it that fails every test using it
(``pyro_internal_stand_ins.py``), so the file's other tests run; the report lists the stand-ins
each file received. ``--without-stand-ins`` counts such files 0, as at import failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.tutorial_runner.execute import run_script
from benchmarks.tutorial_runner.pyro_alias import write_alias_package

AREAS = ("tests/infer", "tests/poutine", "tests/distributions", "tests/test_primitives.py")

STAND_INS_PLUGIN = "benchmarks.pyro_internal_stand_ins"

NOT_PUBLIC = {
    "tests/infer/test_compute_downstream_costs.py": "TraceGraph_ELBO's private cost bookkeeping",
    "tests/infer/mcmc/test_mcmc_util.py": "pyro.infer.mcmc.util internals",
}

OUTCOME_PLUGIN = '''"""Each test's outcome as a JSON line in $PYRO_UNIT_OUTCOMES."""

import json
import os


def _write(record):
    with open(os.environ["PYRO_UNIT_OUTCOMES"], "a") as out:
        out.write(json.dumps(record) + "\\n")


def pytest_collectreport(report):
    if report.failed:
        _write({"kind": "collect_error", "message": str(report.longrepr)[-2000:]})


def pytest_collection_finish(session):
    _write({"kind": "collected", "count": len(session.items)})


def pytest_runtest_logreport(report):
    xfail = hasattr(report, "wasxfail")
    if report.when == "call" or report.outcome != "passed":
        if report.skipped:
            outcome = "skipped"
        elif xfail:
            outcome = "passed" if report.passed else "skipped"
        elif report.passed:
            outcome = "passed"
        else:
            outcome = "failed" if report.when == "call" else "error"
        message = ""
        if outcome in ("failed", "error"):
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash is not None else str(report.longrepr)[-500:]
        _write({"kind": "test", "id": report.nodeid, "outcome": outcome,
                "message": message[:500]})
'''

_LAUNCHER = "import sys\nimport pytest\n\nsys.exit(pytest.main(sys.argv[1:]))\n"


@dataclass(frozen=True)
class FileResult:
    """How one test file fared on one side.

    >>> FileResult("t.py", 3, 1, 0, 2, 0, False, ()).rate()
    0.75
    >>> FileResult("t.py", 0, 0, 0, 0, 1, False, ()).rate()
    0.0
    >>> FileResult("t.py", 0, 0, 0, 4, 0, False, ()).rate() is None
    True
    """

    path: str
    passed: int
    failed: int
    errors: int
    skipped: int
    collect_errors: int
    timed_out: bool
    first_failures: tuple[str, ...]
    stand_ins: tuple[str, ...] = ()

    def rate(self) -> float | None:
        """The pass rate, 0 for a file that did not import, None where nothing ran."""
        if self.collect_errors:
            return 0.0
        ran = self.passed + self.failed + self.errors
        return self.passed / ran if ran else None


def outcomes_to_result(
    path: str, lines: Sequence[str], timed_out: bool, crash: str | None = None
) -> FileResult:
    """Count a file's outcomes from the plugin's JSON lines; unrun tests of a cut-off run fail.

    ``crash`` is the error of a process that ended abnormally (a conftest that does not import, a
    segfault): before collection it counts as an import failure, after it like a timeout.

    >>> lines = ['{"kind": "collected", "count": 3}',
    ...          '{"kind": "test", "id": "a", "outcome": "passed", "message": ""}',
    ...          '{"kind": "test", "id": "b", "outcome": "failed", "message": "boom"}']
    >>> result = outcomes_to_result("t.py", lines, timed_out=True)
    >>> result.passed, result.failed, result.first_failures
    (1, 2, ('b: boom',))
    >>> outcomes_to_result("t.py", [], False, "ImportError: no pyro.ops").first_failures
    ('ImportError: no pyro.ops',)
    """
    records = [json.loads(line) for line in lines if line.strip()]
    collected = sum(r["count"] for r in records if r["kind"] == "collected")
    tests = [r for r in records if r["kind"] == "test"]
    counts = Counter(r["outcome"] for r in tests)
    cut_off = timed_out or crash is not None
    unrun = max(collected - len({r["id"] for r in tests}), 0) if cut_off else 0
    collect_errors = [r for r in records if r["kind"] == "collect_error"]
    if crash is not None and not any(r["kind"] == "collected" for r in records):
        collect_errors.append({"message": crash})
    failures = [
        f"{r['id']}: {r['message'].splitlines()[0] if r['message'] else ''}"
        for r in tests
        if r["outcome"] in ("failed", "error")
    ]
    failures += [r["message"].strip().splitlines()[-1] for r in collect_errors if r["message"]]
    return FileResult(
        path,
        counts["passed"],
        counts["failed"] + unrun,
        counts["error"],
        counts["skipped"],
        len(collect_errors),
        timed_out,
        tuple(failures[:5]),
        tuple(sorted({r["name"] for r in records if r["kind"] == "stand_in"})),
    )


def area_files(checkout: Path, only: Sequence[str]) -> list[str]:
    """The test files of the areas (or of ``only``), relative to the checkout, sorted."""
    roots = only or AREAS
    found: set[str] = set()
    for root in roots:
        target = checkout / root
        paths = [target] if target.is_file() else target.rglob("test_*.py")
        found.update(p.relative_to(checkout).as_posix() for p in paths)
    return sorted(p for p in found if p not in NOT_PUBLIC)


def run_file(
    checkout: Path,
    relative: str,
    *,
    path_entries: Sequence[str],
    work: Path,
    timeout: float,
    plugins: Sequence[str] = (),
) -> FileResult:
    """One test file in a fresh pytest process; its outcomes come back through the plugin
    (``plugins`` are more to load, before Pyro's conftest)."""
    stem = relative.replace("/", "__").removesuffix(".py")
    folder = work / stem
    folder.mkdir(parents=True, exist_ok=True)
    outcomes = folder / "outcomes.jsonl"
    outcomes.unlink(missing_ok=True)
    launcher = folder / "run_pytest.py"
    launcher.write_text(_LAUNCHER)
    run = run_script(
        launcher,
        python=sys.executable,
        path_entries=[str(work), *path_entries],
        cwd=folder,
        env={**os.environ, "PYRO_UNIT_OUTCOMES": str(outcomes)},
        timeout=timeout,
        arguments=[
            *(argument for plugin in plugins for argument in ("-p", plugin)),
            "-p",
            "pyro_unit_outcomes",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(checkout),
            str(checkout / relative),
        ],
    )
    lines = outcomes.read_text().splitlines() if outcomes.exists() else []
    # pytest's own exit codes: 0 passed, 1 some failed, 2 collection errors, 5 nothing collected
    crash = None if run.timed_out or run.returncode in (0, 1, 2, 5) else run.first_error
    return outcomes_to_result(relative, lines, run.timed_out, crash)


def mean_rate(results: Sequence[FileResult]) -> tuple[float, int]:
    """The mean pass rate over the files in which something ran, and how many those are.

    >>> mean_rate([FileResult("a", 1, 1, 0, 0, 0, False, ()),
    ...            FileResult("b", 0, 0, 0, 3, 0, False, ())])
    (0.5, 1)
    """
    rates = [r.rate() for r in results]
    counted = [rate for rate in rates if rate is not None]
    return (sum(counted) / len(counted) if counted else 0.0), len(counted)


def run_side(
    checkout: Path,
    files: Sequence[str],
    path_entries: Sequence[str],
    timeout: float,
    jobs: int,
    plugins: Sequence[str] = (),
) -> list[FileResult]:
    """Every file on one side (engine or Pyro), ``jobs`` at a time."""
    with tempfile.TemporaryDirectory(prefix="pyro-unit-") as tmp:
        work = Path(tmp)
        (work / "pyro_unit_outcomes.py").write_text(OUTCOME_PLUGIN)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(
                    run_file,
                    checkout,
                    f,
                    path_entries=path_entries,
                    work=work,
                    timeout=timeout,
                    plugins=plugins,
                )
                for f in files
            ]
            results = []
            for future in futures:
                result = future.result()
                print(f"  {result.path}: {_cell(result)}", file=sys.stderr, flush=True)
                results.append(result)
    return results


def _cell(result: FileResult) -> str:
    rate = result.rate()
    if result.collect_errors:
        return "import fails"
    shown = "n/a" if rate is None else f"{rate:.0%}"
    cut = " (timed out)" if result.timed_out else ""
    return f"{shown} ({result.passed}/{result.passed + result.failed + result.errors}){cut}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyro-checkout", type=Path, required=True)
    parser.add_argument("--pyro-path", help="a folder holding Pyro, for the reference side")
    parser.add_argument("--only", nargs="*", default=(), help="files or folders of the checkout")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per file")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--third-party-path",
        action="append",
        default=[],
        help="a folder of packages Pyro's tests import but the project does not need (opt_einsum)"
        ", put after the library on both sides' paths; may be repeated",
    )
    parser.add_argument("--json", type=Path, help="write every file's counts here")
    parser.add_argument(
        "--without-stand-ins",
        action="store_true",
        help="let a file that imports a Pyro internal fail at import (counts 0)",
    )
    args = parser.parse_args(argv)
    checkout = args.pyro_checkout.resolve()
    files = area_files(checkout, args.only)
    project = str(Path(__file__).resolve().parent.parent)
    sides: dict[str, list[FileResult]] = {}
    with tempfile.TemporaryDirectory(prefix="pyro-alias-") as alias:
        write_alias_package(Path(alias))
        print(f"engine: {len(files)} files", file=sys.stderr)
        plugins = () if args.without_stand_ins else (STAND_INS_PLUGIN,)
        sides["engine"] = run_side(
            checkout,
            files,
            [alias, project, *args.third_party_path],
            args.timeout,
            args.jobs,
            plugins,
        )
    if args.pyro_path:
        print(f"pyro: {len(files)} files", file=sys.stderr)
        sides["pyro"] = run_side(
            checkout, files, [args.pyro_path, *args.third_party_path], args.timeout, args.jobs
        )
    print("| file | " + " | ".join(sides) + " |")
    print("|---|" + "---|" * len(sides))
    for index, path in enumerate(files):
        print(f"| {path} | " + " | ".join(_cell(s[index]) for s in sides.values()) + " |")
    for result in sides["engine"]:
        if result.stand_ins:
            print(f"\nstand-ins in {result.path}: {', '.join(result.stand_ins)}")
    for name, results in sides.items():
        mean, counted = mean_rate(results)
        print(f"\n{name}: mean per-file pass rate {mean:.1%} over {counted} files")
    if args.json:
        payload = {name: [asdict(r) for r in results] for name, results in sides.items()}
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
