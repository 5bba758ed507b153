"""Soak: a long SVI run and a long NUTS run, each with its live monitor, in a real
"Python 3 (pplkernel)" kernel, watching what must not grow with the run's length.

    python benchmarks/soak.py          # 100,000 steps, 2,000 run.step(1) calls, 20,000 draws
    python benchmarks/soak.py --svi-steps 20000 --svi-chunk 5000 --loop-calls 200 \
        --mcmc-samples 2000            # a quick check

The script starts the kernel with ``jupyter_client`` (this checkout first on its PYTHONPATH),
defines the coin model with ``%%model``, then runs ``run = %svi coin --steps CHUNK`` until
``--svi-steps`` are taken, one cell of ``run.step(1)`` in a loop (``--loop-calls``), and
``%mcmc coin --samples N --warmup W --chains 2`` twice (a run a tenth as long for reference,
then the long one; each samples in the background and the script polls it). After every SVI
cell, and every few seconds while NUTS samples, it records:

- the kernel process's resident memory (RSS);
- the size of the notebook as a frontend would save it, rebuilt from what the kernel sent on
  iopub: the cells' outputs (``update_display_data`` replaces the output of its display id, as
  a frontend does) and the widget state (each widget's ``comm_open`` state with every trait
  ``update`` applied: what JupyterLab writes into the notebook's metadata), and, as a cross-check,
  the monitor's ``get_state()`` asked of the kernel;
- the messages that update the monitor (its ``comm_msg`` and its output's
  ``update_display_data``) by their kernel timestamps: how many, their bytes, and the most that
  fall in any one second (the monitors send batches at most ``max_rate`` = 20 times a second).

Growth per 10,000 steps (or draws) is the least-squares slope over the measurements after the
first (which holds the one-off costs: imports, the first widget, torch's allocator warming up).
The results of 2026-12-06 are in benchmarks/README.md ("Soak").
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
# The monitors' cap: Throttle(interval_s=1 / max_rate), max_rate=20 by default.
RATE_CAP = 20

SETUP = """\
import torch
torch.set_num_threads(1)
flips = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])"""

MODEL = """\
%%model coin(flips)
p = ppl.sample("p", dist.Beta(2.0, 2.0))
with ppl.plate("flips", len(flips)):
    ppl.sample("obs", dist.Bernoulli(p), obs=flips)"""


@dataclass
class Cell:
    """One notebook cell and the outputs a frontend would keep for it."""

    source: str
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Message:
    """One message that updates a view: a widget's ``comm_msg`` or an ``update_display_data``."""

    target: str  # the comm id, or the display id
    sent: float  # kernel's timestamp, seconds since the epoch
    method: str  # "update" (traits), "custom" (the monitors' batches) or "display"
    size: int  # bytes of the message's content, as JSON


