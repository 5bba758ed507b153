"""Run Pyro's tutorial notebooks on Pyro and on the engine, and print what each did.

    PYTHONPATH=. python benchmarks/pyro_tutorials.py --pyro-checkout ~/src/pyro --smoke
    PYTHONPATH=. python benchmarks/pyro_tutorials.py --pyro-checkout ~/src/pyro --only gmm csis

Each tutorial (``tutorial/source/NAME.ipynb`` in the checkout) becomes one plain script
(``benchmarks/tutorial_runner/notebook_script.py`` says how magics, shell lines and the cells'
last expressions are handled), and the script runs twice, each time in a fresh subprocess with a
timeout: once where ``import pyro`` is Pyro (``--python``, plus ``--pyro-path``), once where it is
the engine (a ``pyro`` alias package written into a temporary folder at run time). Downloads are
replaced by synthetic files with the same columns (``stand_in_data.py``), and the table says which
tutorials ran on them. ``--smoke`` sets ``CI=1``, Pyro's own smoke mode (the tutorials read
``smoke_test = ('CI' in os.environ)``), and shortens the step counts of the tutorials that have no
smoke mode. The table: tutorial | Pyro | engine | numbers agree | data | first error on the
engine; below it the pairs of numbers that differ and Pyro's own failures. ``compare.py`` states
the rule for "numbers agree".

The tutorials import seaborn, scikit-learn and tqdm besides Pyro: give a folder with them as
``--extra-path`` when the interpreter lacks them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from benchmarks.tutorial_runner import prelude
from benchmarks.tutorial_runner.compare import NOT_COMPARED, Agreement, compare_outputs
from benchmarks.tutorial_runner.execute import RunResult, run_script
from benchmarks.tutorial_runner.notebook_script import (
    PRELUDE_MODULE,
    Script,
    code_cells,
    notebook_to_script,
)
from benchmarks.tutorial_runner.pyro_alias import write_alias_package
from benchmarks.tutorial_runner.stand_in_data import stand_ins_used, write_stand_ins

TUTORIALS = (
    "intro_part_i",
    "intro_part_ii",
    "intro_long",
    "svi_part_i",
    "svi_part_iii",
    "tensor_shapes",
    "enumeration",
    "gmm",
    "mle_map",
    "model_rendering",
    "bayesian_regression",
    "bayesian_regression_ii",
    "modules",
    "predictive_deterministic",
    "prior_predictive",
    "boosting_bbvi",
    "csis",
    "RSA-implicature",
    "RSA-hyperbole",
    "normalizing_flows_intro",
    "dirichlet_process_mixture",
)
"""The tutorials of issue 11: those that use core Pyro only (no contrib, no funsor)."""

SMOKE_KEEP = {
    # Its autocorrelation plot asks for maxlags=750 of the n_iter losses: n_iter must stay 1500.
    "dirichlet_process_mixture": frozenset({"n_iter"}),
}
"""Step-count names that ``--smoke`` leaves alone in a tutorial, because later code needs them."""

ENGINE_ROOT = Path(__file__).resolve().parents[1]
SIDES = ("pyro", "engine")


@dataclass
class TutorialResult:
    """Both runs of one tutorial and what the table says about them."""

    name: str
    synthetic: list[str]
    notes: list[str]
    runs: dict[str, RunResult]
    agreement: Agreement

    def data_column(self) -> str:
        return f"synthetic ({', '.join(self.synthetic)})" if self.synthetic else "as in Pyro"


def _environment(smoke: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.pop("CI", None)  # without --smoke the tutorials run in full even inside a CI job
    if smoke:
        env["CI"] = "1"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"  # a timed-out run keeps what it printed
    return env


def _which_pyro(python: str, path_entries: list[str], env: dict[str, str]) -> str:
    """``pyro <version> from <file>`` as the run will import it, or why it cannot."""
    probe = "import pyro; print(pyro.__name__, getattr(pyro, '__version__', '?'), pyro.__file__)"
    completed = subprocess.run(
        [python, "-c", probe],
        env={**env, "PYTHONPATH": os.pathsep.join(path_entries)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        return "not importable: " + (lines[-1] if lines else f"exit {completed.returncode}")
    return completed.stdout.strip()


ERROR_WIDTH = 160
"""Characters of an error message the table shows (``--json`` keeps the whole stderr)."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short(error: str) -> str:
    """The error as the table shows it: at most ``ERROR_WIDTH`` characters.

    >>> _short("ValueError: " + "x" * 300)[-12:]
    'xxxxxxxxxx …'
    """
    return error if len(error) <= ERROR_WIDTH else error[: ERROR_WIDTH - 2].rstrip() + " …"


