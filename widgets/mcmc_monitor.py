"""The MCMC monitor: a row per chain (progress, draws per second, step size, tree depth,
divergences, state), live log-density and trace plots, running R-hat and ESS, each latent
site's marginal density per chain and its rank plot, and a Stop button.

It listens to an :class:`~engine.infer.MCMC`'s progress events; per-iteration numbers go to the
browser in batches (at most ``max_rate`` a second), the traits hold the last state (what a saved
notebook shows). However long the run, the plots' histories hold at most ``max_points``
iterations (:mod:`widgets.history`: evenly spaced, the first and the latest kept), so the
kernel's memory and the saved notebook stay the same size. R-hat (max) and bulk ESS (min) over
the unconstrained coordinates are recomputed from the draws so far about once a second. Stop
asks the run to end after its current iteration; it reaches a run in a background thread
(``%mcmc`` runs it so). The plots' axes (ticks and labels, :mod:`widgets.axes`) travel with the
data, in the ``axes`` trait and in an update whenever they change; the x axis counts iterations,
warm-up included.

The marginals (:mod:`engine.infer.mcmc.marginals`, what ``mcmc.plot()`` draws too) cover the
first elements of each latent site. Once sampling starts, every ``marginals_every_s`` (1 s, as
R-hat and ESS) the draws made since the last time are mapped to the sites' values in one batched
run of the model, and the densities and rank counts of all draws so far are recomputed and sent
with their axes; the ``marginals`` trait holds the final ones.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import MCMC, NUTS
>>> def model():
...     engine.sample("x", dist.Normal(0.0, 1.0))
>>> mcmc = MCMC(NUTS(model), num_samples=30, warmup_steps=20, num_chains=2)
>>> monitor = McmcMonitor(mcmc, title="demo")
>>> mcmc.run()
>>> monitor.status, len(monitor.chains), monitor.chains[0]["draws"]
('done', 2, 30)
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from typing import Any

import anywidget
import torch
import traitlets

from engine.infer import MCMC
from engine.infer.mcmc.diagnostics import ess_bulk, split_rhat
from engine.infer.mcmc.marginals import default_bins, density_curves, rank_counts, stack_elements
from engine.infer.progress import ProgressEvent
from widgets.axes import Extent, linear_axis, svg_lines
from widgets.esm import monitor_esm
from widgets.history import Thinned
from widgets.html import HtmlFallback, escape, table
from widgets.throttle import Throttle

_MAX_TRACED_SITES = 4
_DIAGNOSTICS_EVERY_S = 1.0
# Marginals: at most this many elements per site and in all, points per density curve.
_MARGINAL_ELEMENTS_PER_SITE, _MARGINAL_ELEMENTS = 2, 8
_DENSITY_POINTS = 48
# The first marginals wait for this many draws per chain (fewer make no useful density).
_MIN_MARGINAL_DRAWS = 16
# Draws mapped to site values in one run of the model, at most (bounds the memory of a run).
_MAP_BATCH = 1024
# Chart colours per chain, as in widgets/mcmc_monitor.js.
_COLORS = ("steelblue", "darkorange", "seagreen", "crimson", "purple", "goldenrod", "teal", "gray")
_ENDED = ("done", "stopped", "failed")

# One iteration's log densities, per chain: (iteration, [lp or None]); one trace reading at
# an update: (iteration, {site: [value or None per chain]}).
LpRow = tuple[int, list[float | None]]
TraceRow = tuple[int, dict[str, list[float | None]]]


class McmcMonitor(HtmlFallback, anywidget.AnyWidget):
    """Live view of one MCMC run (see the module docstring); ``max_points`` bounds the
    iterations each plot keeps."""

    _esm = monitor_esm("mcmc_monitor.js")
    title = traitlets.Unicode("").tag(sync=True)
    chains = traitlets.List().tag(sync=True)  # one dict per chain
    lp = traitlets.List().tag(sync=True)  # per chain: log density at each kept iteration
    lp_iterations = traitlets.List(traitlets.Int()).tag(sync=True)  # the kept iterations
    traces = traitlets.Dict().tag(sync=True)  # site -> per chain: values at each update
    trace_iterations = traitlets.List(traitlets.Int()).tag(sync=True)  # of each trace value
    # {"iteration": x axis, "lp": y axis, "traces": {site: y axis}}
    axes = traitlets.Dict().tag(sync=True)
    # {"elements": [{"site", "label", "grid", "density": per chain, "ranks": per chain,
    #   "axes": {"x", "y", "rank_x", "rank_y"}}], "bins", "draws"}: each latent element's
    # marginal density per chain and rank counts, over the draws so far.
    marginals = traitlets.Dict().tag(sync=True)
    rhat = traitlets.Float(None, allow_none=True).tag(sync=True)
    ess = traitlets.Float(None, allow_none=True).tag(sync=True)
    status = traitlets.Unicode("waiting").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        mcmc: MCMC,
        *,
        title: str = "",
        max_rate: float = 20.0,
        max_points: int = 1000,
        marginals_every_s: float = 1.0,
    ):
        lp_rows: Thinned[LpRow] = Thinned(max_points, label="max_points")
        super().__init__(title=title)
        self.mcmc = mcmc
        self._lp_rows = lp_rows
        self._trace_rows: Thinned[TraceRow] = Thinned(max_points, label="max_points")
        self._lp_extent = Extent()
        self._trace_extents: dict[str, Extent] = {}
        self._sent_axes: dict[str, Any] = {}
        self._rows: list[dict[str, Any]] = []
        self._last_diagnostics = -math.inf
        self.marginals_every_s = marginals_every_s
        self._last_marginals = -math.inf
        # The shown elements' values at the draws mapped so far, (chains, draws, K) pieces.
        self._marginal_labels: list[tuple[str, str]] = []
        self._marginal_values: list[Any] = []
        self._mapped = 0
        self._throttle = Throttle(self._send_batch, interval_s=1.0 / max_rate)
        self.display_handle: Any = None  # set by whoever displays it: updated at the end
        # Stop (the kernel's thread) and the run's end (the sampling thread) both set the
        # status: under this lock, a Stop arriving as the run ends cannot leave "stopping".
        self._status_lock = threading.Lock()
        self._unsubscribe = mcmc.progress.subscribe(self._on_event)
        self.on_msg(self._on_command)

    # -- listening ---------------------------------------------------------------------------

    def _on_event(self, event: ProgressEvent) -> None:
        if event.info.get("phase") in _ENDED:
            self._finish(event.info["phase"], event.info.get("error", ""))
            return
        self._throttle.add(event)

    def _send_batch(self, events: list[ProgressEvent]) -> None:
        new_lp, trace_point = self._record(events)
        message = {
            "type": "update",
            "chains": self._rows,
            "lp": new_lp,
            "lp_iterations": [event.step for event in events],
            "trace": trace_point,
            "trace_iteration": events[-1].step,
            **self._diagnostics(),
        }
        marginals = self._marginals()
        if marginals:
            message["marginals"] = marginals
        axes = self._axes()
        if axes != self._sent_axes:  # ticks change seldom: send them only then
            message["axes"] = self._sent_axes = axes
        self.send(message)

    def _record(
        self, events: list[ProgressEvent]
    ) -> tuple[list[list[float | None]], dict[str, list[float | None]]]:
        """Put a batch of iterations into the history and the chains' rows; the chains' point
        is read once, at its end. Returns the batch's log densities (per chain) and that
        point."""
        info = events[-1].info
        per_chain = info["chains"]
        chains = info["num_chains"]
        lps = [[_finite_or_none(value) for value in event.info["chains"]["lp"]] for event in events]
        for event, lp in zip(events, lps, strict=True):
            self._lp_rows.append((event.step, lp))
            self._lp_extent.add(lp)
        new_lp = [list(chain) for chain in zip(*lps, strict=True)]
        elapsed = max(info["elapsed_s"], 1e-9)
        iteration = events[-1].step
        self._rows = [
            {
                "chain": c,
                "iteration": iteration,
                "total": info["num_warmup"] + info["num_samples"],
                "phase": info["phase"],
                "draws_per_s": iteration / elapsed,
                "step_size": per_chain["step_size"][c],
                "tree_depth": per_chain.get("tree_depth", [None] * chains)[c],
                "divergences": per_chain["divergences"][c],
                "accept_prob": per_chain["accept_prob"][c],
                "draws": max(iteration - info["num_warmup"], 0),
                "state": "diverging" if per_chain["divergences"][c] else info["phase"],
            }
            for c in range(chains)
        ]
        trace_point = self._trace_point()
        self._trace_rows.append((iteration, trace_point))
        return new_lp, trace_point

    def _trace_point(self) -> dict[str, list[float | None]]:
        """The first element of (up to four) sites, per chain, at the chains' current point."""
        kernel = self.mcmc.kernel
        values = kernel.site_values(kernel.z)
        point = {}
        for name, value in list(values.items())[:_MAX_TRACED_SITES]:
            first = [_finite_or_none(x) for x in value.reshape(value.shape[0], -1)[:, 0].tolist()]
            point[name] = first
            self._trace_extents.setdefault(name, Extent()).add(first)
        return point

    def _axes(self) -> dict[str, Any]:
        """The plots' axes so far: the iterations (a monitor watches one run from its start),
        which the traces, sampled at each update, share."""
        rows = self._lp_rows.rows()
        if not rows:
            return {}
        axes: dict[str, Any] = {
            "iteration": linear_axis(rows[0][0], rows[-1][0], 6, integer=True),
            "traces": {
                name: linear_axis(extent.low, extent.high, 4)
                for name, extent in self._trace_extents.items()
                if extent
            },
        }
        if self._lp_extent:
            axes["lp"] = linear_axis(self._lp_extent.low, self._lp_extent.high, 4)
        return axes

    def _diagnostics(self) -> dict[str, float]:
        now = time.monotonic()
        draws = self.mcmc.draws_so_far()
        if now - self._last_diagnostics < _DIAGNOSTICS_EVERY_S or draws is None:
            return {}
        if draws.shape[1] < 8:
            return {}
        self._last_diagnostics = now
        rhat = _finite_or_none(float(split_rhat(draws).max()))
        ess = _finite_or_none(float(ess_bulk(draws).min()))
        return {"rhat": rhat, "ess": ess}

    def _marginals(self, final: bool = False) -> dict[str, Any]:
        """Each shown element's densities and rank counts over the draws so far: ``{}`` until
        ``marginals_every_s`` has passed since the last ones (unless ``final``) or while there
        are too few draws."""
        now = time.monotonic()
        if not final and now - self._last_marginals < self.marginals_every_s:
            return {}
        draws = self.mcmc.draws_so_far()
        if draws is None or draws.shape[1] < (2 if final else _MIN_MARGINAL_DRAWS):
            return {}
        self._last_marginals = now
        self._map_new_draws(draws)
        values = self._marginal_values[0]
        chains, n = values.shape[:2]
        grid, density = density_curves(values, points=_DENSITY_POINTS)
        bins = default_bins(n)
        ranks = rank_counts(values, bins)
        rank_x = linear_axis(0, chains * n, 4, integer=True)
        rank_y = linear_axis(0, max(1, int(ranks.max())), 3, integer=True)
        elements = []
        for k, (site, label) in enumerate(self._marginal_labels):
            curves = [[_finite_or_none(v) for v in chain] for chain in density[:, k].tolist()]
            top = max((v for chain in curves for v in chain if v is not None), default=1.0)
            x = [float(v) for v in grid[k].tolist()]
            elements.append(
                {
                    "site": site,
                    "label": label,
                    "grid": x,
                    "density": curves,
                    "ranks": ranks[:, k].tolist(),
                    "axes": {
                        "x": linear_axis(x[0], x[-1], 4),
                        "y": linear_axis(0.0, top, 3),
                        "rank_x": rank_x,
                        "rank_y": rank_y,
                    },
                }
            )
        return {"elements": elements, "bins": bins, "draws": n}

    def _map_new_draws(self, draws: torch.Tensor) -> None:
        """The shown elements' values at the draws made since the last call, in one batched run
        of the model (the unconstrained draws are all the sampler keeps)."""
        chains, kept = draws.shape[:2]
        if kept < self._mapped:  # the MCMC was run again: its draws start afresh
            self._mapped, self._marginal_values = 0, []
        if kept == self._mapped:
            return
        count = kept - self._mapped
        new = draws[:, self._mapped : kept].reshape(chains * count, -1).clone()
        kernel = self.mcmc.kernel
        names = [slot.name for slot in kernel.potential.slots]
        pieces = [
            kernel.site_values(new[start : start + _MAP_BATCH])
            for start in range(0, len(new), _MAP_BATCH)
        ]
        latent = {
            name: torch.cat([piece[name] for piece in pieces]).reshape(
                chains, count, *pieces[0][name].shape[1:]
            )
            for name in names
        }
        labels, stacked = stack_elements(latent, _MARGINAL_ELEMENTS_PER_SITE, _MARGINAL_ELEMENTS)
        self._marginal_labels = labels
        self._marginal_values = [torch.cat([*self._marginal_values, stacked], dim=1)]
        self._mapped = kept

    def _finish(self, phase: str, error: str = "") -> None:
        """The final state into the traits: one message, the iterations not sent yet
        included."""
        pending = self._throttle.take_pending()
        if pending:
            self._record(pending)
        draws = self.mcmc.draws_so_far()
        self._last_diagnostics = -math.inf
        final = self._diagnostics()
        marginals = self._marginals(final=True)
        with self.hold_sync():
            if marginals:
                self.marginals = marginals
            self.rhat, self.ess = final.get("rhat"), final.get("ess")
            for row in self._rows:
                row["state"] = phase if not row["divergences"] else f"{phase}, diverging"
                row["draws"] = row["draws"] if draws is None else draws.shape[1]
            self.chains = [dict(row) for row in self._rows]
            lp_rows, trace_rows = self._lp_rows.rows(), self._trace_rows.rows()
            self.lp = [list(chain) for chain in zip(*(lp for _, lp in lp_rows), strict=True)]
            self.lp_iterations = [iteration for iteration, _ in lp_rows]
            self.traces = _per_site(trace_rows)
            self.trace_iterations = [iteration for iteration, _ in trace_rows]
            self.axes = self._sent_axes = self._axes()
            with self._status_lock:
                self.status = phase
            self.error = error
        self._throttle.mark_sent()
        if self.display_handle is not None:  # the static fallback shows the final state
            self.display_handle.update(self)

    # -- commands ----------------------------------------------------------------------------

    def _on_command(self, widget: Any, content: dict, buffers: Any) -> None:
        if content.get("type") == "command" and content.get("command") == "stop":
            self.mcmc.request_stop()
            with self._status_lock:
                if self.mcmc.running and self.status not in _ENDED:
                    self.status = "stopping"

    def close(self) -> None:
        if hasattr(self, "_unsubscribe"):  # not when __init__ refused its arguments
            self._unsubscribe()
        super().close()

    # -- static view -------------------------------------------------------------------------

    def to_html(self) -> str:
        header = [
            "chain",
            "iteration",
            "phase",
            "draws/s",
            "step size",
            "tree depth",
            "divergences",
        ]
        rows = [
            [
                row["chain"],
                f"{row['iteration']}/{row['total']}",
                row["state"],
                f"{row['draws_per_s']:.1f}",
                f"{row['step_size']:.3g}",
                "" if row["tree_depth"] is None else row["tree_depth"],
                row["divergences"],
            ]
            for row in self.chains or self._rows
        ]
        summary = ""
        if self.rhat is not None and self.ess is not None:
            summary = f" R-hat (max) {self.rhat:.3f}, bulk ESS (min) {self.ess:.0f}"
        if self.error:
            summary += f" ({self.error})"
        return (
            f"<div class='ppl-mcmc'><b>{escape(self.title or 'MCMC')}</b>: "
            f"{escape(self.status)}{escape(summary)}{table(header, rows)}"
            f"{_marginals_html(self.marginals)}</div>"
        )


