"""The static picture of an MCMC run: per site element, each chain's marginal density and the
rank plot (Vehtari, Gelman, Simpson, Carpenter and Bürkner 2021), one row per element.

Densities that agree and rank histograms that are flat say the chains sample one distribution;
a chain whose density sits apart, or whose ranks pile up at one end, has not mixed. The numbers
come from :mod:`engine.infer.mcmc.marginals` (the live monitor shows the same). matplotlib is
imported inside :func:`plot_chains` only, so the engine imports without it.

>>> import torch
>>> draws = {"mu": torch.randn(2, 100, generator=torch.Generator().manual_seed(0))}
>>> figure = plot_chains(draws)
>>> [axes.get_title() for axes in figure.axes]
['mu: density per chain', 'mu: rank plot']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from engine.infer.mcmc.marginals import default_bins, density_curves, rank_counts, stack_elements

CHAIN_COLORS = ("steelblue", "darkorange", "seagreen", "crimson", "purple", "goldenrod")


def plot_chains(
    samples: Mapping[str, torch.Tensor],
    *,
    max_per_site: int = 4,
    max_rows: int = 12,
    bins: int | None = None,
) -> Any:
    """A matplotlib ``Figure`` with a row per site element (the first ``max_per_site`` of
    each site, ``max_rows`` in all) from ``samples`` ``{name: (chains, draws, *shape)}``: each
    chain's density (left) and rank histogram (right, ``bins`` bins, with the count a uniform
    histogram expects dashed). Needs matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "MCMC plots need matplotlib, which is not installed: pip install matplotlib"
        ) from error
    labels, draws = stack_elements(samples, max_per_site, max_rows)
    chains, n = draws.shape[:2]
    if n < 2:
        raise ValueError(f"a picture of the chains needs at least 2 draws per chain, got {n}")
    grid, density = density_curves(draws)
    bins = default_bins(n) if bins is None else bins
    counts = rank_counts(draws, bins)
    # Figure (not pyplot): no global state, nothing shown twice in a notebook.
    figure = Figure(figsize=(9, 1.9 * len(labels)), layout="constrained")
    panels = figure.subplots(len(labels), 2, squeeze=False)
    edges = torch.linspace(0, chains * n, bins + 1).tolist()
    for k, (_, label) in enumerate(labels):
        left, right = panels[k]
        for c in range(chains):
            color = CHAIN_COLORS[c % len(CHAIN_COLORS)]
            left.plot(grid[k].tolist(), density[c, k].tolist(), color=color, label=f"chain {c}")
            right.stairs(counts[c, k].tolist(), edges, color=color)
        right.axhline(n / bins, color="gray", linestyle="--", linewidth=1)
        left.set_title(f"{label}: density per chain")
        right.set_title(f"{label}: rank plot")
        left.set_yticks([])
        right.set_xlabel("rank among all chains")
        right.set_ylabel("draws")
    if chains > 1:
        panels[0, 0].legend(fontsize="small")
    return figure
