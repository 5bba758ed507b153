"""The SVI monitor's Python side: batched messages, traits for saved notebooks, the buttons'
commands (Run in a background thread, Pause, Reset), non-finite markers and the HTML fallback."""

import time

import pytest
import torch

import engine
import engine.distributions as dist
from engine.infer import SVI, NonFiniteError, Trace_ELBO
from engine.optim import Adam
from widgets.svi_monitor import SviMonitor

DATA = torch.tensor([0.5, 1.5, 1.0])


def model(data):
    mu = engine.sample("mu", dist.Normal(0.0, 10.0))
    with engine.plate("data", len(data)):
        engine.sample("obs", dist.Normal(mu, 1.0), obs=data)


def guide(data):
    loc = engine.param("loc", torch.tensor(0.0))
    engine.sample("mu", dist.Normal(loc, 1.0))


@pytest.fixture
def monitor():
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    monitor = SviMonitor(svi, (DATA,), title="demo", max_rate=1e9)
    monitor.sent = []
    monitor.send = lambda content, buffers=None: monitor.sent.append(content)
    yield monitor
    monitor.close()


def test_steps_are_sent_in_batches_and_kept_in_traits(monitor):
    throttled = SviMonitor(monitor.svi, (DATA,), max_rate=1e-9)  # one batch per sync
    sent = []
    throttled.send = lambda content, buffers=None: sent.append(content)
    throttled.step(25)
    appends = [message for message in sent if message["type"] == "append"]
    assert len(appends) == 1 and appends[0]["steps"] == list(range(1, 26))
    assert throttled.steps == list(range(1, 26))
    assert throttled.losses == pytest.approx(monitor.svi.losses)
    assert set(throttled.params) == {"loc"}
    throttled.close()


def test_step_command_takes_one_step(monitor):
    monitor._on_command(monitor, {"type": "command", "command": "step"}, None)
    assert monitor.steps == [1] and len(monitor.losses) == 1


def test_run_and_pause_step_in_the_background(monitor):
    monitor._on_command(monitor, {"type": "command", "command": "run"}, None)
    assert monitor.status == "running"
    deadline = time.monotonic() + 10
    while monitor.svi.step_count < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    monitor._on_command(monitor, {"type": "command", "command": "pause"}, None)
    assert monitor.status == "paused"
    taken = monitor.svi.step_count
    assert taken >= 20 and monitor.steps == list(range(1, taken + 1))
    time.sleep(0.05)
    assert monitor.svi.step_count == taken  # really paused


def test_reset_goes_back_to_the_start(monitor):
    calls = []
    monitor._on_reset = lambda: calls.append(True)
    monitor.step(5)
    monitor._on_command(monitor, {"type": "command", "command": "reset"}, None)
    assert calls == [True]
    assert monitor.steps == [] and monitor.losses == [] and monitor.status == "idle"
    assert monitor.sent[-1] == {"type": "reset"}


def test_non_finite_step_is_marked_with_the_site():
    def nan_guide(data):
        loc = engine.param("loc", torch.tensor(0.0))
        engine.sample("mu", dist.Normal(loc * float("nan"), 1.0))

    svi = SVI(model, nan_guide, Adam({"lr": 0.05}), Trace_ELBO())
    monitor = SviMonitor(svi, (DATA,))
    with engine.distributions.validation_enabled(False), pytest.raises(NonFiniteError):
        monitor.step(1)
    assert monitor.nonfinite and "mu" in monitor.nonfinite[0]["message"]
    assert "mu" in monitor.to_html()
    monitor.close()


def test_html_fallback_escapes_and_draws_the_curve(monitor):
    monitor.title = "<img src=x onerror=alert(1)>"
    monitor.step(10)
    data, _ = monitor._repr_mimebundle_()
    html = data["text/html"]
    assert "<img src=x" not in html and "&lt;img" in html
    assert "<polyline" in html and "10 steps" in html
    assert "data-axis='x'" in html and "data-axis='y' data-scale='log'" in html
    assert "application/vnd.jupyter.widget-view+json" in data


def brackets(axis, values):
    finite = [v for v in values if v is not None]
    return axis["ticks"][0] <= min(finite) and axis["ticks"][-1] >= max(finite)


def test_axes_bracket_the_steps_losses_and_params(monitor):
    monitor.step(30)
    axes = monitor.axes
    assert brackets(axes["steps"], monitor.steps) and axes["steps"]["scale"] == "linear"
    assert brackets(axes["loss"], monitor.losses) and axes["loss"]["scale"] == "linear"
    assert brackets(axes["loss_log"], monitor.losses) and axes["loss_log"]["scale"] == "log"
    assert brackets(axes["params"]["loc"], monitor.params["loc"]["0"])
    assert all(len(axis["ticks"]) >= 3 for axis in (axes["steps"], axes["loss"]))


def test_axes_go_out_only_when_they_change(monitor):
    monitor.step(40)  # max_rate 1e9: every step is its own message
    appends = [message for message in monitor.sent if message["type"] == "append"]
    with_axes = [message["axes"] for message in appends if "axes" in message]
    assert "axes" in appends[0] and 1 <= len(with_axes) < len(appends)
    assert with_axes[-1] == monitor.axes
    monitor.reset()
    monitor.step(1)  # after a reset the view starts empty: the axes go out again
    assert "axes" in monitor.sent[-1]


def test_a_negative_loss_has_no_log_axis_and_the_static_chart_stays_linear():
    def sharp(data):  # an observation density above 1: a negative (here constant) ELBO loss
        loc = engine.param("loc", torch.tensor(0.0))
        engine.sample("obs", dist.Normal(loc, 0.01), obs=torch.tensor(0.0))

    svi = SVI(sharp, lambda data: None, Adam({"lr": 0.05}), Trace_ELBO())
    monitor = SviMonitor(svi, (DATA,))
    monitor.step(5)
    assert min(monitor.losses) < 0 and monitor.log_scale
    assert monitor.axes["loss_log"] is None and brackets(monitor.axes["loss"], monitor.losses)
    assert "data-axis='y' data-scale='linear'" in monitor.to_html()
    monitor.close()
