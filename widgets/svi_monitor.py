"""The SVI monitor: a live ELBO curve, parameter traces, and Step / Run / Pause / Reset buttons.

It listens to an :class:`~engine.infer.SVI`'s progress events. New points go to the browser as
small batched messages (at most ``max_rate`` a second); the history is written into the traits
when a stretch of steps ends (:meth:`SviMonitor.sync`, one message that also carries the points
not sent yet), so a saved notebook shows the final curve. However long the run, the history
holds at most ``max_points`` points per curve (:mod:`widgets.history`: evenly spaced, the first
and the latest kept), so the kernel's memory and the saved notebook stay the same size. The
buttons work while the kernel is idle: Run steps in a background thread until Pause. Every step,
from the buttons or from a cell, holds the run's :class:`~widgets.run_lock.RunLock` (a cell
stepping the run pauses a background Run first), so two threads never step one SVI at once and
whoever holds the lock sees the params after a whole step. Steps whose loss or gradient is not
finite are marked with the message that names the site. The charts' axes (ticks and labels,
:mod:`widgets.axes`) travel with the data, in the ``axes`` trait and in a message whenever they
change. The log scale needs every loss positive: when some loss is zero or negative (an ELBO
loss can be), the chart stays linear and says so.

Below the charts, the posterior panel (:mod:`widgets.posterior_panel`) shows each latent site's
marginal under the guide (a line) with its prior behind it (shaded). It rides on the batched
messages, recomputed at most once a second and within 2 % of the run's wall time, and the state
at the end of a stretch of steps goes into the ``posterior`` trait (and the static fallback), so a
saved notebook shows the curves of the last step (in a loop of very short stretches, a moment
after the last one: see :mod:`widgets.posterior_panel`). ``posterior=False`` leaves it out.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import SVI, Trace_ELBO
>>> from engine.optim import Adam
>>> def model():
...     engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))
...     engine.param("m", torch.tensor(0.0))
>>> svi = SVI(model, lambda: None, Adam({"lr": 0.1}), Trace_ELBO())
>>> monitor = SviMonitor(svi, title="demo")
>>> monitor.step(3)
>>> monitor.steps, len(monitor.losses), monitor.status
([1, 2, 3], 3, 'idle')
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from typing import Any

import anywidget
import torch
import traitlets

from engine.errors import NonFiniteError
from engine.infer import SVI
from engine.infer.progress import ProgressEvent
from engine.interrupts import deferred_interrupt
from engine.params import get_param_store
from widgets.axes import Extent, linear_axis, log_axis, svg_chart
from widgets.esm import monitor_esm
from widgets.history import Thinned
from widgets.html import HtmlFallback, escape
from widgets.posterior_marginals import MarginalSampler
from widgets.posterior_panel import PosteriorPanel, static_panels
from widgets.run_lock import RunLock
from widgets.throttle import Throttle

# Parameters shown as traces: at most this many, each summarised by its mean when larger than
# a handful of numbers.
_MAX_TRACED_PARAMS = 8
_MAX_ELEMENTS = 4

# One recorded step: (step, loss or None when not finite); one parameter reading:
# (step, {name: {element: value}}).
LossRow = tuple[int, float | None]
ParamRow = tuple[int, dict[str, dict[str, float]]]


def _param_summary(value: torch.Tensor) -> dict[str, float]:
    flat = value.detach().reshape(-1)
    if flat.numel() <= _MAX_ELEMENTS:
        return {str(i): float(x) for i, x in enumerate(flat.tolist())}
    return {"mean": float(flat.float().mean())}


class SviMonitor(HtmlFallback, anywidget.AnyWidget):
    """Live view and controls of one SVI run (see the module docstring).

    ``args``/``kwargs`` are the model arguments each step uses; ``on_reset`` (optional) puts
    the run back to its start when Reset is clicked; ``param_source`` returns the current
    parameters ``{name: tensor}`` to trace. ``max_points`` bounds the points kept per curve
    (in the traits, the static chart and the kernel's memory); ``lock`` is the run's lock, when
    others (a notebook run reading its params) share it. ``posterior`` shows the posterior
    panel (drawn in the SVI's own param store, with the model arguments of the steps).
    """

    _esm = monitor_esm("svi_monitor.js")
    title = traitlets.Unicode("").tag(sync=True)
    steps = traitlets.List(traitlets.Int()).tag(sync=True)  # of the points kept (thinned)
    num_steps = traitlets.Int(0).tag(sync=True)  # steps recorded, kept or not
    losses = traitlets.List().tag(sync=True)  # floats; None for a non-finite loss
    params = traitlets.Dict().tag(sync=True)  # name -> {element: [values]}
    param_steps = traitlets.List(traitlets.Int()).tag(sync=True)
    nonfinite = traitlets.List().tag(sync=True)  # [{"step", "message"}]
    status = traitlets.Unicode("idle").tag(sync=True)
    log_scale = traitlets.Bool(True).tag(sync=True)
    smoothing = traitlets.Float(0.0).tag(sync=True)
    # {"steps": x axis, "loss": y axis, "loss_log": y axis or None, "params": {name: y axis}}
    axes = traitlets.Dict().tag(sync=True)
    # The posterior panel's last payload (widgets.posterior_panel); {} before any.
    posterior = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        svi: SVI,
        args: tuple = (),
        kwargs: dict[str, Any] | None = None,
        *,
        title: str = "",
        on_reset: Callable[[], None] | None = None,
        param_source: Callable[[], dict[str, torch.Tensor]] | None = None,
        max_rate: float = 20.0,
        max_points: int = 1000,
        lock: RunLock | None = None,
        posterior: bool = True,
    ):
        losses: Thinned[LossRow] = Thinned(max_points, label="max_points")
        super().__init__(title=title)
        self.svi = svi
        self.args, self.kwargs = tuple(args), dict(kwargs or {})
        self._on_reset = on_reset
        self._param_source = param_source or _store_params
        self._losses = losses
        self._param_rows: Thinned[ParamRow] = Thinned(max_points, label="max_points")
        self._loss_extent = Extent()
        self._param_extents: dict[str, Extent] = {}
        self._sent_axes: dict[str, Any] = {}
        self._throttle = Throttle(self._send_points, interval_s=1.0 / max_rate)
        self.lock = RunLock() if lock is None else lock
        self._posterior = (
            PosteriorPanel(
                lambda: MarginalSampler(
                    svi.model, svi.guide, self.args, self.kwargs, param_store=svi.param_store
                )
            )
            if posterior
            else None
        )
        self._posterior_timer: threading.Timer | None = None
        self._pause = threading.Event()
        self._runner: threading.Thread | None = None
        # Set when the background loop has ended. Waited on instead of Thread.join: in Python
        # 3.11 a stop (KeyboardInterrupt) landing in join() marks a thread that still runs as
        # ended, and a second loop could start beside it.
        self._runner_done = threading.Event()
        self._runner_done.set()
        self._starting = threading.Lock()  # two quick Run clicks start one loop
        self._unsubscribe = svi.progress.subscribe(self._on_event)
        self.on_msg(self._on_command)

    # -- listening ---------------------------------------------------------------------------

    def _on_event(self, event: ProgressEvent) -> None:
        self._throttle.add((event.step, float(event.loss), event.info.get("message")))

    def _send_points(self, batch: list[tuple[int, float, str | None]]) -> None:
        steps, losses, current = self._record(batch)
        message = {"type": "append", "steps": steps, "losses": losses, "params": current}
        axes = self._axes()
        if axes != self._sent_axes:  # ticks change seldom: send them only then
            message["axes"] = self._sent_axes = axes
        if self._posterior is not None and self._posterior.due():
            message["posterior"] = self._posterior.compute(steps[-1])
        self.send(message)

    def _record(
        self, batch: list[tuple[int, float, str | None]]
    ) -> tuple[list[int], list[float | None], dict[str, dict[str, float]]]:
        """Put a batch of steps into the history; the parameters are read once, at its end."""
        steps = [step for step, _, _ in batch]
        losses = [loss if math.isfinite(loss) else None for _, loss, _ in batch]
        self._losses.extend(zip(steps, losses, strict=True))
        self._loss_extent.add(losses)
        for step, _, skipped_because in batch:
            if skipped_because is not None:
                self._mark(step, f"step skipped: {skipped_because}")
        current = {}
        for name, value in list(self._param_source().items())[:_MAX_TRACED_PARAMS]:
            current[name] = _param_summary(value)
            self._param_extents.setdefault(name, Extent()).add(current[name].values())
        self._param_rows.append((steps[-1], current))
        return steps, losses, current

    def _axes(self) -> dict[str, Any]:
        """The charts' axes for the history so far: the parameter traces share the ELBO
        chart's step axis."""
        rows, loss = self._losses.rows(), self._loss_extent
        if not rows:
            return {}
        axes: dict[str, Any] = {
            "steps": linear_axis(rows[0][0], rows[-1][0], 6, integer=True),
            "params": {
                name: linear_axis(extent.low, extent.high, 3)
                for name, extent in self._param_extents.items()
                if extent
            },
        }
        if loss:
            axes["loss"] = linear_axis(loss.low, loss.high, 5)
            axes["loss_log"] = log_axis(loss.low, loss.high, 5) if loss.low > 0 else None
        return axes

    def _mark(self, step: int, message: str) -> None:
        self.nonfinite = [*self.nonfinite, {"step": step, "message": message}]

    def sync(self) -> None:
        """Write the history into the traits (what a saved notebook keeps), the points not
        sent yet included: one message, which the rate counts."""
        # Under the lock, so no step adds points halfway; whole, so a stop pressed now cannot
        # leave the traits disagreeing with each other.
        with self.lock.hold(), deferred_interrupt():
            pending = self._throttle.take_pending()
            if pending:
                self._record(pending)
            rows, param_rows = self._losses.rows(), self._param_rows.rows()
            with self.hold_sync():
                self.steps = [step for step, _ in rows]
                self.losses = [loss for _, loss in rows]
                self.params = _param_traces(param_rows)
                self.param_steps = [step for step, _ in param_rows]
                self.num_steps = self._losses.count
                self.axes = self._sent_axes = self._axes()
                self._sync_posterior()
            self._throttle.mark_sent()

    def _sync_posterior(self) -> None:
        """Write the posterior of the latest step into its trait now, or, when the panel's
        budget does not allow it yet (many short stretches in a row), once it does."""
        panel, step = self._posterior, self.svi.step_count
        self._cancel_posterior_timer()
        if panel is None or step == 0:
            return
        if panel.failed or panel.last_step == step:  # a live refresh drew this step already
            self.posterior = panel.payload
            return
        wait = panel.wait()
        if wait == 0:
            self.posterior = panel.compute(step, final=True)
        else:
            self._posterior_timer = threading.Timer(wait, self._posterior_later)
            self._posterior_timer.daemon = True
            self._posterior_timer.start()

    def _posterior_later(self) -> None:
        with self.lock.hold(), deferred_interrupt():
            if self._posterior is not None and self._posterior.last_step != self.svi.step_count:
                self.posterior = self._posterior.compute(self.svi.step_count, final=True)

    # -- driving the run ---------------------------------------------------------------------

    def step(self, num_steps: int = 1) -> None:
        """Take ``num_steps`` steps here and now (the Step button takes one); a background Run
        is paused first, so two threads never step the same SVI."""
        if not self._runner_done.is_set():
            self.pause()
        # Held for all the steps: a Run clicked meanwhile waits for them (its loop, should a
        # pause above have timed out, checks for the pause inside its turn and ends).
        with self.lock.hold():
            try:
                for _ in range(num_steps):
                    self.svi.step(*self.args, **self.kwargs)
            except NonFiniteError as error:
                self._mark(self.svi.step_count + 1, str(error))
                raise
            finally:
                self.sync()

    def run(self) -> None:
        """Step in a background thread until :meth:`pause` (the Run button). Run clicked while
        a paused loop is still finishing its step starts again once that step is done."""
        with self._starting:
            if not self._runner_done.is_set():
                if not self._pause.is_set():
                    return  # already running
                self._runner_done.wait()
            self._pause.clear()
            self.status = "running"
            done = self._runner_done = threading.Event()
            self._runner = threading.Thread(
                target=self._run_until_paused, args=(done,), daemon=True
            )
            self._runner.start()

    def _run_until_paused(self, done: threading.Event) -> None:
        try:
            while True:
                with self.lock.background_turn():
                    if self._pause.is_set():  # checked in the turn: a step waited for it
                        break
                    self.svi.step(*self.args, **self.kwargs)
        except NonFiniteError as error:
            self._mark(self.svi.step_count + 1, str(error))
        except KeyboardInterrupt:  # raised by the model's own code: signals go elsewhere
            self._mark(
                self.svi.step_count + 1,
                "interrupted by a KeyboardInterrupt; the steps before this one are kept",
            )
        except Exception as error:  # shown on the widget; the run stays as it was
            self._mark(self.svi.step_count + 1, f"{type(error).__name__}: {error}")
        finally:
            try:
                self.sync()
                self.status = "paused" if self._pause.is_set() else "stopped"
            finally:
                done.set()

    def pause(self, timeout: float | None = 10.0) -> None:
        """Stop a background run after its current step (waiting up to ``timeout`` seconds
        for that step to end)."""
        self._pause.set()
        if self._runner is not threading.current_thread():
            self._runner_done.wait(timeout)

    def reset(self) -> None:
        """Pause, put the run back to its start (``on_reset``) and clear the history.

        >>> import engine
        >>> from engine.infer import SVI, Trace_ELBO
        >>> from engine.optim import Adam
        >>> monitor = SviMonitor(SVI(lambda: None, lambda: None, Adam({}), Trace_ELBO()))
        >>> monitor.step(2); monitor.reset(); monitor.steps
        []
        """
        self.pause()
        with self.lock.hold():
            if self._on_reset is not None:
                self._on_reset()
            self._throttle.take_pending()  # points of the old history not sent yet: gone with it
            self._losses.clear()
            self._param_rows.clear()
            self._loss_extent, self._param_extents, self._sent_axes = Extent(), {}, {}
            self.nonfinite = []
            self._cancel_posterior_timer()
            if self._posterior is not None:
                self._posterior.reset()
            self.posterior = {}
            self.status = "idle"
            self.sync()
            self.send({"type": "reset"})

    def _on_command(self, widget: Any, content: dict, buffers: Any) -> None:
        if content.get("type") != "command":
            return
        command = content.get("command")
        if command == "step":
            with contextlib.suppress(NonFiniteError):  # marked on the widget already
                self.step(1)
        elif command == "run":
            self.run()
        elif command == "pause":
            self.pause()
        elif command == "reset":
            self.reset()

    def close(self) -> None:
        if hasattr(self, "_unsubscribe"):  # not when __init__ refused its arguments
            self.pause()
            self._unsubscribe()
            self._cancel_posterior_timer()
        super().close()

    def _cancel_posterior_timer(self) -> None:
        if self._posterior_timer is not None:
            self._posterior_timer.cancel()
            self._posterior_timer = None

    # -- static view -------------------------------------------------------------------------

    def to_html(self) -> str:
        """A static summary with the loss curve as an inline SVG (for frontends without
        widgets and for saved notebooks)."""
        losses = [loss for _, loss in self._losses.rows() if loss is not None] or [
            x for x in self.losses if x is not None
        ]
        summary = f"{self._losses.count or self.num_steps} steps"
        if losses:
            lowest = self._loss_extent.low if self._loss_extent else min(losses)
            summary += f", last loss {losses[-1]:.6g}, lowest {lowest:.6g}"
        marks = "".join(
            f"<li>step {int(mark['step'])}: {escape(mark['message'])}</li>"
            for mark in self.nonfinite
        )
        return (
            f"<div class='ppl-svi'><b>{escape(self.title or 'SVI')}</b>: {escape(summary)}"
            f"{self._static_chart()}{'<ul>' + marks + '</ul>' if marks else ''}"
            f"{static_panels(self.posterior)}</div>"
        )

    def _static_chart(self) -> str:
        """The loss curve with its axes, on the scale the live chart would show."""
        axes = self._axes()
        if "loss" not in axes:
            return ""
        log = self.log_scale and axes["loss_log"] is not None
        points = [(step, loss) for step, loss in self._losses.rows() if loss is not None]
        return svg_chart(
            [step for step, _ in points],
            [loss for _, loss in points],
            axes["steps"],
            axes["loss_log"] if log else axes["loss"],
            width=400,
            height=120,
            label="loss",
        )


def _param_traces(rows: list[ParamRow]) -> dict[str, dict[str, list[float]]]:
    """``{name: {element: values}}`` from the parameter readings (a parameter first seen late
    has values for the last readings only)."""
    traces: dict[str, dict[str, list[float]]] = {}
    for _, summary in rows:
        for name, elements in summary.items():
            for element, number in elements.items():
                traces.setdefault(name, {}).setdefault(element, []).append(number)
    return traces


def _store_params() -> dict[str, torch.Tensor]:
    return dict(get_param_store().items())
