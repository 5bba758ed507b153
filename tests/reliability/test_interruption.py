"""Interruption: a KeyboardInterrupt (the notebook's stop button, Ctrl-C, or a model's own
``raise``) during SVI, MCMC or a monitor's Run leaves nothing half done, keeps the steps or draws
so far, and the run goes on afterwards (issue 12). The last tests send a real SIGINT through
jupyter_client to a real "pplkernel" kernel.

What "goes on" means: an SVI run continues with more steps from where it stopped. An MCMC run
does not continue (as in Pyro, ``mcmc.run`` starts again from warm-up); what was drawn before the
interrupt stays available from ``get_samples()`` and the rest until the next run.
"""

import json
import os
import pathlib
import signal
import threading
import time
import warnings

import pytest
import torch

import engine
import engine.distributions as dist
from engine.distributions import constraints
from engine.infer import MCMC, NUTS, SVI, Trace_ELBO
from engine.infer.autoguide import AutoNormal
from engine.infer.mcmc.gradient_plan import PlannedGradient
from engine.interrupts import deferred_interrupt
from engine.optim import Adam
from engine.params import ParamStoreDict
from tests.cells import COIN, run_cell
from tests.reliability.steps import AfterEachStep, assert_same_state
from tests.reliability.support import assert_same_values, values_of
from widgets.mcmc_monitor import McmcMonitor
from widgets.svi_monitor import SviMonitor

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLIPS = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
DATA = torch.tensor([0.5, 1.5, 1.0])


