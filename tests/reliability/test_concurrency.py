"""Concurrency: the monitor's Run button steps a run in a background thread while cells step,
save, reset or replace the same run (issue 12). Whatever the order, two threads never step one
SVI at once (a gauge counts them), nothing is lost (``len(run.losses) == run.step_count``, the
monitor's history holds every step once, in order), and the params are those a whole step left
(bit for bit, with the optimizer state). The MCMC monitor's Stop meets a notebook waiting for
the results, or the run's own end."""

import functools
import signal
import threading
import time
import warnings

import pytest
import torch

import engine
import engine.distributions as dist
from engine.infer import MCMC, NUTS, SVI, Trace_ELBO
from engine.infer.autoguide import AutoNormal
from engine.optim import Adam
from engine.params import param_store_scope
from tests.cells import run_cell
from tests.reliability.steps import AfterEachStep, Gate, Gauge, assert_same_state
from tests.reliability.support import assert_same_values
from widgets.mcmc_monitor import McmcMonitor
from widgets.run_lock import RunLock
from widgets.svi_monitor import SviMonitor

FLIPS = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
DATA = torch.tensor([0.5, 1.5, 1.0])
GATE = Gate()
RUN = {"type": "command", "command": "run"}


def command(name: str) -> dict:
    return {"type": "command", "command": name}


def coin(flips):
    GATE()
    time.sleep(0.0005)  # lets another thread in mid-step, were it allowed to step too
    p = engine.sample("p", dist.Beta(2.0, 2.0))
    with engine.plate("flips", len(flips)):
        engine.sample("obs", dist.Bernoulli(p), obs=flips)


COIN = """\
%%model coin(flips)
gate()
p = ppl.sample("p", dist.Beta(2.0, 2.0))
with ppl.plate("flips", len(flips)):
    ppl.sample("obs", dist.Bernoulli(p), obs=flips)
"""


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def loops() -> list[threading.Thread]:
    """The monitors' background Run loops alive now."""
    return [t for t in threading.enumerate() if "_run_until_paused" in t.name and t.is_alive()]


def watched(svi, monitor, store=None):
    """Give ``monitor`` a gauge and a record of every step of ``svi``."""
    monitor.gauge, monitor.record = Gauge(svi), AfterEachStep(svi, store)
    monitor.send = lambda content, buffers=None: None
    return monitor


def assert_consistent(monitor) -> None:
    """No loop going; every step whole, once, in order; never two threads in a step."""
    assert monitor._runner_done.is_set() and monitor.status != "running"
    monitor.record.assert_whole()
    monitor.sync()
    count = monitor.svi.step_count
    assert monitor.steps == list(range(1, count + 1))
    assert monitor.losses == monitor.svi.losses
    assert monitor.gauge.most == 1


@pytest.fixture
def monitor():
    GATE.open()
    svi = SVI(coin, AutoNormal(coin), Adam({"lr": 0.05}), Trace_ELBO())
    monitor = watched(svi, SviMonitor(svi, (FLIPS,), max_rate=1e9))
    yield monitor
    GATE.open()
    monitor.close()


@pytest.fixture
def notebook(shell):
    GATE.open()
    shell.user_ns["gate"] = GATE
    run_cell(shell, COIN)
    yield shell
    GATE.open()


def start(shell, line: str = "%svi coin --steps 2"):
    run = run_cell(shell, line)
    return run, watched(run.svi, run.monitor, run.params)


# -- a cell steps while Run goes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "taken"),
    [
        (lambda monitor: monitor.step(5), 5),
        (lambda monitor: monitor._on_command(monitor, command("step"), []), 1),
    ],
    ids=["monitor.step", "the Step button"],
)
def test_a_step_pauses_the_background_run_first(monitor, cell, taken):
    monitor.run()
    wait_until(lambda: monitor.svi.step_count >= 3)
    cell(monitor)
    assert monitor.status == "paused"
    count = monitor.svi.step_count
    time.sleep(0.05)
    assert monitor.svi.step_count == count  # the Run stays paused
    here = threading.get_ident()
    by_cell = [step for step, thread in monitor.record.threads.items() if thread == here]
    assert by_cell == list(range(count - taken + 1, count + 1))  # the last steps, all the cell's
    assert_consistent(monitor)


