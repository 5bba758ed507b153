"""The picture of a predictive check: replicated data drawn against the observed data, with a
short text summary (posterior, or prior, predictive p-values of the mean and sd).

One panel per data site, in one of four layouts:

- ``"intervals"``: against a covariate (see :func:`widgets.predictive_draws.choose_covariate`):
  the replicas' 50 % and 90 % intervals at each covariate value, the data as dots;
- ``"bars"``: a site with integer support: the data's counts per value as bars, the replicas'
  median count and 90 % interval per value as whiskers;
- ``"density"``: continuous data with several values per draw: one thin density line per
  replica (at most ``max_lines``), the data's density as a thick line;
- ``"histogram"``: a site with one value per draw: the replicas' histogram, the datum as a line.

The figure is drawn by matplotlib (imported here only, when a figure is made) and shown as a
PNG, so it survives saving the notebook.

>>> import torch
>>> from widgets.predictive_draws import PredictiveDraws
>>> draws = PredictiveDraws("prior", {"y": torch.tensor([0.0, 1.0])},
...                         {"y": torch.tensor([[0.0, 1.0], [2.0, 3.0]])}, {"y": False})
>>> check = PredictiveCheck(draws, title="model")
>>> check.layout, check.statistics["y"]["mean"]["p"]
({'y': 'density'}, 1.0)
"""

from __future__ import annotations

import base64
import io
from typing import Any

import torch

from engine.infer.kde import gaussian_kde
from widgets.html import escape
from widgets.posterior_marginals import bandwidth
from widgets.predictive_draws import PredictiveDraws

_INTERVALS = ((0.05, 0.95), (0.25, 0.75))  # the 90 % and 50 % central intervals


def p_value(replicated: torch.Tensor, observed: float) -> float:
    """The predictive p-value ``P(T(y_rep) >= T(y))``: the share of replicas whose statistic is
    at least the data's. Values near 0 or 1 say the model misses that feature of the data.

    >>> p_value(torch.tensor([1.0, 2.0, 3.0, 4.0]), 3.0)
    0.5
    """
    return (replicated >= observed).double().mean().item()


