"""The SVI monitor's posterior panel: each latent site's marginal under the guide, with the prior
behind it, redrawn while the run trains, and its static SVG.

:class:`PosteriorPanel` decides when to recompute (:mod:`widgets.posterior_marginals` does the
drawing of samples and curves) and shapes what goes to the browser: one JSON-safe payload
``{"step", "panels", "not_shown", "error", "seconds"}`` whose panels carry their axes
(:mod:`widgets.axes`), as the monitor's other charts do.

When, and why so: a recomputation costs a guide run and a few small matrix products (about
ten milliseconds for a small model), so it is never done per step. A live refresh comes at most
every ``interval_s`` seconds *and* only once the run has trained for ``cost / budget`` seconds
since the last one (``cost``: what the last one took), so however slow the guide, the live
refreshes take at most ``budget`` of the run's wall time. The state written at the end of a
stretch of steps (what a saved notebook shows, and the static fallback) is computed at once while
the ends of stretches have not spent more than ``burst_s`` seconds of drawing beyond ``budget`` of
the time since the run started (a token bucket: a few stretches in a row, as a notebook's cells
run them, each get their final state); in a loop of one-step stretches the bucket runs dry, and
then :meth:`PosteriorPanel.wait` says how long until the next is allowed, and the monitor writes
it then. The prior's draws, made once per run, are not counted in ``cost``.

A panel that fails (a guide that cannot be run on its own) says why in ``error`` and is not
retried until the run is reset: the run itself goes on. A model without latent sites (a fit of
params only) has no panel: its payload has no panels and no error.

>>> import engine, engine.distributions as dist
>>> from widgets.posterior_marginals import MarginalSampler
>>> def model():
...     engine.sample("rate", dist.Gamma(2.0, 2.0))
>>> def guide():
...     engine.sample("rate", dist.LogNormal(0.0, 0.3))
>>> panel = PosteriorPanel(lambda: MarginalSampler(model, guide))
>>> payload = panel.compute(step=10)
>>> [p["name"] for p in payload["panels"]], payload["error"]
(['rate'], None)
>>> "data-site='rate'" in static_panels(payload)
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from widgets.axes import linear_axis, svg_plot
from widgets.html import escape
from widgets.posterior_marginals import MarginalSampler

PRIOR_FILL, GUIDE_COLOUR = "#d0d0d0", "steelblue"


class PosteriorPanel:
    """When to recompute the posterior panel, and its payloads (see the module docstring).

    ``make_sampler`` builds the :class:`~widgets.posterior_marginals.MarginalSampler` on first
    use (so a monitor that never steps draws nothing).
    """

    def __init__(
        self,
        make_sampler: Callable[[], MarginalSampler],
        interval_s: float = 1.0,
        budget: float = 0.02,
        burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not 0 < budget < 1:
            raise ValueError(f"the posterior panel's budget is a fraction of the run, got {budget}")
        self._make_sampler = make_sampler
        self._sampler: MarginalSampler | None = None
        self.interval_s, self.budget, self.burst_s = interval_s, budget, burst_s
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget the last payload and its timing (the run went back to its start)."""
        self.cost = 0.0
        self.last_step: int | None = None
        self.payload: dict[str, Any] = {}  # the last one computed
        self.failed = False
        self._last_end = self._clock()  # the first live refresh comes an interval in
        self._allowance, self._allowance_at = self.burst_s, self._clock()

    def due(self) -> bool:
        """Whether a live refresh may come now (the interval and the budget both allow it)."""
        since = self._clock() - self._last_end
        return not self.failed and since >= max(self.interval_s, self.cost / self.budget)

    def _final_allowance(self) -> float:
        """Seconds of end-of-stretch drawing allowed now: ``burst_s`` at the start, spent by
        each end-of-stretch state, earned back at ``budget`` seconds per second."""
        earned = (self._clock() - self._allowance_at) * self.budget
        return min(self.burst_s, self._allowance + earned)

    def wait(self) -> float:
        """Seconds until the budget allows the end-of-stretch state to be recomputed (0.0:
        now)."""
        return max(0.0, (self.cost - self._final_allowance()) / self.budget)

    def compute(self, step: int, final: bool = False) -> dict[str, Any]:
        """Draw the marginals now (``final``: the end-of-stretch state); a payload (with
        ``error`` set, never raised, if it fails)."""
        payload: dict[str, Any] = {"step": step, "panels": [], "not_shown": [], "error": None}
        start = self._clock()
        try:
            if self._sampler is None:
                self._sampler = self._make_sampler()
            if self._sampler.latent_sites():
                self._sampler.prior_draws()  # once per run: not part of a refresh's cost
                start = self._clock()
                marginals = self._sampler.marginals()
                payload["panels"] = [_with_axes(m.to_json()) for m in marginals.marginals]
                payload["not_shown"] = marginals.not_shown
            else:
                self.failed = True  # nothing to show, ever: stop asking
        except (Exception, KeyboardInterrupt) as error:  # the panel says why; the run goes on
            if isinstance(error, KeyboardInterrupt) and _in_main_thread():
                raise  # the user's interrupt: it stops the cell
            # (Off the main thread no signal arrives: a KeyboardInterrupt there is raised by the
            # model's own code, and must not escape the monitor's background Run.)
            self.failed = True
            payload["error"] = f"{type(error).__name__}: {error}"
        self._last_end = self._clock()
        self.cost = self._last_end - start
        if final:
            self._allowance = self._final_allowance() - self.cost
            self._allowance_at = self._last_end
        self.last_step = step
        payload["seconds"] = round(self.cost, 4)
        self.payload = payload
        return payload


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _with_axes(panel: dict[str, Any]) -> dict[str, Any]:
    """The panel with its x and y axes: the bars' edges or the grid, and 0 to the highest
    curve (a point mass alone: 0 to 1, its line drawn full height)."""
    xs = panel["x"]
    low, high = xs[0], xs[-1]
    if panel["kind"] == "discrete":  # a bar spans [start - 1/2, start + width - 1/2]
        low, high = low - 0.5, high + panel["width"] - 0.5
    if panel["point"] is not None:
        low, high = min(low, panel["point"]), max(high, panel["point"])
    top = max([*panel["prior"], *(panel["guide"] or [])], default=0.0)
    return {
        **panel,
        "x_axis": linear_axis(low, high, 4),
        "y_axis": linear_axis(0.0, top if top > 0 else 1.0, 3),
    }