class Notebook:
    """What a frontend holds of a session: cells with outputs, and the widget models."""

    def __init__(self) -> None:
        self.cells: list[Cell] = []
        self.by_msg_id: dict[str, Cell] = {}
        self.widgets: dict[str, dict[str, Any]] = {}
        self.messages: list[Message] = []

    def apply(self, msg: dict[str, Any]) -> None:
        """Take one iopub message as a frontend would."""
        kind, content = msg["msg_type"], msg["content"]
        cell = self.by_msg_id.get(msg["parent_header"].get("msg_id", ""))
        sent = msg["header"]["date"]
        sent = sent.timestamp() if hasattr(sent, "timestamp") else time.time()
        if kind == "comm_open":
            data = content["data"]
            self.widgets[content["comm_id"]] = {
                "model_name": data["state"].get("_model_name", ""),
                "model_module": data["state"].get("_model_module", ""),
                "model_module_version": data["state"].get("_model_module_version", ""),
                "state": dict(data["state"]),
            }
        elif kind == "comm_msg":
            data = content["data"]
            self.messages.append(
                Message(content["comm_id"], sent, data.get("method", ""), _json_size(data))
            )
            widget = self.widgets.get(content["comm_id"])
            if widget is not None and data.get("method") == "update":
                widget["state"].update(data.get("state", {}))
        elif kind == "comm_close":
            self.widgets.pop(content["comm_id"], None)
        elif kind == "update_display_data":
            display_id = content.get("transient", {}).get("display_id")
            self.messages.append(Message(display_id, sent, "display", _json_size(content)))
            for other in self.cells:
                for output in other.outputs:
                    if output.get("_display_id") == display_id:
                        output["data"], output["metadata"] = content["data"], content["metadata"]
        elif cell is None:
            return
        elif kind in ("display_data", "execute_result"):
            output = {
                "output_type": kind,
                "data": content["data"],
                "metadata": content["metadata"],
                "_display_id": content.get("transient", {}).get("display_id"),
            }
            if kind == "execute_result":
                output["execution_count"] = content["execution_count"]
            cell.outputs.append(output)
        elif kind == "stream":
            cell.outputs.append(
                {"output_type": "stream", "name": content["name"], "text": content["text"]}
            )
        elif kind == "error":
            cell.outputs.append({"output_type": "error", **content})
        elif kind == "clear_output":
            cell.outputs.clear()

    def widget_state_size(self, comm_id: str) -> int:
        return _json_size(self.widgets[comm_id]["state"])

    def saved(self) -> str:
        """The notebook as saved with its widget state (JupyterLab's "save widget state")."""
        notebook = nbformat.v4.new_notebook()
        for cell in self.cells:
            code = nbformat.v4.new_code_cell(cell.source)
            for output in cell.outputs:
                output = {key: value for key, value in output.items() if key != "_display_id"}
                code.outputs.append(nbformat.from_dict(output))
            notebook.cells.append(code)
        notebook.metadata["widgets"] = {
            WIDGET_STATE_MIME: {
                "version_major": 2,
                "version_minor": 0,
                "state": {
                    comm_id: {
                        "model_name": widget["model_name"],
                        "model_module": widget["model_module"],
                        "model_module_version": widget["model_module_version"],
                        "state": widget["state"],
                    }
                    for comm_id, widget in self.widgets.items()
                },
            }
        }
        return nbformat.writes(notebook)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str).encode())


