"""The SVI monitor's Python side: batched messages, traits for saved notebooks, the buttons'
commands (Run in a background thread, Pause, Reset), non-finite markers and the HTML fallback."""

import json
import re
import time

import pytest
import torch

import engine
import engine.distributions as dist
from engine.errors import NonFiniteError
from engine.infer import SVI, Trace_ELBO
from engine.optim import Adam
from widgets.svi_monitor import SviMonitor
from widgets.throttle import Throttle

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


def test_points_not_sent_yet_go_out_with_the_traits(monitor):
    throttled = SviMonitor(monitor.svi, (DATA,), max_rate=1e-9)  # no batch during the steps
    sent = []
    throttled.send = lambda content, buffers=None: sent.append(content)
    throttled.step(25)
    assert sent == []  # no separate batch: the trait write at the end carries the 25 steps
    assert throttled.steps == list(range(1, 26)) and throttled.num_steps == 25
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


def history_bytes(monitor):
    """What the history traits add to a saved notebook."""
    state = monitor.get_state(["steps", "losses", "params", "param_steps"])
    return len(json.dumps(state))


def test_a_long_run_keeps_at_most_max_points_in_traits_and_the_static_chart():
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    monitor = SviMonitor(svi, (DATA,), max_rate=1e9, max_points=20)  # a reading per step
    monitor.step(200)
    size_at_200 = history_bytes(monitor)
    monitor.step(200)
    steps = monitor.steps
    assert len(steps) <= 20 and steps[0] == 1 and steps[-1] == 400 and monitor.num_steps == 400
    assert monitor.losses == [svi.losses[step - 1] for step in steps]  # the losses of those steps
    assert len(monitor.param_steps) <= 20 and monitor.param_steps[-1] == 400
    assert len(monitor.params["loc"]["0"]) == len(monitor.param_steps)
    assert history_bytes(monitor) <= 1.1 * size_at_200  # twice the steps, the same size
    html = monitor.to_html()
    assert "400 steps" in html and f"lowest {min(svi.losses):.6g}" in html
    points = re.search(r"<polyline[^>]* points='([^']*)'", html).group(1).split()
    assert len(points) == len(steps)
    monitor.close()


def test_the_trait_write_at_the_end_of_a_stretch_counts_toward_the_rate(monitor):
    now = [0.0]
    monitor._throttle = Throttle(monitor._send_points, interval_s=1.0, clock=lambda: now[0])
    now[0] = 5.0
    monitor.step(1)  # its batch goes out (5 s since the last message), then the traits
    now[0] = 5.5
    monitor.step(1)  # too soon for a batch: step 2 goes out with the traits
    now[0] = 6.2  # 1.2 s after the last batch, but 0.7 s after the last trait write
    monitor.step(1)
    appends = [message["steps"] for message in monitor.sent if message["type"] == "append"]
    assert appends == [[1]]
    assert monitor.steps == [1, 2, 3] and monitor.num_steps == 3


@pytest.mark.parametrize("bad", [1, 0, 2.5, None])
def test_max_points_below_two_is_refused_by_name(bad):
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    with pytest.raises(ValueError, match=rf"max_points must be an integer of at least 2.*{bad!r}"):
        SviMonitor(svi, (DATA,), max_points=bad)
    assert not svi.progress.active  # nothing left listening to the run