@pytest.mark.parametrize("cell", ["%svi step 5", "run.step(5)", "%svi coin --steps 5"])
def test_a_cell_stepping_the_run_that_the_run_button_drives(notebook, cell):
    run, monitor = start(notebook)
    notebook.user_ns["run"] = run
    monitor._on_command(monitor, RUN, [])  # the Run button's message
    wait_until(lambda: run.step_count >= 4)
    assert run_cell(notebook, cell) is run
    here = threading.get_ident()
    by_cell = [step for step, thread in monitor.record.threads.items() if thread == here]
    assert by_cell[-5:] == list(range(run.step_count - 4, run.step_count + 1))
    assert notebook.magics_manager.registry["PPLMagics"].session.runs["coin"] is run
    assert_consistent(monitor)
    monitor._on_command(monitor, RUN, [])  # and Run goes on from there
    wait_until(lambda: run.step_count >= by_cell[-1] + 3)
    monitor._on_command(monitor, command("pause"), [])
    assert_consistent(monitor)


def test_two_threads_stepping_one_run_take_turns(notebook):
    run, monitor = start(notebook)
    other = threading.Thread(target=run.step, args=(10,))
    other.start()
    run.step(10)
    other.join()
    assert run.step_count == 2 + 10 + 10
    assert_consistent(monitor)


# -- Run, Pause, Reset clicked at awkward moments -------------------------------------------------


def test_two_quick_run_clicks_start_one_loop(monitor):
    both = threading.Barrier(3)

    def click():
        both.wait()
        monitor._on_command(monitor, RUN, [])

    clicks = [threading.Thread(target=click) for _ in range(2)]
    for thread in clicks:
        thread.start()
    both.wait()
    monitor.run()
    for thread in clicks:
        thread.join()
    assert len(loops()) == 1
    wait_until(lambda: monitor.svi.step_count >= 5)
    monitor.pause()
    assert loops() == []
    assert_consistent(monitor)


def test_a_pause_during_a_step_lets_that_step_finish_whole(monitor):
    monitor.step(3)
    GATE.close()
    monitor.run()
    assert GATE.entered.wait(30)  # the loop is in the middle of step 4
    pausing = threading.Thread(target=monitor.pause)
    pausing.start()
    time.sleep(0.05)
    assert pausing.is_alive()  # Pause waits for the step ...
    GATE.open()
    pausing.join()
    assert monitor.svi.step_count == 4  # ... which is taken whole, and no other
    assert_consistent(monitor)


def test_run_clicked_while_a_paused_loop_ends_its_step_runs_again(monitor):
    GATE.close()
    monitor.run()
    assert GATE.entered.wait(30)
    monitor.pause(timeout=0.01)  # gives up waiting: the loop is still in its step
    threading.Timer(0.05, GATE.open).start()
    monitor.run()  # waits for that step, then starts again (before: the click was lost)
    assert monitor.status == "running" and len(loops()) == 1
    wait_until(lambda: monitor.svi.step_count >= 4)
    monitor.pause()
    assert_consistent(monitor)


def test_a_step_never_goes_beside_a_loop_that_outlived_its_pause(monitor, monkeypatch):
    monkeypatch.setattr(monitor, "pause", functools.partial(SviMonitor.pause, monitor, 0.01))
    GATE.close()
    monitor.run()
    assert GATE.entered.wait(30)
    threading.Timer(0.1, GATE.open).start()
    monitor.step(2)  # its pause times out while the loop is mid-step
    count = monitor.svi.step_count
    wait_until(lambda: monitor._runner_done.is_set())
    assert monitor.svi.step_count == count  # the loop ended without another step
    assert_consistent(monitor)