class Session:
    """A pplkernel kernel and the notebook its outputs build."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.manager = KernelManager(kernel_name="pplkernel")
        self.manager.start_kernel(env=env, cwd=str(ROOT))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self.notebook = Notebook()

    @property
    def pid(self) -> int:
        return self.manager.provisioner.pid

    def rss_mib(self) -> float:
        """The kernel's resident memory, from /proc (Linux), or psutil where there is none."""
        status = Path(f"/proc/{self.pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        import psutil

        return psutil.Process(self.pid).memory_info().rss / 2**20

    def run(self, source: str, *, keep: bool = True, timeout: float = 3600) -> list[str]:
        """Execute ``source`` in the kernel and take every iopub message until it is idle;
        ``keep=False`` for the script's own probes, which a user's notebook would not hold.
        Returns the cell's stdout, by lines."""
        msg_id = self.client.execute(source)
        cell = Cell(source)
        if keep:
            self.notebook.cells.append(cell)
        self.notebook.by_msg_id[msg_id] = cell
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.1))
            except Empty:
                raise SystemExit(f"no reply in {timeout} s to: {source[:60]!r}") from None
            self.notebook.apply(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "error":
                raise SystemExit(f"the cell {source[:60]!r} failed: {msg['content']['evalue']}")
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        reply = self.client.get_shell_msg(timeout=60)
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"the cell {source[:60]!r} failed: {reply['content']}")
        text = "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream")
        return text.splitlines()

    def probe(self, expression: str) -> Any:
        """The value of a JSON-able expression in the kernel."""
        lines = self.run(f"import json as _j; print('PROBE', _j.dumps({expression}))", keep=False)
        return json.loads(next(line for line in lines if line.startswith("PROBE "))[6:])

    def drain(self, seconds: float) -> None:
        """Take iopub messages (a background run's) for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.notebook.apply(self.client.get_iopub_msg(timeout=left))
            except Empty:
                return

    def saved_size(self) -> int:
        return len(self.notebook.saved().encode())

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def message_rate(messages: list[Message]) -> dict[str, float]:
    """How many, their bytes, the mean rate and the most in any one second (half-open window)."""
    if not messages:
        return {"count": 0, "bytes": 0, "mean_per_s": 0.0, "max_in_1s": 0}
    times = sorted(m.sent for m in messages)
    span = times[-1] - times[0]
    most = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    return {
        "count": len(times),
        "bytes": sum(m.size for m in messages),
        "mean_per_s": len(times) / span if span > 0 else float(len(times)),
        "max_in_1s": most,
    }


def slope_per(xs: list[float], ys: list[float], per: float) -> float:
    """Least-squares slope of ``ys`` against ``xs``, times ``per``."""
    if len(xs) < 2:
        return float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return per * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def monitor_comm(notebook: Notebook, trait: str, title: str) -> str:
    """The comm of the (last opened) widget that has ``trait`` and this title."""
    found = [
        comm_id
        for comm_id, widget in notebook.widgets.items()
        if trait in widget["state"] and widget["state"].get("title") == title
    ]
    if not found:
        raise SystemExit(f"no widget with a {trait!r} trait titled {title!r} was opened")
    return found[-1]


def view_messages(notebook: Notebook, since: int, comm_id: str) -> dict[str, dict[str, float]]:
    """The messages since ``since`` that update one monitor: its widget messages (all, and the
    batches alone) and the ``update_display_data`` of the output that shows it."""
    display_ids = {
        output.get("_display_id")
        for cell in notebook.cells
        for output in cell.outputs
        if output.get("data", {}).get(WIDGET_VIEW_MIME, {}).get("model_id") == comm_id
    }
    new = notebook.messages[since:]
    widget = [m for m in new if m.target == comm_id]
    return {
        "widget": message_rate(widget),
        "batches": message_rate([m for m in widget if m.method == "custom"]),
        "display": message_rate(
            [m for m in new if m.method == "display" and m.target in display_ids]
        ),
    }


def soak_svi(session: Session, total: int, chunk: int) -> dict[str, Any]:
    """``%svi coin --steps CHUNK`` until ``total`` steps, measuring after each chunk."""
    rows = []
    comm_id = None
    done = 0
    while done < total:
        steps = min(chunk, total - done)
        before = len(session.notebook.messages)
        started = time.perf_counter()
        session.run(f"run = %svi coin --steps {steps} --lr 0.01")
        wall = time.perf_counter() - started
        done += steps
        comm_id = comm_id or monitor_comm(session.notebook, "losses", "SVI run 'coin'")
        kernel = session.probe(
            "{'steps': run.step_count, 'points': len(run.monitor.steps),"
            " 'state_bytes': len(_j.dumps(run.monitor.get_state(), default=str))}"
        )
        if kernel["steps"] != done:
            raise SystemExit(f"the run took {kernel['steps']} steps, expected {done}")
        rows.append(
            {
                "steps": done,
                "wall_s": wall,
                "rss_mib": session.rss_mib(),
                "notebook_bytes": session.saved_size(),
                "widget_state_bytes": session.notebook.widget_state_size(comm_id),
                "kernel_state_bytes": kernel["state_bytes"],
                "points_in_traits": kernel["points"],
                **view_messages(session.notebook, before, comm_id),
            }
        )
        _print_svi_row(rows[-1])
    return {"rows": rows, "comm_id": comm_id, **_growth(rows, "steps")}


def soak_loop(session: Session, calls: int, comm_id: str) -> dict[str, Any]:
    """``run.step(1)`` in a loop, ``calls`` times in one cell: every call ends a stretch."""
    before = len(session.notebook.messages)
    started = time.perf_counter()
    session.run(f"for _ in range({calls}):\n    run.step(1)")
    wall = time.perf_counter() - started
    result = {"calls": calls, "wall_s": wall, **view_messages(session.notebook, before, comm_id)}
    widget, display = result["widget"], result["display"]
    print(
        f"  loop: {calls} calls of run.step(1) in {wall:.1f} s: widget messages "
        f"{widget['count']} ({widget['bytes'] / 1024:.1f} KiB), most in 1 s "
        f"{widget['max_in_1s']}; display updates {display['count']} "
        f"({display['bytes'] / 1024:.1f} KiB), most in 1 s {display['max_in_1s']}",
        flush=True,
    )
    return result


def soak_mcmc(session: Session, samples: int, warmup: int, chains: int, poll_s: float) -> dict:
    """One ``%mcmc`` run, measured every ``poll_s`` seconds while it samples and at its end."""
    before = len(session.notebook.messages)
    rss_before = session.rss_mib()
    started = time.perf_counter()
    session.run(f"mcmc = %mcmc coin --samples {samples} --warmup {warmup} --chains {chains}")
    comm_id = monitor_comm(session.notebook, "lp", "MCMC coin")
    polls = []
    while True:
        session.drain(poll_s)
        state = session.probe(
            "{'running': mcmc.running, 'kept': (lambda d: 0 if d is None else int(d.shape[0]"
            " * d.shape[1]))(mcmc.draws_so_far())}"
        )
        polls.append(
            {
                "draws": state["kept"],
                "wall_s": time.perf_counter() - started,
                "rss_mib": session.rss_mib(),
            }
        )
        if not state["running"]:
            break
        print(f"  mcmc: {state['kept']:>7} draws, rss {polls[-1]['rss_mib']:.1f} MiB", flush=True)
    wall = time.perf_counter() - started
    kept = session.probe(
        "{'draws': int(mcmc.get_samples()['p'].numel()),"
        " 'state_bytes': len(_j.dumps(mcmc_monitor(mcmc).get_state(), default=str)),"
        " 'points': len(mcmc_monitor(mcmc).lp_iterations)}"
    )
    session.drain(1.0)  # the monitor's last messages
    polls.pop()  # taken after the run: its draws_so_far() is None
    sampling = [row for row in polls if row["draws"] > 0]
    return {
        "samples": samples,
        "warmup": warmup,
        "chains": chains,
        "draws": kept["draws"],
        "wall_s": wall,
        "rss_before_mib": rss_before,
        "rss_mib": session.rss_mib(),
        "notebook_bytes": session.saved_size(),
        "widget_state_bytes": session.notebook.widget_state_size(comm_id),
        "kernel_state_bytes": kept["state_bytes"],
        "points_in_traits": kept["points"],
        **view_messages(session.notebook, before, comm_id),
        "rss_per_10k_draws_mib": slope_per(
            [row["draws"] for row in sampling], [row["rss_mib"] for row in sampling], 10_000
        ),
        "polls": polls,
    }


# The MCMC monitor of a %mcmc (the magic returns the MCMC object only), for the cross-check
# of the widget state the frontend rebuilt.
FIND_MCMC_MONITOR = """\
def mcmc_monitor(mcmc):
    import gc
    from widgets import McmcMonitor
    return next(w for w in gc.get_objects() if isinstance(w, McmcMonitor) and w.mcmc is mcmc)"""


def _growth(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Growth per 10,000 ``key`` over the rows after the first (which holds one-off costs)."""
    later = rows[1:]
    xs = [row[key] for row in later]
    return {
        "rss_per_10k_mib": slope_per(xs, [row["rss_mib"] for row in later], 10_000),
        "notebook_per_10k_bytes": slope_per(xs, [row["notebook_bytes"] for row in later], 10_000),
    }