def run_tutorial(
    name: str,
    *,
    source_dir: Path,
    work: Path,
    args: argparse.Namespace,
    paths: dict[str, list[str]],
    env: dict[str, str],
) -> TutorialResult:
    """Convert one tutorial and run it on each side; the runs' files stay under ``work/name``."""
    notebook = nbformat.read(source_dir / f"{name}.ipynb", as_version=4)
    stand_ins = stand_ins_used("\n".join(code_cells(notebook)))
    url_map = write_stand_ins(stand_ins, work / "data")
    script: Script = notebook_to_script(
        notebook,
        title=name,
        smoke=args.smoke,
        keep=SMOKE_KEEP.get(name, frozenset()),
        url_map=url_map,
    )
    runs: dict[str, RunResult] = {}
    for side in args.sides:
        folder = work / name / side
        folder.mkdir(parents=True, exist_ok=True)
        script_path = folder / f"{name}.py"
        script_path.write_text(script.source)
        runs[side] = run_script(
            script_path,
            python=args.python,
            path_entries=paths[side],
            cwd=folder,
            env=env,
            timeout=args.timeout,
            script=script,
        )
        print(f"  {name} on {side}: {runs[side].status()}", file=sys.stderr, flush=True)
    both_ok = len(runs) == 2 and all(run.ok for run in runs.values())
    agreement = (
        compare_outputs(runs["pyro"].stdout, runs["engine"].stdout) if both_ok else NOT_COMPARED
    )
    return TutorialResult(
        name, [s.filename for s in stand_ins], list(script.notes), runs, agreement
    )


def format_report(results: list[TutorialResult], sides: tuple[str, ...]) -> str:
    """The markdown table, then the differing pairs and the failures on Pyro."""
    lines = [
        "| tutorial | Pyro | engine | numbers agree | data | first error on the engine |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        cells = [result.name]
        for side in SIDES:
            run = result.runs.get(side)
            cells.append(run.status() if run else "not run")
        cells.append(result.agreement.summary())
        cells.append(result.data_column())
        engine_run = result.runs.get("engine")
        cells.append(_short(engine_run.first_error or "") if engine_run else "")
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    differing = [r for r in results if r.agreement.verdict == "no"]
    if differing:
        lines += ["", "Numbers that differ (index in the printed order: Pyro, engine):"]
        for result in differing:
            agreement = result.agreement
            pairs = ", ".join(f"#{i}: {a:g} vs {b:g}" for i, a, b in agreement.differing[:12])
            more = len(agreement.differing) - 12
            counts = f"{agreement.count_first} vs {agreement.count_second} numbers"
            lines.append(
                f"- {result.name} ({counts}): {pairs}" + (f", and {more} more" if more > 0 else "")
            )
    pyro_failures = [r for r in results if "pyro" in r.runs and not r.runs["pyro"].ok]
    if pyro_failures:
        lines += ["", "Failures on Pyro itself:"]
        lines += [f"- {r.name}: {r.runs['pyro'].first_error}" for r in pyro_failures]
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyro-checkout", type=Path, required=True, help="Pyro's repository")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these tutorials")
    parser.add_argument("--smoke", action="store_true", help="CI=1 and shortened step counts")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run (600)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for every run")
    parser.add_argument(
        "--pyro-path", action="append", default=[], help="path entry with Pyro (repeatable)"
    )
    parser.add_argument(
        "--extra-path",
        action="append",
        default=[],
        help="path entry for both runs, e.g. with seaborn and scikit-learn (repeatable)",
    )
    parser.add_argument("--engine-root", type=Path, default=ENGINE_ROOT, help="has engine/")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--keep", type=Path, help="keep scripts, data and outputs in this folder")
    parser.add_argument("--json", type=Path, help="write every result (outputs too) as JSON")
    args = parser.parse_args(argv)
    args.sides = tuple(side for side in SIDES if side in args.sides)
    names = args.only or list(TUTORIALS)
    source_dir = args.pyro_checkout / "tutorial" / "source"
    missing = [name for name in names if not (source_dir / f"{name}.ipynb").exists()]
    if missing:
        parser.error(f"no {', '.join(missing)} in {source_dir} (tutorial/source of the checkout)")
    args.names = names
    args.source_dir = source_dir
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the tutorials and print the report; exit status 0 whatever the tutorials did."""
    args = _parse(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="pyro-tutorials-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(prelude.__file__, work / f"{PRELUDE_MODULE}.py")
        write_alias_package(work / "alias")
        shared = [str(work), *args.extra_path, str(args.source_dir)]
        paths = {
            "pyro": [*args.pyro_path, *shared],
            "engine": [str(work / "alias"), str(args.engine_root), *shared],
        }
        env = _environment(args.smoke)
        found = {side: _which_pyro(args.python, paths[side], env) for side in args.sides}
        for side, description in found.items():
            print(f"{side} run: import pyro -> {description}", file=sys.stderr, flush=True)
        started = time.strftime("%Y-%m-%d %H:%M")
        results = [
            run_tutorial(
                name, source_dir=args.source_dir, work=work, args=args, paths=paths, env=env
            )
            for name in args.names
        ]
        print(
            f"Pyro's tutorials, {started}, {platform.node()} ({platform.machine()}, "
            f"{os.cpu_count()} CPUs), {'smoke mode (CI=1)' if args.smoke else 'full length'}"
        )
        for side, description in found.items():
            print(f"- {side} run: import pyro -> {description}")
        print()
        print(format_report(results, args.sides))
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