def test_a_sigint_while_pausing_does_not_let_a_second_loop_start(monitor):
    GATE.close()
    monitor.run()
    assert GATE.entered.wait(30)
    main = threading.main_thread().ident
    threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        monitor.pause()  # the stop button while Pause waits for the step
    threading.Timer(0.05, GATE.open).start()
    monitor.run()  # still pausing: this Run waits for the loop (before: a second loop began)
    assert len(loops()) == 1
    wait_until(lambda: monitor.svi.step_count >= 3)
    monitor.pause()
    assert loops() == []
    assert_consistent(monitor)


def test_reset_while_running_stops_the_loop_and_starts_over(notebook):
    run, monitor = start(notebook)
    monitor._on_command(monitor, RUN, [])
    wait_until(lambda: run.step_count >= 5)
    monitor._on_command(monitor, command("reset"), [])
    assert loops() == [] and monitor.status == "idle"
    assert run.step_count == 0 and run.losses == [] and monitor.steps == []
    assert set(run.params.keys()).isdisjoint(run.param_names)  # made again at the next step
    time.sleep(0.05)
    assert run.step_count == 0  # nothing stepped after the reset
    run.step(3)
    assert run.step_count == len(run.losses) == 3 and monitor.steps == [1, 2, 3]
    assert set(run.param_names) <= set(run.params.keys())


# -- the session changes under a running Run ------------------------------------------------------


def test_a_new_svi_of_the_same_name_stops_the_old_runs_loop(notebook):
    old, old_monitor = start(notebook)
    old_monitor.run()
    wait_until(lambda: old.step_count >= 4)
    new = run_cell(notebook, "%svi coin --steps 3 --lr 0.05")
    assert new is not old and old_monitor._runner_done.is_set()
    session = notebook.magics_manager.registry["PPLMagics"].session
    assert session.runs == {"coin": new}
    count = old.step_count
    time.sleep(0.05)
    assert old.step_count == count
    old_monitor.record.assert_whole()  # the old run stopped after a whole step
    assert new.step_count == len(new.losses) == 3
    assert loops() == []


def test_ppl_reset_stops_a_running_loop(notebook):
    run, monitor = start(notebook)
    monitor.run()
    wait_until(lambda: run.step_count >= 4)
    run_cell(notebook, "%ppl reset")
    assert loops() == [] and monitor._runner_done.is_set()
    count = run.step_count
    time.sleep(0.05)
    assert run.step_count == count
    monitor.record.assert_whole()
    assert notebook.magics_manager.registry["PPLMagics"].session.runs == {}


# -- reading a run while Run goes ----------------------------------------------------------------


def test_saving_while_run_goes_saves_one_whole_step(notebook, tmp_path):
    run, monitor = start(notebook)
    monitor.run()
    paths = []
    for i in range(1, 5):
        wait_until(lambda at_least=3 * i: run.step_count >= at_least)
        paths.append(tmp_path / f"state{i}.pt")
        run.save(paths[-1])
    monitor.pause()
    record = monitor.record
    for path in paths:
        run.load(path)  # the params and optimizer of one and the same step
        saved = run.step_count
        assert_same_values(record.params[saved], run.params)
        with param_store_scope(run.params):
            assert_same_state(run.svi.optim.get_state(), record.optim[saved])


def test_a_cell_reading_a_running_run_waits_for_one_step_at_most(notebook):
    run, monitor = start(notebook)
    monitor.run()
    wait_until(lambda: run.step_count >= 3)
    waited = []
    for _ in range(10):
        before = run.step_count
        with run.lock.hold():  # as run.guide(...), run.predictive() and run.save() do
            seen = run.step_count
            assert_same_values(monitor.record.params[seen], run.params)
        waited.append(seen - before)
        time.sleep(0.01)
    monitor.pause()
    assert max(waited) <= 2, waited  # the step under way, and perhaps the one it began
    assert run.guide.median()["p"].shape == ()
    assert_consistent(monitor)


