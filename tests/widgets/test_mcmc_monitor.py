"""The MCMC monitor's Python side: a row per chain, batched updates, final state in traits,
running diagnostics, the marginal densities and rank plots, the Stop button, and the escaped
HTML fallback."""

import time

import numpy as np
import pytest
import torch

import engine
import engine.distributions as dist
from engine.infer import MCMC, NUTS
from engine.infer.mcmc.marginals import density_curves, rank_counts
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


# --- marginal densities and rank plots ---------------------------------------------------------


def test_final_marginals_are_those_of_all_draws_per_chain():
    engine.set_rng_seed(6)
    mcmc, monitor = watched(80, chains=3)
    mcmc.run()
    marginals = monitor.marginals
    labels = [(e["site"], e["label"]) for e in marginals["elements"]]
    assert labels == [("mu", "mu"), ("scale", "scale[0]"), ("scale", "scale[1]")]
    assert marginals["draws"] == 80 and marginals["bins"] == 10
    samples = mcmc.get_samples(group_by_chain=True)
    stacked = torch.cat([samples["mu"].unsqueeze(-1), samples["scale"]], dim=-1)
    grid, density = density_curves(stacked, points=len(marginals["elements"][0]["grid"]))
    ranks = rank_counts(stacked, 10)
    for k, element in enumerate(marginals["elements"]):
        np.testing.assert_allclose(element["grid"], grid[k].numpy(), rtol=1e-6)
        np.testing.assert_allclose(element["density"], density[:, k].numpy(), rtol=1e-6)
        assert element["ranks"] == ranks[:, k].tolist()
        assert all(sum(chain) == 80 for chain in element["ranks"])
        axes = element["axes"]
        assert brackets(axes["x"], element["grid"])
        assert brackets(axes["y"], [v for chain in element["density"] for v in chain])
        assert axes["rank_x"]["ticks"][-1] >= 240 and brackets(
            axes["rank_y"], [v for chain in element["ranks"] for v in chain]
        )


def test_marginals_are_recomputed_at_most_every_interval_and_grow_with_the_draws():
    engine.set_rng_seed(7)
    mcmc, monitor = watched(60, chains=2)  # an update per iteration
    monitor.marginals_every_s = 0.0  # every update that has enough draws
    mcmc.run()
    updates = [m for m in monitor.sent if m["type"] == "update"]
    carried = [m["marginals"]["draws"] for m in updates if "marginals" in m]
    # None in warm-up or before 16 draws; then with every update, each over all draws so far.
    assert carried == list(range(16, 61))
    engine.set_rng_seed(7)
    mcmc, monitor = watched(60, chains=2)
    monitor.marginals_every_s = 1e9  # the first chance only, then the final trait
    mcmc.run()
    updates = [m for m in monitor.sent if m["type"] == "update"]
    assert len(updates) == 90 and [
        m["marginals"]["draws"] for m in updates if "marginals" in m
    ] == [16]
    assert monitor.marginals["draws"] == 60


def test_marginals_in_real_time_are_throttled():
    engine.set_rng_seed(8)
    mcmc, monitor = watched(400, chains=2)
    started = time.monotonic()
    mcmc.run()
    elapsed = time.monotonic() - started
    recomputed = sum("marginals" in m for m in monitor.sent)
    assert 1 <= recomputed <= elapsed / monitor.marginals_every_s + 1


def test_a_run_stopped_in_warm_up_has_no_marginals():
    engine.set_rng_seed(9)
    mcmc = MCMC(NUTS(model), num_samples=10, warmup_steps=50, num_chains=2)
    monitor = McmcMonitor(mcmc)
    mcmc.hook_fn = lambda kernel, params, stage, i: mcmc.request_stop() if i == 3 else None
    with pytest.warns(RuntimeWarning, match="interrupted"):
        mcmc.run()
    assert monitor.status == "stopped" and monitor.marginals == {}
    assert "ppl-marginal" not in monitor.to_html()


def test_html_fallback_draws_the_marginals_with_escaped_names():
    def odd_names():
        engine.sample("<i>mu</i>", dist.Normal(0.0, 1.0))
        engine.sample("a&b", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    engine.set_rng_seed(10)
    mcmc = MCMC(NUTS(odd_names), num_samples=30, warmup_steps=20, num_chains=2)
    monitor = McmcMonitor(mcmc)
    mcmc.run()
    html = monitor._repr_mimebundle_()[0]["text/html"]
    assert "<i>mu</i>" not in html and "&lt;i&gt;mu&lt;/i&gt;" in html
    assert html.count("class='ppl-marginal'") == 3  # mu and the first two of a&b
    assert "data-site='a&amp;b'" in html and "a&amp;b[1]" in html and "a&b" not in html
    # A density and a rank plot per element, a line per chain in each.
    assert html.count("<svg") == 6 and html.count("<polyline") == 12


def test_marginals_of_a_second_run_are_of_its_own_draws():
    engine.set_rng_seed(11)
    mcmc, monitor = watched(40, chains=2)
    mcmc.run()
    mcmc.num_samples = 20
    mcmc.run()
    assert monitor.marginals["draws"] == 20
    assert all(sum(chain) == 20 for chain in monitor.marginals["elements"][0]["ranks"])
