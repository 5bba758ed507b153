"""The SVI monitor's posterior panel: throttled live refreshes (counted in the messages), the
budget rule, the trait a saved notebook keeps, the static fallback (escaped), reset and
failures that leave the run going."""

import itertools
import time

import pytest
import torch

import engine
import engine.distributions as dist
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import AutoNormal
from engine.optim import Adam
from engine.params import ParamStoreDict
from widgets.posterior_marginals import MarginalSampler
from widgets.posterior_panel import PosteriorPanel, static_panels
from widgets.svi_monitor import SviMonitor

DATA = torch.tensor([0.5, 1.5, 1.0])


def model(data):
    mu = engine.sample("mu", dist.Normal(0.0, 10.0))
    engine.sample("<b>", dist.HalfNormal(1.0))
    with engine.plate("data", len(data)):
        engine.sample("obs", dist.Normal(mu, 1.0), obs=data)


class Clock:
    """A clock the test moves."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_monitor(clock, interval_s=1.0, budget=0.02, burst_s=1.0, **options):
    store = ParamStoreDict()
    guide = AutoNormal(model)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO(), param_store=store)
    monitor = SviMonitor(svi, (DATA,), max_rate=1e9, **options)  # a message per step
    monitor._posterior = PosteriorPanel(
        lambda: MarginalSampler(model, guide, (DATA,), param_store=store),
        interval_s=interval_s,
        budget=budget,
        burst_s=burst_s,
        clock=clock,
    )
    monitor.sent = []
    monitor.send = lambda content, buffers=None: monitor.sent.append(content)
    return monitor


def with_posterior(messages):
    return [m for m in messages if "posterior" in m]


def test_live_refreshes_are_throttled_and_ride_on_the_batched_messages():
    clock = Clock()
    monitor = make_monitor(clock)
    monitor.step(5)  # the clock stands still: no interval has passed
    assert len(monitor.sent) == 5 and with_posterior(monitor.sent) == []
    clock.now += 1.0
    monitor.step(5)
    live = with_posterior(monitor.sent)
    # One refresh in ten messages, at the first step after the interval, in the same message
    # as its losses (no message of its own).
    assert len(monitor.sent) == 10 and len(live) == 1 and live[0]["posterior"]["step"] == 6
    assert [p["name"] for p in live[0]["posterior"]["panels"]] == ["mu", "<b>"]
    clock.now += 1.0
    monitor.step(3)
    assert [m["posterior"]["step"] for m in with_posterior(monitor.sent)] == [6, 11]
    monitor.close()


def test_the_trait_holds_the_curves_of_the_last_step():
    clock = Clock()
    monitor = make_monitor(clock)
    assert monitor.posterior == {}
    monitor.step(4)
    state = monitor.get_state()["posterior"]  # what a saved notebook keeps
    assert state["step"] == 4 and state["error"] is None
    mu = state["panels"][0]
    assert mu["name"] == "mu" and len(mu["x"]) == len(mu["guide"]) == len(mu["prior"]) == 80
    assert mu["x_axis"]["ticks"][0] <= mu["x"][0] and mu["x"][-1] <= mu["x_axis"]["ticks"][-1]
    positive = state["panels"][1]  # HalfNormal: the grid stays in the support
    assert positive["x"][0] >= 0.0
    monitor.step(3)
    assert monitor.posterior["step"] == 7
    monitor.close()


def test_a_live_refresh_at_the_last_step_is_what_the_trait_gets():
    clock = Clock()
    monitor = make_monitor(clock)
    clock.now += 1.0
    monitor.step(1)
    (live,) = with_posterior(monitor.sent)
    assert monitor.posterior == live["posterior"]  # not drawn twice
    monitor.close()


def test_the_budget_spaces_refreshes_by_their_cost():
    clock = Clock()
    panel = PosteriorPanel(
        lambda: costly_sampler(clock, 0.1), interval_s=1.0, budget=0.02, burst_s=0.2, clock=clock
    )
    clock.now = 1.0
    assert panel.due()
    panel.compute(1)
    assert panel.cost == pytest.approx(0.1)
    # 0.1 s of drawing may come once per 0.1 / 0.02 = 5 s of training, not once a second.
    clock.now += 4.9
    assert not panel.due()
    clock.now += 0.2
    assert panel.due()
    # Ends of stretches: two in a row spend the 0.2 s burst (earned back at 0.02 s per second:
    # 0.002 s during the second one's drawing); the next waits until 0.1 s is there again.
    for step in (2, 3):
        assert panel.wait() == 0.0
        panel.compute(step, final=True)
    assert panel.wait() == pytest.approx((0.1 - 0.002) / 0.02)
    clock.now += 1.0
    assert panel.wait() == pytest.approx((0.1 - 0.002 - 0.02) / 0.02)


def costly_sampler(clock, seconds):
    sampler = MarginalSampler(model, AutoNormal(model), (DATA,))
    drawn = sampler.marginals

    def marginals(*args, **kwargs):
        clock.now += seconds
        return drawn(*args, **kwargs)

    sampler.marginals = marginals
    return sampler


def test_short_stretches_in_a_row_write_the_trait_once_the_budget_allows():
    clock = Clock()
    monitor = make_monitor(clock, budget=0.5, burst_s=0.1)
    monitor._posterior._make_sampler = lambda: costly_sampler(clock, 0.1)
    monitor.step(1)
    assert monitor.posterior["step"] == 1  # the first end of a stretch: at once, from the burst
    monitor.step(1)  # 0.1 / 0.5 = 0.2 s must pass first (in the clock the panel reads)
    assert monitor.posterior["step"] == 1 and monitor._posterior_timer is not None
    deadline = time.monotonic() + 10
    while monitor.posterior["step"] != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert monitor.posterior["step"] == 2
    monitor.close()


def test_html_fallback_shows_the_panel_with_escaped_site_names():
    monitor = make_monitor(Clock())
    monitor.step(2)
    html = monitor.to_html()
    assert "data-site='&lt;b&gt;'" in html and "<figcaption>&lt;b&gt;</figcaption>" in html
    assert "<figcaption><b>" not in html
    assert html.count("data-curve='prior'") == 2 and html.count("data-curve='guide'") == 2
    assert "at step 2" in html
    monitor.close()


def test_reset_clears_the_panel():
    monitor = make_monitor(Clock())

    def back_to_the_start():  # as an SviRun's reset does
        monitor.svi.param_store.clear()
        monitor.svi.step_count = 0

    monitor._on_reset = back_to_the_start
    monitor.step(2)
    monitor.reset()
    assert monitor.posterior == {} and "ppl-posterior" not in monitor.to_html()
    monitor.step(1)
    assert monitor.posterior["step"] == 1
    monitor.close()


def test_a_failing_guide_is_shown_and_the_run_goes_on():
    def guide(data):
        engine.sample("mu", dist.Normal(0.0, 1.0))
        engine.sample("<b>", dist.HalfNormal(1.0))
        if not torch.is_grad_enabled():  # fails only when drawn for the view
            raise RuntimeError("no view for you")

    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    monitor = SviMonitor(svi, (DATA,))
    monitor.step(2)
    assert "no view for you" in monitor.posterior["error"]
    monitor.step(2)
    assert svi.step_count == 4 and "posterior view: PosteriorViewError" in monitor.to_html()
    monitor.close()


def test_a_model_without_latent_sites_has_no_panel():
    def fit(data):
        loc = engine.param("loc", torch.tensor(0.0))
        with engine.plate("data", len(data)):
            engine.sample("obs", dist.Normal(loc, 1.0), obs=data)

    monitor = SviMonitor(SVI(fit, lambda data: None, Adam({"lr": 0.1}), Trace_ELBO()), (DATA,))
    monitor.step(2)
    assert monitor.posterior["panels"] == [] and monitor.posterior["error"] is None
    assert "ppl-posterior" not in monitor.to_html()
    monitor.close()


def test_posterior_false_leaves_the_panel_out():
    svi = SVI(model, AutoNormal(model), Adam({"lr": 0.05}), Trace_ELBO())
    monitor = SviMonitor(svi, (DATA,), posterior=False)
    monitor.step(2)
    assert monitor.posterior == {}
    monitor.close()


def test_static_panels_draw_bars_and_point_masses():
    def coin_model():
        engine.sample("heads", dist.Binomial(10, 0.5))
        engine.sample("rate", dist.Exponential(1.0))

    def point_guide():
        engine.sample("heads", dist.Binomial(10, 0.7))
        engine.sample("rate", dist.Delta(torch.tensor(2.0)))

    panel = PosteriorPanel(lambda: MarginalSampler(coin_model, point_guide))
    payload = panel.compute(step=3)
    heads, rate = payload["panels"]
    html = static_panels(payload)
    low, high = int(heads["x"][0]), int(heads["x"][-1])
    assert heads["kind"] == "discrete" and heads["x"] == [float(k) for k in range(low, high + 1)]
    assert html.count("<rect data-curve='guide'") == html.count("<rect data-curve='prior'") > 5
    assert rate["guide"] is None and rate["point"] == 2.0
    assert "data-curve='guide-point'" in html  # the Delta guide's value, as a line


@pytest.mark.slow  # three refreshes a second or more apart (more on a busy machine)
def test_with_the_real_clock_refreshes_keep_the_interval_and_the_budget():
    svi = SVI(model, AutoNormal(model), Adam({"lr": 0.05}), Trace_ELBO())
    monitor = SviMonitor(svi, (DATA,), max_rate=1e9)  # the default panel: 1 s, 2 % budget
    live = []  # (when it was sent, payload)
    monitor.send = lambda content, buffers=None: (
        live.append((time.monotonic(), content["posterior"])) if "posterior" in content else None
    )
    monitor.run()  # one long stretch in the background
    deadline = time.monotonic() + 60
    while len(live) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    monitor.pause()
    assert len(live) >= 3
    for (before, earlier), (after, later) in itertools.pairwise(live):
        # Spaced by the interval, and by the drawing's cost / budget (its "seconds" include
        # the sending: the gap is measured from its end).
        assert after - before >= max(1.0, earlier["seconds"] / 0.02) - 0.05
        assert later["step"] > earlier["step"] and later["panels"]
    monitor.close()