def static_panels(payload: dict[str, Any], width: int = 200, height: int = 110) -> str:
    """The payload as HTML: a titled inline SVG per panel (names escaped), the sites left out,
    and the error, if any."""
    if payload.get("error"):
        return f"<p class='ppl-posterior-error'>posterior view: {escape(payload['error'])}</p>"
    figures = "".join(
        f"<figure data-site='{escape(panel['name'])}' data-kind='{escape(panel['kind'])}' "
        f"style='display:inline-block;margin:0 4px'><figcaption>{escape(panel['name'])}"
        f"</figcaption>"
        + svg_plot(panel["x_axis"], panel["y_axis"], _marks(panel), width, height, panel["name"])
        + (f"<br><small>{escape(panel['note'])}</small>" if panel["note"] else "")
        + "</figure>"
        for panel in payload.get("panels", [])
    )
    if not figures:
        return ""
    more = payload.get("not_shown") or []
    left_out = f"<p>not shown: {escape('; '.join(more))}</p>" if more else ""
    return (
        f"<div class='ppl-posterior' data-step='{int(payload['step'])}'>"
        f"<div>posterior (guide, line) and prior (shaded) at step {int(payload['step'])}</div>"
        f"{figures}{left_out}</div>"
    )


def _marks(panel: dict[str, Any]) -> Callable[[Callable, Callable], str]:
    """The SVG elements of one panel, as widgets/svi_monitor.js draws them."""

    def marks(px: Callable[[float], float], py: Callable[[float], float]) -> str:
        xs, prior, guide = panel["x"], panel["prior"], panel["guide"]
        parts = []
        if panel["kind"] == "discrete":
            w = panel["width"]
            for x, p in zip(xs, prior, strict=True):
                parts.append(_rect(px(x - 0.5), px(x + w - 0.5), py(p), py(0.0), PRIOR_FILL))
            for x, g in zip(xs, guide or [], strict=False):
                left, right = px(x - 0.5 + w / 4), px(x + w - 0.5 - w / 4)
                parts.append(_rect(left, right, py(g), py(0.0), GUIDE_COLOUR, "guide"))
        else:
            outline = " ".join(f"{px(x):.1f},{py(p):.1f}" for x, p in zip(xs, prior, strict=True))
            base = f"{px(xs[-1]):.1f},{py(0.0):.1f} {px(xs[0]):.1f},{py(0.0):.1f}"
            parts.append(
                f"<polygon data-curve='prior' fill='{PRIOR_FILL}' stroke='none' "
                f"points='{outline} {base}'/>"
            )
            if guide is not None:
                line = " ".join(f"{px(x):.1f},{py(g):.1f}" for x, g in zip(xs, guide, strict=True))
                parts.append(
                    f"<polyline data-curve='guide' fill='none' stroke='{GUIDE_COLOUR}' "
                    f"stroke-width='1.5' points='{line}'/>"
                )
        if panel["point"] is not None:
            x = px(panel["point"])
            parts.append(
                f"<line data-curve='guide-point' x1='{x:.1f}' x2='{x:.1f}' y1='{py(0.0):.1f}' "
                f"y2='{py(panel['y_axis']['ticks'][-1]):.1f}' stroke='{GUIDE_COLOUR}' "
                f"stroke-width='1.5'/>"
            )
        return "".join(parts)

    return marks


def _rect(left: float, right: float, top: float, bottom: float, fill: str, curve: str = "prior"):
    return (
        f"<rect data-curve='{curve}' x='{left:.1f}' y='{top:.1f}' width='{right - left:.1f}' "
        f"height='{bottom - top:.1f}' fill='{fill}'/>"
    )
