"""Stan's windowed warm-up: when to adapt the step size, when to estimate the mass matrix.

Warm-up has three phases. A fast *initial buffer* (75 iterations) adapts the step size only,
while the chain finds the typical set. Then *slow windows* (25, 50, 100, ... iterations, the last
one stretched to the end) each collect draws for a covariance estimate; at the end of a window
that estimate becomes the inverse mass matrix and step-size adaptation starts afresh. A fast
*terminal buffer* (50 iterations) tunes the step size to the final mass matrix. When warm-up is
too short for that layout, the same shape is kept in proportion (15 % / 75 % / 10 %). As in Pyro
and NumPyro, a window is stretched to the terminal buffer whenever the next one would not fit
(Stan only stretches the last).

Pyro's public mass-matrix adapters, :class:`BlockMassMatrix` and :class:`ArrowheadMassMatrix`,
live in :mod:`~engine.infer.mcmc.block_mass_matrix` and are importable from here, as in Pyro.

>>> adaptation_windows(1000)
[(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
>>> adaptation_windows(100)
[(15, 90)]
"""

from __future__ import annotations

import torch

from engine.infer.mcmc.block_mass_matrix import ArrowheadMassMatrix, BlockMassMatrix
from engine.infer.mcmc.mass_matrix import WelfordCovariance
from engine.infer.mcmc.step_size import DualAveraging

__all__ = ["ArrowheadMassMatrix", "BlockMassMatrix", "WarmupAdapter", "adaptation_windows"]

INIT_BUFFER, BASE_WINDOW, TERM_BUFFER = 75, 25, 50


def adaptation_windows(num_warmup: int) -> list[tuple[int, int]]:
    """The slow windows ``[(start, end), ...]`` (end exclusive) of a warm-up of that length;
    empty when it is under 20 iterations (only the step size is adapted then)."""
    if num_warmup < 20:
        return []
    init_buffer, base_window, term_buffer = INIT_BUFFER, BASE_WINDOW, TERM_BUFFER
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - init_buffer - term_buffer
    end_of_slow = num_warmup - term_buffer
    windows, start, size = [], init_buffer, base_window
    while start < end_of_slow:
        end = start + size
        # Stretch the window to the terminal buffer when the next one would not fit.
        if end + 2 * size > end_of_slow:
            end = end_of_slow
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


class WarmupAdapter:
    """Runs the schedule for all chains: feed it each warm-up iteration's draw and acceptance
    statistic; it says when a window closes and what the new mass matrix is.

    >>> adapter = WarmupAdapter(100, 1, 2, adapt_step_size=True, adapt_mass_matrix=True,
    ...                         dense_mass=False, target_accept_prob=0.8,
    ...                         dtype=torch.float32, device=torch.device("cpu"))
    >>> closing = [i for i in range(100) if adapter.collect(i, torch.randn(1, 2)) is not None]
    >>> closing  # the one slow window of a 100-iteration warm-up, (15, 90), closes at 89
    [89]
    """

    def __init__(
        self,
        num_warmup: int,
        num_chains: int,
        dim: int,
        *,
        adapt_step_size: bool,
        adapt_mass_matrix: bool,
        dense_mass: bool,
        target_accept_prob: float,
        dtype: torch.dtype,
        device: torch.device,
    ):
        self.num_warmup = num_warmup
        self.adapt_step_size = adapt_step_size
        self.windows = adaptation_windows(num_warmup) if adapt_mass_matrix else []
        self.covariance = WelfordCovariance(num_chains, dim, dense_mass, dtype, device)
        self.target_accept_prob = target_accept_prob
        self.averaging: DualAveraging | None = None

    def restart_step_size(self, step_size: torch.Tensor) -> None:
        """Begin (again) to adapt from ``step_size``: at the start and after each window."""
        if self.adapt_step_size:
            self.averaging = DualAveraging(step_size, self.target_accept_prob)

    def step_size_after(self, accept_prob: torch.Tensor) -> torch.Tensor | None:
        """The step size for the next iteration given this one's acceptance (None: keep)."""
        if self.averaging is None:
            return None
        return self.averaging.update(accept_prob)

    def final_step_size(self) -> torch.Tensor | None:
        """The averaged step size kept for sampling (None when the step size is not adapted)."""
        return None if self.averaging is None else self.averaging.final_step_size()

    def in_window(self, iteration: int) -> bool:
        """Whether warm-up iteration ``iteration`` (0-based) feeds a mass-matrix estimate."""
        return any(start <= iteration < end for start, end in self.windows)

    def closes_window(self, iteration: int) -> bool:
        """Whether warm-up iteration ``iteration`` (0-based) is the last of a window."""
        return any(iteration + 1 == end for _, end in self.windows)

    def collect(self, iteration: int, z: torch.Tensor) -> torch.Tensor | None:
        """Record warm-up iteration ``iteration``'s draws (0-based); returns the new inverse
        mass matrix when this iteration closes a window, else None."""
        if self.in_window(iteration):
            self.covariance.update(z)
        if self.closes_window(iteration):
            inverse_mass = self.covariance.covariance()
            self.covariance.reset()
            return inverse_mass
        return None