class Stop:
    """Raises KeyboardInterrupt where it is called, once armed (as the stop button would land
    in the middle of the model's code)."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self) -> None:
        if self.armed:
            raise KeyboardInterrupt


STOP = Stop()


@pytest.fixture(autouse=True)
def disarmed():
    STOP.armed = False
    yield
    STOP.armed = False


class _InterruptInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        STOP()
        return grad


def coin(flips, where="model"):
    if where == "model":
        STOP()
    p = engine.sample("p", dist.Beta(2.0, 2.0))
    if where == "backward":
        p = _InterruptInBackward.apply(p)
    with engine.plate("flips", len(flips)):
        engine.sample("obs", dist.Bernoulli(p), obs=flips)


def coin_guide(flips, where="model"):
    a = engine.param("a", torch.tensor(2.0), constraint=constraints.positive)
    b = engine.param("b", torch.tensor(2.0), constraint=constraints.positive)
    if where == "guide":
        STOP()
    engine.sample("p", dist.Beta(a, b))


# -- SVI.run ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["model", "guide", "backward"])
@pytest.mark.parametrize("after", [0, 4])
def test_an_interrupt_inside_svi_run_undoes_only_the_step_it_lands_in(where, after):
    svi = SVI(coin, coin_guide, Adam({"lr": 0.05}), Trace_ELBO())
    record = AfterEachStep(svi)
    svi.run(after, FLIPS, where)
    STOP.armed = True
    with pytest.raises(KeyboardInterrupt):
        svi.run(10, FLIPS, where)
    # Step after + 1 was cut short: nothing of it is left (at step 0, not even its new params).
    record.assert_whole(after)
    assert list(engine.get_param_store().keys()) == ([] if after == 0 else ["a", "b"])
    STOP.armed = False
    svi.run(3, FLIPS, where)  # the run goes on
    assert svi.step_count == len(svi.losses) == after + 3


def _twin_svis():
    """Two SVIs of the coin, each with its own store, that take the same steps when seeded."""
    made = []
    for _ in range(2):
        store = ParamStoreDict()
        svi = SVI(coin, AutoNormal(coin), Adam({"lr": 0.05}), Trace_ELBO(), param_store=store)
        made.append((svi, store))
    return made


def _signal_in_optimizer(svi):
    real = svi.optim

    class SignalAfterUpdate:
        def __call__(self, params):
            real(params)
            signal.raise_signal(signal.SIGINT)

        def __getattr__(self, name):
            return getattr(real, name)

    svi.optim = SignalAfterUpdate()


def _signal_in_elbo_commit(svi):
    real = svi.elbo.commit_step

    def commit_then_signal():
        real()
        signal.raise_signal(signal.SIGINT)

    svi.elbo.commit_step = commit_then_signal


def _signal_in_listener(svi):
    svi.progress.subscribe(lambda event: signal.raise_signal(signal.SIGINT))


@pytest.mark.parametrize(
    "land", [_signal_in_optimizer, _signal_in_elbo_commit, _signal_in_listener]
)
def test_a_sigint_while_a_step_commits_lets_the_step_finish_first(land):
    (svi, store), (twin, twin_store) = _twin_svis()
    engine.set_rng_seed(3)
    svi.run(4, FLIPS)
    land(svi)
    with pytest.raises(KeyboardInterrupt):
        svi.step(FLIPS)
    # The whole fifth step happened (params, optimizer moments, count, loss), then the stop.
    engine.set_rng_seed(3)
    twin.run(5, FLIPS)
    assert svi.step_count == len(svi.losses) == 5
    assert svi.losses == twin.losses
    assert_same_values(values_of(twin_store), store)
    with engine.params.param_store_scope(store):
        mine = svi.optim.get_state()
    with engine.params.param_store_scope(twin_store):
        assert_same_state(mine, twin.optim.get_state())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_listener_that_raises_keyboardinterrupt_does_not_undo_a_committed_step():
    svi = SVI(coin, coin_guide, Adam({"lr": 0.05}), Trace_ELBO())
    record = AfterEachStep(svi)
    svi.run(2, FLIPS)

    def stop_after_step_3(event):
        if event.step == 3:
            raise KeyboardInterrupt

    svi.progress.subscribe(stop_after_step_3)
    with pytest.raises(KeyboardInterrupt):
        svi.run(5, FLIPS)
    record.assert_whole(3)  # before: params of step 2 with the count of step 3


def test_deferred_interrupt_delivers_at_the_end_of_the_outermost_block():
    reached = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupt():
        with deferred_interrupt():
            signal.raise_signal(signal.SIGINT)
            reached.append("inner")
        reached.append("outer")
    assert reached == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_deferred_interrupt_leaves_other_threads_and_ignored_sigint_alone():
    seen = []

    def in_a_thread():
        with deferred_interrupt():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupt():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


# -- MCMC.run ----------------------------------------------------------------------------------


def normal_mean(data):
    STOP()
    mu = engine.sample("mu", dist.Normal(0.0, 10.0))
    with engine.plate("data", len(data)):
        engine.sample("obs", dist.Normal(mu, 1.0), obs=data)


@pytest.mark.parametrize(("stage", "at", "kept"), [("Warmup", 3, 0), ("Sample", 6, 7)])
def test_an_interrupt_inside_the_model_during_mcmc_keeps_the_draws_so_far(
    stage, at, kept, monkeypatch
):
    # After a few evaluations the sampler replays a recorded plan of the model instead of
    # running its Python (engine.infer.mcmc.gradient_plan); the model's own raise needs the
    # model to run at every step, so this test keeps every evaluation on the full path.
    monkeypatch.setattr(PlannedGradient, "max_plans", 0)
    drawn, runs = [], []

    def arm(kernel, params, this_stage, iteration):
        if this_stage == "Sample":
            drawn.append(params["mu"].clone())
        if this_stage == stage and iteration == at and len(runs) == 1:
            STOP.armed = True  # the model raises in the next iteration of the first run

    mcmc = MCMC(NUTS(normal_mean), num_samples=40, warmup_steps=10, num_chains=2, hook_fn=arm)
    runs.append(1)
    with pytest.warns(RuntimeWarning, match=f"interrupted after {kept} of 40 draws"):
        mcmc.run(DATA)
    STOP.armed = False  # the results run the model too
    assert mcmc.interrupted and not mcmc.running
    samples = mcmc.get_samples(group_by_chain=True)["mu"]
    assert samples.shape == (2, kept)
    if kept:  # the kept draws are the chains' points, draw by draw
        assert torch.equal(samples, torch.stack(drawn, dim=1))
        assert set(mcmc.diagnostics()["divergences"]) == {"chain 0", "chain 1"}
    runs.append(2)
    mcmc.run(DATA)  # a new run, from warm-up: all its draws
    assert not mcmc.interrupted
    assert mcmc.get_samples(group_by_chain=True)["mu"].shape == (2, 40)


def test_a_sigint_while_waiting_for_a_background_mcmc_ends_it_and_keeps_its_draws():
    mcmc = MCMC(NUTS(normal_mean), num_samples=100000, warmup_steps=5, num_chains=2)
    mcmc.run_in_background(DATA)
    main = threading.main_thread().ident

    def stop_button():  # once some draws are made, while the notebook waits for results
        while mcmc.draws_so_far() is None or mcmc.draws_so_far().shape[1] < 5:
            time.sleep(0.005)
        time.sleep(0.05)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=stop_button, daemon=True).start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # Before: the interrupt landed in Thread.join, which then took the still running
        # thread for ended: "MCMC has no draws yet".
        samples = mcmc.get_samples(group_by_chain=True)["mu"]
    assert mcmc.interrupted and not mcmc.running
    assert samples.shape[0] == 2 and 5 <= samples.shape[1] < 100000
    assert bool(torch.isfinite(mcmc.summary()["mu"]["mean"]))  # the results work on them


# -- a monitor's Run and Stop ------------------------------------------------------------------


def test_an_interrupt_inside_the_model_stops_a_monitor_run_cleanly(monkeypatch):
    escaped = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    svi = SVI(coin, coin_guide, Adam({"lr": 0.05}), Trace_ELBO())
    record = AfterEachStep(svi)
    svi.progress.subscribe(lambda event: setattr(STOP, "armed", event.step == 6))
    monitor = SviMonitor(svi, (FLIPS,), max_rate=1e9)
    monitor.send = lambda content, buffers=None: None
    monitor.run()
    monitor._runner.join(30)
    assert not monitor._runner.is_alive() and escaped == []
    assert monitor.status == "stopped"
    record.assert_whole(6)
    assert monitor.steps == list(range(1, 7))
    assert monitor.nonfinite[-1]["step"] == 7
    assert "KeyboardInterrupt" in monitor.nonfinite[-1]["message"]
    STOP.armed = False
    monitor.step(3)  # goes on, and Run again too
    assert svi.step_count == len(svi.losses) == 9
    monitor.run()
    monitor.pause()
    assert monitor.status == "paused" and monitor.steps == list(range(1, svi.step_count + 1))
    monitor.close()


def test_the_mcmc_monitors_stop_keeps_whole_draws_and_a_new_run_works():
    mcmc = MCMC(NUTS(normal_mean), num_samples=100000, warmup_steps=5, num_chains=2)
    monitor = McmcMonitor(mcmc, max_rate=1e9)
    monitor.send = lambda content, buffers=None: None
    mcmc.run_in_background(DATA)
    deadline = time.monotonic() + 60
    while (mcmc.draws_so_far() is None or mcmc.draws_so_far().shape[1] < 5) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.01)
    monitor._on_command(monitor, {"type": "command", "command": "stop"}, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        samples = mcmc.get_samples(group_by_chain=True)["mu"]
    kept = samples.shape[1]
    assert mcmc.interrupted and 5 <= kept < 100000 and monitor.status == "stopped"
    assert all(row["draws"] == kept for row in monitor.chains)
    assert mcmc.diagnostics()["acceptance rate"].keys() == {"chain 0", "chain 1"}
    assert bool(torch.isfinite(samples).all())
    short = MCMC(NUTS(normal_mean), num_samples=10, warmup_steps=5, num_chains=2)
    short.run(DATA)
    assert short.get_samples()["mu"].shape == (20,)
    monitor.close()


# -- the magics ----------------------------------------------------------------------------------

HALTING = """\
%%model halting(flips)
stop_here()
p = ppl.sample("p", dist.Beta(2.0, 2.0))
with ppl.plate("flips", len(flips)):
    ppl.sample("obs", dist.Bernoulli(p), obs=flips)