def _marginals_html(marginals: dict[str, Any]) -> str:
    """The static marginals: per element, its label, the density per chain and the rank plot
    (a step line per chain), as SVG with escaped names."""
    parts = []
    bins, draws = marginals.get("bins", 1), marginals.get("draws", 0)
    for element in marginals.get("elements", []):
        axes, label = element["axes"], element["label"]
        curves = [
            (element["grid"], chain, _COLORS[c % len(_COLORS)])
            for c, chain in enumerate(element["density"])
        ]
        total = len(element["density"]) * draws  # ranks run over every chain's draws
        edges = [b * total / bins for b in range(bins + 1)]
        steps = [
            (_stairs_x(edges), _stairs_y(counts), _COLORS[c % len(_COLORS)])
            for c, counts in enumerate(element["ranks"])
        ]
        parts.append(
            f"<div class='ppl-marginal' data-site='{escape(element['site'])}'>"
            f"<div>{escape(label)}</div>"
            + svg_lines(curves, axes["x"], axes["y"], 240, 100, f"{label} density per chain")
            + svg_lines(steps, axes["rank_x"], axes["rank_y"], 240, 100, f"{label} rank plot")
            + "</div>"
        )
    return "".join(parts)


def _stairs_x(edges: list[float]) -> list[float]:
    """x of a step line over bins with these edges: each bin's left and right edge."""
    return [edge for left, right in itertools.pairwise(edges) for edge in (left, right)]


def _stairs_y(counts: list[int]) -> list[float]:
    """y of that step line: each bin's count twice."""
    return [float(count) for count in counts for _ in range(2)]


def _per_site(rows: list[TraceRow]) -> dict[str, list[list[float | None]]]:
    """``{site: [values per chain]}`` from the trace readings."""
    traces: dict[str, list[list[float | None]]] = {}
    for _, point in rows:
        for name, per_chain in point.items():
            chains = traces.setdefault(name, [[] for _ in per_chain])
            for values, number in zip(chains, per_chain, strict=True):
                values.append(number)
    return traces


def _finite_or_none(value: float) -> float | None:
    """Numbers for JSON: NaN and infinities become None (JSON has no such numbers)."""
    return value if math.isfinite(value) else None
