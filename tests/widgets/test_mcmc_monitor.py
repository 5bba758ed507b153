"""The MCMC monitor's Python side: a row per chain, batched updates, final state in traits,
running diagnostics, the Stop button, and the escaped HTML fallback."""

import time

import pytest
import torch

import engine
import engine.distributions as dist
from engine.infer import MCMC, NUTS
from widgets.mcmc_monitor import McmcMonitor


def model():
    engine.sample("mu", dist.Normal(1.0, 2.0))
    engine.sample("scale", dist.HalfNormal(torch.ones(2)).to_event(1))


def watched(num_samples, chains=3, max_rate=1e9):
    mcmc = MCMC(NUTS(model), num_samples=num_samples, warmup_steps=30, num_chains=chains)
    monitor = McmcMonitor(mcmc, title="<b>demo</b>", max_rate=max_rate)
    monitor.sent = []
    monitor.send = lambda content, buffers=None: monitor.sent.append(content)
    return mcmc, monitor


def test_a_row_per_chain_and_the_final_state_in_traits():
    engine.set_rng_seed(0)
    mcmc, monitor = watched(120)
    mcmc.run()
    assert monitor.status == "done"
    assert [row["chain"] for row in monitor.chains] == [0, 1, 2]
    assert all(row["draws"] == 120 and row["iteration"] == 150 for row in monitor.chains)
    assert [len(values) for values in monitor.lp] == [150, 150, 150]
    assert monitor.lp_iterations == list(range(1, 151))
    assert set(monitor.traces) == {"mu", "scale"}
    assert monitor.rhat is not None and monitor.rhat < 1.1 and monitor.ess > 30
    updates = [message for message in monitor.sent if message["type"] == "update"]
    # Every iteration went out (max_rate 1e9); the end is told by the traits, not a message.
    assert updates and monitor.sent[-1] is updates[-1]
    assert updates[-1]["trace_iteration"] == 150 and updates[-1]["lp_iterations"] == [150]


def brackets(axis, values):
    finite = [v for v in values if v is not None]
    return axis["ticks"][0] <= min(finite) and axis["ticks"][-1] >= max(finite)


def test_axes_bracket_the_iterations_log_density_and_traces():
    engine.set_rng_seed(4)
    mcmc, monitor = watched(40, chains=2)
    mcmc.run()
    axes = monitor.axes
    assert brackets(axes["iteration"], [1, 70])  # 30 warm-up and 40 draws
    assert all(t == int(t) for t in axes["iteration"]["ticks"])
    assert brackets(axes["lp"], [v for chain in monitor.lp for v in chain])
    iterations = monitor.trace_iterations
    assert iterations == sorted(iterations) and iterations[-1] == 70
    for name in ("mu", "scale"):
        assert all(len(chain) == len(iterations) for chain in monitor.traces[name])
        assert brackets(axes["traces"][name], [v for chain in monitor.traces[name] for v in chain])
    sent = [message["axes"] for message in monitor.sent if "axes" in message]
    assert sent[-1] == axes and len(sent) < len(monitor.sent) - 1  # only when they change


def test_iterations_not_sent_yet_go_out_with_the_final_traits():
    engine.set_rng_seed(1)
    mcmc, monitor = watched(60, max_rate=1e-9)  # no batch during the run
    mcmc.run()
    assert monitor.sent == []  # no separate batch: the final trait write carries everything
    assert [len(values) for values in monitor.lp] == [90, 90, 90]
    assert monitor.lp_iterations == list(range(1, 91)) and monitor.trace_iterations == [90]


def test_stop_button_ends_a_background_run_and_keeps_the_draws():
    engine.set_rng_seed(2)
    mcmc, monitor = watched(100000, chains=2)
    mcmc.run_in_background()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        draws = mcmc.draws_so_far()
        if draws is not None and draws.shape[1] >= 3:
            break
        time.sleep(0.02)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        monitor._on_command(monitor, {"type": "command", "command": "stop"}, None)
        mcmc.wait()
    assert monitor.status == "stopped" and mcmc.interrupted
    kept = mcmc.get_samples(group_by_chain=True)["mu"].shape[1]
    assert 3 <= kept < 100000 and all(row["draws"] == kept for row in monitor.chains)


def test_html_fallback_is_escaped():
    engine.set_rng_seed(3)
    mcmc, monitor = watched(20, chains=2)
    mcmc.run()
    data, _ = monitor._repr_mimebundle_()
    assert "<b>demo</b>" not in data["text/html"] and "&lt;b&gt;demo" in data["text/html"]
    assert data["text/html"].count("<tr>") == 3  # header and two chains


def test_a_failing_run_shows_its_error():
    def failing():
        x = engine.sample("x", dist.Normal(0.0, 1.0))
        if not torch.is_grad_enabled():  # fails once sampling is going, not while setting up
            raise ValueError("model broke")
        engine.sample("y", dist.Normal(x, 1.0), obs=torch.tensor(0.0))

    mcmc = MCMC(NUTS(failing), num_samples=10, warmup_steps=5)
    monitor = McmcMonitor(mcmc)
    with pytest.raises(ValueError, match="model broke"):
        mcmc.run()
        mcmc.get_samples()
    assert monitor.status in ("failed", "waiting")


def test_a_long_run_keeps_at_most_max_points_iterations_in_traits():
    engine.set_rng_seed(5)
    mcmc = MCMC(NUTS(model), num_samples=100, warmup_steps=30, num_chains=2)
    monitor = McmcMonitor(mcmc, max_rate=1e9, max_points=16)  # an update per iteration
    sent = []
    monitor.send = lambda content, buffers=None: sent.append(content)
    mcmc.run()
    iterations = monitor.lp_iterations
    assert len(iterations) <= 16 and iterations[0] == 1 and iterations[-1] == 130
    assert all(len(chain) == len(iterations) for chain in monitor.lp)
    # The kept values are those of their iterations, as the live updates sent them.
    live = {i: [chain[0] for chain in m["lp"]] for m in sent for i in m["lp_iterations"]}
    assert [list(values) for values in zip(*monitor.lp, strict=True)] == [
        live[i] for i in iterations
    ]
    assert len(monitor.trace_iterations) <= 16 and monitor.trace_iterations[-1] == 130
    assert all(len(chain) == len(monitor.trace_iterations) for chain in monitor.traces["mu"])
    assert monitor.axes["iteration"]["ticks"][-1] >= 130
    assert all(row["draws"] == 100 for row in monitor.chains)


@pytest.mark.parametrize("bad", [1, 0, 2.5, None])
def test_max_points_below_two_is_refused_by_name(bad):
    mcmc = MCMC(NUTS(model), num_samples=10, warmup_steps=5)
    with pytest.raises(ValueError, match=rf"max_points must be an integer of at least 2.*{bad!r}"):
        McmcMonitor(mcmc, max_points=bad)
    assert not mcmc.progress.active  # nothing left listening to the run