def _print_svi_row(row: dict[str, Any]) -> None:
    widget = row["widget"]
    print(
        f"  svi: {row['steps']:>7} steps  {row['wall_s']:6.1f} s  rss {row['rss_mib']:7.1f} MiB"
        f"  notebook {row['notebook_bytes'] / 1024:8.1f} KiB"
        f"  (widget {row['widget_state_bytes'] / 1024:7.1f} KiB)"
        f"  messages {widget['count']:>5} ({widget['bytes'] / 1024:7.1f} KiB),"
        f" {widget['mean_per_s']:5.1f}/s, most in 1 s {widget['max_in_1s']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--svi-steps", type=int, default=100_000)
    parser.add_argument("--svi-chunk", type=int, default=10_000, help="steps per %%svi cell")
    parser.add_argument(
        "--loop-calls", type=int, default=2_000, help="run.step(1) calls in one cell (0: none)"
    )
    parser.add_argument("--mcmc-samples", type=int, default=10_000, help="draws per chain")
    parser.add_argument("--mcmc-warmup", type=int, default=1_000)
    parser.add_argument("--mcmc-chains", type=int, default=2)
    parser.add_argument("--poll-s", type=float, default=5.0, help="between MCMC measurements")
    parser.add_argument("--out", type=Path, help="write every measurement here as JSON")
    parser.add_argument("--save-notebook", type=Path, help="write the rebuilt notebook here")
    args = parser.parse_args()

    session = Session()
    try:
        session.run(SETUP)
        session.run(MODEL)
        session.run(FIND_MCMC_MONITOR, keep=False)
        print(f"kernel pid {session.pid}, rss at start {session.rss_mib():.1f} MiB", flush=True)
        result: dict[str, Any] = {"svi": soak_svi(session, args.svi_steps, args.svi_chunk)}
        if args.loop_calls:
            result["loop"] = soak_loop(session, args.loop_calls, result["svi"]["comm_id"])
        # A run a tenth as long first: the difference between the two monitors' saved state
        # is what 90 % more draws add.
        reference = max(args.mcmc_samples // 10, 1)
        for key, samples in (("mcmc_reference", reference), ("mcmc", args.mcmc_samples)):
            print(f"mcmc: {samples} draws per chain, {args.mcmc_chains} chains", flush=True)
            result[key] = soak_mcmc(
                session, samples, args.mcmc_warmup, args.mcmc_chains, args.poll_s
            )
        if args.save_notebook:
            args.save_notebook.write_text(session.notebook.saved())
    finally:
        session.close()
    print()
    for line in report(result):
        print(line)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


def report(result: dict[str, Any]) -> list[str]:
    """The summary lines."""
    svi = result["svi"]
    rows = svi["rows"]
    first, last = rows[0], rows[-1]
    lines = [
        f"SVI, {last['steps']} steps in {sum(row['wall_s'] for row in rows):.0f} s: "
        f"RSS {first['rss_mib']:.1f} -> {last['rss_mib']:.1f} MiB "
        f"({svi['rss_per_10k_mib']:+.2f} MiB per 10,000 steps); saved notebook "
        f"{first['notebook_bytes'] / 1024:.1f} -> {last['notebook_bytes'] / 1024:.1f} KiB "
        f"({svi['notebook_per_10k_bytes'] / 1024:+.2f} KiB per 10,000 steps); monitor "
        f"messages {sum(row['widget']['count'] for row in rows)}, "
        f"{statistics.fmean(row['widget']['mean_per_s'] for row in rows):.1f} a second, "
        f"most in any second {max(row['widget']['max_in_1s'] for row in rows)} (cap {RATE_CAP})"
    ]
    if "loop" in result:
        loop = result["loop"]
        lines.append(
            f"Loop of {loop['calls']} run.step(1): most monitor messages in any second "
            f"{loop['widget']['max_in_1s']}, most display updates {loop['display']['max_in_1s']}"
        )
    short, long = result["mcmc_reference"], result["mcmc"]
    for name, run in (("reference", short), ("soak", long)):
        lines.append(
            f"MCMC {name}, {run['draws']} draws ({run['chains']} chains, {run['warmup']} warm-up "
            f"iterations each) in {run['wall_s']:.0f} s: RSS {run['rss_before_mib']:.1f} -> "
            f"{run['rss_mib']:.1f} MiB ({_signed(run['rss_per_10k_draws_mib'])} MiB per 10,000 "
            f"draws while sampling); monitor state {run['widget_state_bytes'] / 1024:.1f} KiB "
            f"(the kernel's get_state: {run['kernel_state_bytes'] / 1024:.1f}); saved notebook "
            f"{run['notebook_bytes'] / 1024:.1f} KiB; monitor messages "
            f"{run['widget']['count']}, {run['widget']['mean_per_s']:.1f} a second, most in any "
            f"second {run['widget']['max_in_1s']}"
        )
    per_10k = (long["widget_state_bytes"] - short["widget_state_bytes"]) / max(
        long["draws"] - short["draws"], 1
    )
    lines.append(f"MCMC monitor's saved state: {10_000 * per_10k / 1024:+.2f} KiB per 10,000 draws")
    return lines


def _signed(value: float) -> str:
    """``+1.23``, or ``n/a`` when there were too few measurements for a slope."""
    return "n/a" if math.isnan(value) else f"{value:+.2f}"


if __name__ == "__main__":
    main()
