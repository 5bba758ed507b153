"""What the live SVI monitor costs: svi_small for 2,000 steps with and without it, in a real
"Python 3 (pplkernel)" kernel (so widget messages really go out on the kernel's channels).

    python benchmarks/run_monitor_overhead.py

Each variant runs 3 times, alternating, after a warm-up; the figure is the ratio of the median
wall times minus one. The posterior panel's own share is also timed inside the monitored runs
(the seconds its recomputations took over their wall time): unlike the ratio of two runs, it
does not move with the load of the machine.
"""

from __future__ import annotations

import json

from jupyter_client.manager import start_new_kernel

CODE = r"""
import json, statistics, time
import torch
torch.set_num_threads(1)
import engine, engine.distributions as dist
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import AutoNormal, init_to_feasible
from engine.optim import Adam
from benchmarks.svi_workloads import linreg_data, linreg_model
from widgets import SviMonitor
from IPython.display import display

x, y = linreg_data(100, 3, 0)

def make():
    engine.clear_param_store()
    engine.set_rng_seed(0)
    model = linreg_model(engine, dist)
    guide = AutoNormal(model, init_loc_fn=init_to_feasible, init_scale=0.1)
    return SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO())

panel_share = []

def timed(with_monitor):
    svi = make()
    monitor = None
    if with_monitor:
        monitor = SviMonitor(svi, (x, y), title="overhead")
        display(monitor)
        spent = [0.0, 0]
        compute = monitor._posterior.compute
        def counted(*args, **kwargs):
            start = time.perf_counter()
            try:
                return compute(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
                spent[1] += 1
        monitor._posterior.compute = counted
    for _ in range(50):
        svi.step(x, y)
    start = time.perf_counter()
    if monitor is None:
        for _ in range(2000):
            svi.step(x, y)
    else:
        monitor.step(2000)
    elapsed = time.perf_counter() - start
    if monitor is not None:
        monitor.close()
        panel_share.append((spent[0] / elapsed, spent[1]))
    return elapsed

times = {"without": [], "with": []}
timed(False); timed(True)
for _ in range(3):
    times["without"].append(timed(False))
    times["with"].append(timed(True))
times["panel"] = panel_share[1:]  # the warm-up's first draws (and the prior's) left out
print("RESULT " + json.dumps(times))
"""


def kernel_result(code: str) -> dict:
    """Run ``code`` in a fresh "Python 3 (pplkernel)" kernel (its working directory on
    ``sys.path``) and return the JSON it printed on a line starting ``RESULT``."""
    manager, client = start_new_kernel(kernel_name="pplkernel")
    try:
        client.execute_interactive(
            "import sys, os; sys.path.insert(0, os.getcwd())",
            timeout=60,
            output_hook=lambda m: None,
        )
        lines: list[str] = []

        def collect(message: dict) -> None:
            if message["msg_type"] == "stream":
                lines.append(message["content"]["text"])

        reply = client.execute_interactive(code, timeout=900, output_hook=collect)
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"benchmark failed in the kernel: {reply['content']}")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    result = next(line for line in "".join(lines).splitlines() if line.startswith("RESULT "))
    return json.loads(result[len("RESULT ") :])


def main() -> None:
    times = kernel_result(CODE)
    without = sorted(times["without"])[1]
    with_monitor = sorted(times["with"])[1]
    print(
        f"svi_small, 2000 steps: without monitor {without:.3f} s, with monitor {with_monitor:.3f} s"
    )
    print(f"monitor overhead: {100 * (with_monitor / without - 1):+.1f} %")
    shares = sorted(times["panel"])
    share, count = shares[len(shares) // 2]
    print(f"posterior panel: {count} recomputations, {100 * share:.2f} % of the run's wall time")


if __name__ == "__main__":
    main()
