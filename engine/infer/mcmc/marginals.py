"""What the MCMC pictures show of each site: its elements (capped, labelled ``theta[1, 0]``), a
density curve per chain on one grid per element, and the rank histograms.

:func:`MCMC.plot <engine.infer.mcmc.MCMC.plot>` (matplotlib) and the live monitor (widgets/) draw
the same numbers from here, so the two pictures agree. Every element is handled in one batched
computation: the draws of all shown elements are stacked as ``(chains, draws, K)``.

>>> import torch
>>> samples = {"mu": torch.zeros(2, 50), "theta": torch.zeros(2, 50, 3, 2)}
>>> labels, stacked = stack_elements(samples, max_per_site=4)
>>> [label for _, label in labels]
['mu', 'theta[0, 0]', 'theta[0, 1]', 'theta[1, 0]', 'theta[1, 1]']
>>> stacked.shape
torch.Size([2, 50, 5])
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch

from engine.infer.kde import gaussian_kde, silverman_bandwidth
from engine.infer.mcmc.diagnostics import rank_histogram

# A density from more draws than this is computed on evenly spaced ones: the curve of a picture
# does not change visibly, and the cost stays bounded however long the run.
MAX_KDE_DRAWS = 2000


def element_labels(name: str, shape: torch.Size, limit: int) -> list[str]:
    """Labels of the first ``limit`` elements of a site of ``shape`` (row-major order).

    >>> element_labels("w", torch.Size([2, 3]), 2)
    ['w[0, 0]', 'w[0, 1]']
    """
    if len(shape) == 0:
        return [name]
    indices = itertools.islice(itertools.product(*(range(size) for size in shape)), limit)
    return [f"{name}[{', '.join(map(str, index))}]" for index in indices]


def stack_elements(
    samples: Mapping[str, torch.Tensor], max_per_site: int = 4, max_total: int = 16
) -> tuple[list[tuple[str, str]], torch.Tensor]:
    """The first ``max_per_site`` elements of each site (at most ``max_total`` in all) from
    ``samples`` ``{name: (chains, draws, *shape)}``: their ``(site, label)`` and their draws
    stacked as ``(chains, draws, K)`` (float64)."""
    labels: list[tuple[str, str]] = []
    columns: list[torch.Tensor] = []
    for name, value in samples.items():
        room = min(max_per_site, max_total - len(labels))
        if room <= 0:
            break
        flat = value.detach().reshape(*value.shape[:2], -1)[..., :room]
        labels.extend((name, label) for label in element_labels(name, value.shape[2:], room))
        columns.append(flat.to(torch.float64))
    if not columns:
        raise ValueError("no sites to show: the samples are empty")
    return labels, torch.cat(columns, dim=-1)


def density_curves(
    draws: torch.Tensor, points: int = 64, max_draws: int = MAX_KDE_DRAWS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per element, a grid spanning every chain's draws (and three bandwidths beyond), and
    each chain's Gaussian KDE on it: ``draws`` (chains, n, K) gives grid (K, points) and
    densities (chains, K, points). Non-finite draws are left out of an element's range (a
    chain holding one gets NaN densities for it).

    >>> grid, density = density_curves(torch.randn(2, 500, 1), points=101)
    >>> grid.shape, density.shape
    (torch.Size([1, 101]), torch.Size([2, 1, 101]))
    >>> step = grid[0, 1] - grid[0, 0]
    >>> bool(((density.sum(-1) * step - 1).abs() < 0.02).all())  # each curve integrates to 1
    True
    """
    if draws.dim() != 3 or draws.shape[1] == 0:
        raise ValueError(
            f"density_curves needs draws shaped (chains, n >= 1, K), got {tuple(draws.shape)}"
        )
    draws = draws.detach().to(torch.float64)
    n = draws.shape[1]
    if n > max_draws:
        draws = draws[:, torch.linspace(0, n - 1, max_draws).round().long()]
    per_chain = draws.movedim(1, -1)  # (chains, K, n)
    bandwidth = silverman_bandwidth(per_chain)  # (chains, K)
    finite = torch.isfinite(per_chain)
    low = torch.where(finite, per_chain, torch.inf).amin((0, 2))
    high = torch.where(finite, per_chain, -torch.inf).amax((0, 2))
    reach = 3 * torch.nan_to_num(bandwidth, nan=0.0).amax(0)
    low, high = torch.nan_to_num(low - reach), torch.nan_to_num(high + reach)
    steps = torch.linspace(0.0, 1.0, points, dtype=torch.float64, device=draws.device)
    grid = low.unsqueeze(-1) + (high - low).unsqueeze(-1) * steps  # (K, points)
    return grid, gaussian_kde(per_chain, grid.expand(per_chain.shape[0], -1, -1), bandwidth)


def default_bins(draws_per_chain: int) -> int:
    """Rank-plot bins for chains of this length: about 20 (as in Vehtari et al. 2021), fewer
    for short chains so that a bin still expects about 8 of each chain's draws, and at least 2
    (one bin shows nothing) once there are 2 draws.

    >>> default_bins(1000), default_bins(40), default_bins(10), default_bins(1)
    (20, 5, 2, 1)
    """
    return 1 if draws_per_chain < 2 else max(2, min(20, draws_per_chain // 8))


def rank_counts(draws: torch.Tensor, bins: int = 20) -> torch.Tensor:
    """Rank histograms of stacked draws (chains, n, K): counts (chains, K, bins); see
    :func:`~engine.infer.mcmc.diagnostics.rank_histogram`."""
    return rank_histogram(draws, bins).movedim(1, -1)