def test_the_run_lock_lets_a_waiting_cell_in_before_the_loops_next_step():
    lock, order = RunLock(), []
    in_step, finish_step = threading.Event(), threading.Event()

    def loop():
        with lock.background_turn():
            in_step.set()
            finish_step.wait(30)
            order.append("step 1")
        with lock.background_turn():  # straight back, as the Run loop does
            order.append("step 2")

    def cell():
        with lock.hold():
            order.append("cell")

    looping = threading.Thread(target=loop)
    looping.start()
    assert in_step.wait(30)
    reading = threading.Thread(target=cell)
    reading.start()
    wait_until(lambda: lock._waiting == 1)  # the cell waits for the step under way
    finish_step.set()
    looping.join()
    reading.join()
    # A plain lock lets the loop take it straight back: the cell could wait many steps.
    assert order == ["step 1", "cell", "step 2"]


# -- MCMC: Stop against the notebook and the run's end ------------------------------------------


def normal_mean(data):
    mu = engine.sample("mu", dist.Normal(0.0, 10.0))
    with engine.plate("data", len(data)):
        engine.sample("obs", dist.Normal(mu, 1.0), obs=data)


def test_stop_while_the_notebook_waits_for_the_samples():
    mcmc = MCMC(NUTS(normal_mean), num_samples=100000, warmup_steps=5, num_chains=2)
    monitor = McmcMonitor(mcmc, max_rate=1e9)
    monitor.send = lambda content, buffers=None: None
    mcmc.run_in_background(DATA)

    def click_stop():
        wait_until(lambda: mcmc.draws_so_far() is not None and mcmc.draws_so_far().shape[1] >= 3)
        monitor._on_command(monitor, command("stop"), [])

    threading.Thread(target=click_stop, daemon=True).start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        draws = mcmc.get_samples(group_by_chain=True)["mu"]
    assert mcmc.interrupted and not mcmc.running and monitor.status == "stopped"
    assert draws.shape[0] == 2 and 3 <= draws.shape[1] < 100000
    assert all(row["draws"] == draws.shape[1] for row in monitor.chains)
    monitor.close()


def test_a_stop_arriving_as_the_run_ends_leaves_it_done():
    mcmc = MCMC(NUTS(normal_mean), num_samples=10, warmup_steps=5, num_chains=2)
    monitor = McmcMonitor(mcmc, max_rate=1e9)
    monitor.send = lambda content, buffers=None: None

    def stop_at_the_end(event):  # the run has ended, its thread not yet
        if event.info.get("phase") == "done":
            monitor._on_command(monitor, command("stop"), [])

    mcmc.progress.subscribe(stop_at_the_end)
    mcmc.run_in_background(DATA)
    assert mcmc.get_samples()["mu"].shape == (20,)
    assert monitor.status == "done"  # before: "stopping", for ever
    monitor.close()


def test_ppl_reset_stops_a_background_mcmc_and_keeps_its_draws(shell):
    shell.user_ns["data"] = DATA
    run_cell(
        shell,
        "%%model normal_mean(data)\n"
        'mu = ppl.sample("mu", dist.Normal(0.0, 10.0))\n'
        'with ppl.plate("data", len(data)):\n'
        '    ppl.sample("obs", dist.Normal(mu, 1.0), obs=data)\n',
    )
    mcmc = run_cell(shell, "%mcmc normal_mean --samples 100000 --warmup 5 --chains 2")
    wait_until(lambda: mcmc.draws_so_far() is not None and mcmc.draws_so_far().shape[1] >= 3)
    run_cell(shell, "%ppl reset")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        draws = mcmc.get_samples()["mu"]
    assert mcmc.interrupted and not mcmc.running and 6 <= draws.shape[0] < 200000
    assert "MCMC runs: none" in shell.magics_manager.registry["PPLMagics"].describe()