"""


def test_a_new_svi_run_interrupted_early_is_kept_with_its_steps(shell):
    calls = []

    def stop_here():  # at the model's 8th call only (the set-up's, then one per step)
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt

    shell.user_ns["stop_here"] = stop_here
    run_cell(shell, HALTING)
    calls.clear()
    engine.set_rng_seed(5)
    run_ = run_cell(shell, "%svi halting --steps 20")
    taken = run_.step_count
    assert 0 < taken < 20 and len(run_.losses) == taken
    engine.set_rng_seed(6)
    run_cell(shell, "%svi step 4")  # the run goes on
    assert run_.step_count == len(run_.losses) == taken + 4
    # Bit for bit an uninterrupted twin seeded alike: the step cut short left no trace.
    engine.set_rng_seed(5)
    twin = run_cell(shell, f"%svi halting --steps {taken} --name twin")
    engine.set_rng_seed(6)
    twin.step(4)
    assert run_.losses == twin.losses
    assert_same_values(values_of(twin.params), run_.params)


# -- a real SIGINT to a real kernel --------------------------------------------------------------


class LiveKernel:
    """A "pplkernel" kernel (importing this worktree's code) and its client."""

    def __init__(self) -> None:
        from jupyter_client import KernelManager

        self.manager = KernelManager(kernel_name="pplkernel")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.manager.start_kernel(env=env, cwd=str(ROOT))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 120) -> str:
        """Run ``code``; returns what it printed. Fails with the error the cell showed."""
        printed, errors = [], []

        def collect(message):
            content = message["content"]
            if message["msg_type"] == "stream":
                printed.append(content["text"])
            elif message["msg_type"] == "error":
                errors.append("\n".join(content["traceback"]))

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=collect)
        assert reply["content"]["status"] == "ok", errors
        return "".join(printed)

    def start(self, code: str) -> str:
        """Start ``code`` without waiting; returns the request's id."""
        return self.client.execute(code)

    def wait_for_widget_message(self, accept, timeout: float = 120) -> None:
        """Read the kernel's output until a widget sends a message ``accept`` likes."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.client.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.1))
            if message["msg_type"] == "comm_msg":
                data = message["content"]["data"]
                if data.get("method") == "custom" and accept(data["content"]):
                    return

    def reply(self, msg_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = self.client.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.1))
            if message["parent_header"].get("msg_id") == msg_id:
                return message["content"]

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel():
    live = LiveKernel()
    live.run("import json")
    yield live
    live.close()


def _printed_json(text: str):
    return json.loads(text.strip().splitlines()[-1])


def test_a_real_sigint_during_svi_keeps_whole_steps_and_the_run_goes_on(kernel):
    where = _printed_json(kernel.run("import engine; print(json.dumps(engine.__file__))"))
    assert where.startswith(str(ROOT))  # the kernel runs this worktree's code
    kernel.run(f"flips = torch.tensor({FLIPS.tolist()})\n")
    kernel.run(COIN)
    kernel.run("ppl.set_rng_seed(7)")
    request = kernel.start("run = %svi coin --steps 100000")
    kernel.wait_for_widget_message(lambda content: content.get("type") == "append")
    kernel.manager.interrupt_kernel()
    assert kernel.reply(request)["status"] == "ok"  # the magic keeps what was done
    taken = _printed_json(kernel.run("print(json.dumps([run.step_count, len(run.losses)]))"))
    assert taken[0] == taken[1] and 0 < taken[0] < 100000
    # More steps work, and the run is bit for bit an uninterrupted twin seeded alike: the steps
    # before the stop were kept whole, the one it landed in left no trace.
    kernel.run("ppl.set_rng_seed(8)\n%svi step 10")
    checked = kernel.run(
        "from tests.reliability.support import assert_same_values, values_of\n"
        f"ppl.set_rng_seed(7)\ntwin = %svi coin --steps {taken[0]} --name twin\n"
        "ppl.set_rng_seed(8)\ntwin.step(10)\n"
        "assert run.losses == twin.losses\n"
        "assert_same_values(values_of(twin.params), run.params)\n"
        "print(json.dumps(run.step_count))"
    )
    assert _printed_json(checked) == taken[0] + 10


def test_a_real_sigint_while_waiting_for_mcmc_ends_the_run_and_keeps_its_draws(kernel):
    kernel.run(f"flips = torch.tensor({FLIPS.tolist()})\n")
    kernel.run(COIN)
    kernel.run("mcmc = %mcmc coin --samples 100000 --warmup 20 --chains 2")
    request = kernel.start("samples = mcmc.get_samples(group_by_chain=True)")
    kernel.wait_for_widget_message(
        lambda content: (
            content.get("type") == "update"
            and content["chains"][0]["phase"] == "sample"
            and content["chains"][0]["draws"] >= 5
        )
    )
    kernel.manager.interrupt_kernel()
    replied = kernel.reply(request)
    assert replied["status"] == "ok", replied  # get_samples returned the draws so far
    state = _printed_json(
        kernel.run(
            "p = samples['p']\n"
            "print(json.dumps([mcmc.interrupted, mcmc.running, list(p.shape),"
            " bool(((p > 0) & (p < 1)).all()), mcmc.get_samples()['p'].shape[0]]))"
        )
    )
    interrupted, running, shape, in_support, flat = state
    assert interrupted and not running and in_support
    assert shape[0] == 2 and 5 <= shape[1] < 100000 and flat == 2 * shape[1]
    # The kernel lives and runs more MCMC.
    again = kernel.run(
        "again = %mcmc coin --samples 20 --warmup 10 --chains 2\n"
        "print(json.dumps(again.get_samples()['p'].shape[0]))"
    )
    assert _printed_json(again) == 40
