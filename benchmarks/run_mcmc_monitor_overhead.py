"""What the live MCMC monitor costs: NUTS on eight schools (2 chains, 300 warm-up and 600
draws each) with and without it, in a real "Python 3 (pplkernel)" kernel (so the widget's
messages really go out on the kernel's channels).

    python benchmarks/run_mcmc_monitor_overhead.py

Each variant runs 3 times, alternating, after a warm-up of each; the figures are the ratios of
the median wall times and of the median CPU times of the kernel process (all its threads, the
one sending the widget's messages included) minus one. On a machine shared with other work the
CPU time is the steadier of the two, and steadier still is the share of the monitored run's
wall time spent inside the monitor's own code (clocked in the sampling thread, where the
monitor does its work and serialises its messages). To compare two versions of the code, run
it from each checkout with ``PYTHONPATH`` set to it (the kernel inherits it).
"""

from __future__ import annotations

from benchmarks.run_monitor_overhead import kernel_result

CODE = r"""
import json, time
import torch
torch.set_num_threads(1)
import engine, engine.distributions as dist
from engine.infer import MCMC, NUTS
from benchmarks.nuts_workloads import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y, eight_schools_model
from widgets import McmcMonitor
from IPython.display import display

y, sigma = torch.tensor(EIGHT_SCHOOLS_Y), torch.tensor(EIGHT_SCHOOLS_SIGMA)
model = eight_schools_model(engine, dist)

def timed(with_monitor, samples=600):
    engine.set_rng_seed(0)
    mcmc = MCMC(NUTS(model), num_samples=samples, warmup_steps=300, num_chains=2)
    monitor = None
    inside = [0.0]
    if with_monitor:
        monitor = McmcMonitor(mcmc, title="overhead")
        display(monitor)
        # The monitor's own time, in the sampling thread: every iteration's report (built only
        # for a listener) with the monitor's handling of it, and the final write of its traits.
        for owner, name in ((mcmc, "_report"), (monitor, "_finish")):
            def clocked(*args, _original=getattr(owner, name), **kwargs):
                began = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    inside[0] += time.perf_counter() - began
            setattr(owner, name, clocked)
    start, cpu = time.perf_counter(), time.process_time()
    mcmc.run(y, sigma)
    wall = time.perf_counter() - start
    elapsed = (wall, time.process_time() - cpu, inside[0] / wall)
    if monitor is not None:
        monitor.close()
    return elapsed

times = {"without": [], "with": []}
timed(False, 50); timed(True, 50)
for _ in range(3):
    times["without"].append(timed(False))
    times["with"].append(timed(True))
print("RESULT " + json.dumps(times))
"""


def main() -> None:
    times = kernel_result(CODE)
    print("eight schools, NUTS, 2 chains x (300 + 600)")
    for index, kind in enumerate(("wall", "CPU")):
        without = sorted(run[index] for run in times["without"])[1]
        with_monitor = sorted(run[index] for run in times["with"])[1]
        print(
            f"{kind} time: without monitor {without:.2f} s, with monitor {with_monitor:.2f} s, "
            f"overhead {100 * (with_monitor / without - 1):+.1f} %"
        )
    share = sorted(run[2] for run in times["with"])[1]
    print(f"time inside the monitor's code: {100 * share:.1f} % of the monitored run's wall time")


if __name__ == "__main__":
    main()