def _statistics(values: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean and sd of each replica (rows of ``values``, flattened)."""
    flat = values.reshape(values.shape[0], -1).double()
    sd = flat.std(dim=1) if flat.shape[1] > 1 else torch.zeros(flat.shape[0], dtype=flat.dtype)
    return {"mean": flat.mean(dim=1), "sd": sd}


class PredictiveCheck:
    """Replicated data against the observed data, as a figure and a text summary.

    ``statistics[site][stat]`` holds, for ``stat`` in ``mean`` and ``sd``: ``observed`` (None
    without data), the replicas' ``median``, ``low`` and ``high`` (90 % interval) and ``p``
    (the predictive p-value; None without data).
    """

    def __init__(self, draws: PredictiveDraws, title: str = "", max_lines: int = 50):
        self.draws = draws
        self.title = title
        self.max_lines = max_lines
        self.layout = {name: self._layout_of(name) for name in draws.replicated}
        self.statistics = {name: self._site_statistics(name) for name in draws.replicated}
        self._png: bytes | None = None

    def _layout_of(self, name: str) -> str:
        replicas = self.draws.replicated[name]
        covariate = self.draws.covariate
        if covariate is not None and replicas.dim() == 2 and replicas.shape[1] == len(covariate[1]):
            return "intervals"
        if self.draws.discrete[name]:
            return "bars"
        return "density" if replicas[0].numel() > 1 else "histogram"

    def _site_statistics(self, name: str) -> dict[str, dict[str, float | None]]:
        replicated = _statistics(self.draws.replicated[name])
        data = self.draws.observed[name]
        observed = None if data is None else _statistics(data.unsqueeze(0))
        table = {}
        for stat, values in replicated.items():
            low, median, high = torch.quantile(values, torch.tensor([0.05, 0.5, 0.95]).double())
            seen = None if observed is None else observed[stat].item()
            table[stat] = {
                "observed": seen,
                "median": median.item(),
                "low": low.item(),
                "high": high.item(),
                "p": None if seen is None else p_value(values, seen),
            }
        return table

    # -- text ---------------------------------------------------------------------------------

    def summary(self) -> str:
        """A few lines: what was drawn from what, and per site the mean and sd of the data
        against the replicas' (90 % interval, p-value)."""
        kind = "prior" if self.draws.prior else "posterior"
        source = "" if self.draws.prior else f" from {self.draws.source}"
        lines = [
            f"{kind} predictive check of {self.title or 'the model'}{source}: "
            f"{self.draws.num_samples} replicas"
        ]
        for name, table in self.statistics.items():
            layout = self.layout[name]
            shown = f" against {self.draws.covariate[0]}" if layout == "intervals" else ""
            lines.append(f"  {name} ({self.layout[name]}{shown}):")
            for stat, row in table.items():
                interval = (
                    f"replicas {row['median']:.3g} [90%: {row['low']:.3g}, {row['high']:.3g}]"
                )
                if row["observed"] is None:
                    lines.append(f"    {stat}: {interval}; no observed data")
                    continue
                flag = "  <- the model misses this" if min(row["p"], 1 - row["p"]) < 0.025 else ""
                lines.append(
                    f"    {stat}: observed {row['observed']:.3g}, {interval}, "
                    f"p = {row['p']:.2f}{flag}"
                )
        rows = [row for table in self.statistics.values() for row in table.values()]
        if any(row["p"] is not None for row in rows):
            lines.append("  (p = share of replicas whose statistic is at least the data's)")
        return "\n".join(lines)

    # -- the figure ---------------------------------------------------------------------------

    def figure(self) -> Any:
        """A new matplotlib figure of the check (one panel per data site)."""
        from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI

        names = list(self.draws.replicated)
        figure = Figure(figsize=(6.4, 3.2 * len(names)), layout="constrained")
        axes = figure.subplots(len(names), 1, squeeze=False)[:, 0]
        kind = "prior" if self.draws.prior else "posterior"
        for ax, name in zip(axes, names, strict=True):
            draw = getattr(self, f"_draw_{self.layout[name]}")
            draw(ax, name)
            ax.set_title(f"{kind} predictive: {name}", fontsize=10)
            ax.legend(fontsize=8, frameon=False)
        if self.title:
            figure.suptitle(self.title, fontsize=11)
        return figure

    def _lines(self, name: str) -> torch.Tensor:
        replicas = self.draws.replicated[name]
        return replicas[: self.max_lines].reshape(min(len(replicas), self.max_lines), -1).double()

    def _draw_density(self, ax: Any, name: str) -> None:
        replicas = self._lines(name)
        data = self.draws.observed[name]
        everything = replicas if data is None else torch.cat([replicas.flatten(), data.flatten()])
        low, high = everything.min().item(), everything.max().item()
        pad = 0.1 * (high - low) or 1.0
        grid = torch.linspace(low - pad, high + pad, 200, dtype=torch.float64)
        for i, row in enumerate(replicas):
            label = "replicated" if i == 0 else None
            ax.plot(grid, _density(row, grid), color="tab:blue", alpha=0.3, lw=0.7, label=label)
        if data is not None:
            ax.plot(
                grid,
                _density(data.flatten().double(), grid),
                color="black",
                lw=2.5,
                label="observed",
            )
        ax.set_xlabel(name)
        ax.set_ylabel("density")

    def _draw_histogram(self, ax: Any, name: str) -> None:
        replicas = self.draws.replicated[name].flatten().double()
        ax.hist(replicas.numpy(), bins=30, color="tab:blue", alpha=0.5, label="replicated")
        data = self.draws.observed[name]
        if data is not None:
            ax.axvline(data.double().item(), color="black", lw=2.5, label="observed")
        ax.set_xlabel(name)
        ax.set_ylabel("replicas")

    def _draw_bars(self, ax: Any, name: str) -> None:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts of whole values
        replicas = self.draws.replicated[name].reshape(self.draws.num_samples, -1).long()
        data = self.draws.observed[name]
        pooled = (
            replicas.flatten()
            if data is None
            else torch.cat([replicas.flatten(), data.flatten().long()])
        )
        values = torch.arange(pooled.min().item(), pooled.max().item() + 1)
        # counts[i, k]: how often replica i takes values[k]
        counts = (replicas.unsqueeze(-1) == values).sum(dim=1).double()
        low, median, high = torch.quantile(counts, torch.tensor([0.05, 0.5, 0.95]).double(), dim=0)
        if data is not None:
            seen = (data.flatten().long().unsqueeze(-1) == values).sum(dim=0)
            ax.bar(values.numpy(), seen.numpy(), color="0.75", edgecolor="black", label="observed")
        ax.errorbar(
            values.numpy(),
            median.numpy(),
            yerr=[(median - low).numpy(), (high - median).numpy()],
            fmt="o",
            color="tab:blue",
            capsize=3,
            label="replicated (median, 90%)",
        )
        ax.set_xlabel(name)
        ax.set_ylabel("count")

    def _draw_intervals(self, ax: Any, name: str) -> None:
        x_name, x = self.draws.covariate
        x = x.double().cpu()
        replicas = self.draws.replicated[name].double()
        levels = torch.tensor([q for pair in _INTERVALS for q in pair]).double()
        q = torch.quantile(replicas, levels, dim=0)
        ax.vlines(
            x.numpy(),
            q[0].numpy(),
            q[1].numpy(),
            color="tab:blue",
            alpha=0.35,
            lw=1.5,
            label="replicated 90%",
        )
        ax.vlines(
            x.numpy(), q[2].numpy(), q[3].numpy(), color="tab:blue", lw=3.5, label="replicated 50%"
        )
        data = self.draws.observed[name]
        if data is not None:
            ax.scatter(
                x.numpy(),
                data.double().cpu().numpy(),
                color="black",
                s=14,
                zorder=3,
                label="observed",
            )
        ax.set_xlabel(x_name)
        ax.set_ylabel(name)

    # -- display ------------------------------------------------------------------------------

    def png(self) -> bytes:
        """The figure as PNG bytes (drawn once, then kept)."""
        if self._png is None:
            buffer = io.BytesIO()
            self.figure().savefig(buffer, format="png", dpi=90)
            self._png = buffer.getvalue()
        return self._png

    def to_html(self) -> str:
        """The PNG inline and the summary below it (escaped), for HTML frontends."""
        encoded = base64.b64encode(self.png()).decode("ascii")
        return (
            f'<figure class="ppl-predictive-check"><img alt="{escape(self.title)}" '
            f'src="data:image/png;base64,{encoded}"/>'
            f"<pre>{escape(self.summary())}</pre></figure>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict]:
        encoded = base64.b64encode(self.png()).decode("ascii")
        data = {"image/png": encoded, "text/html": self.to_html(), "text/plain": self.summary()}
        return data, {}

    def __repr__(self) -> str:
        return self.summary()


def _density(values: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The kernel density of ``values`` on ``grid`` (:func:`engine.infer.kde.gaussian_kde`);
    data that are all equal get a narrow bump (a twentieth of the grid's span) instead of no curve.

    >>> grid = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    >>> round(float(_density(torch.tensor([0.0, 1.0]).double(), grid).sum() * 0.01), 3)
    1.0
    """
    width = bandwidth(values) or 0.05 * float(grid[-1] - grid[0])
    return gaussian_kde(values, grid, width)
