"""Step-size adaptation: Nesterov dual averaging toward a target acceptance rate, and the search
for a reasonable first step size. Both work on every chain at once (one step size per chain).

Dual averaging (Hoffman & Gelman 2014, as in Stan) treats ``target - accept_prob`` as a noisy
gradient in log step size: the running average of those errors sets the next log step size,
shrunk towards ``mu = log(10 · ε₀)``; the averaged iterate is the step size kept after warm-up.

>>> import torch
>>> averaging = DualAveraging(torch.tensor([0.1]), target_accept_prob=0.8)
>>> for _ in range(200):  # accepting everything: the step size grows
...     step = averaging.update(torch.tensor([1.0]))
>>> bool(step > 0.1), bool(averaging.final_step_size() > 0.1)
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from engine.infer.mcmc.integrator import leapfrog
from engine.infer.mcmc.mass_matrix import MassMatrix

EnergyAndGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class DualAveraging:
    """Per-chain dual averaging of ``log step_size`` toward ``target_accept_prob``."""

    def __init__(
        self,
        step_size: torch.Tensor,
        target_accept_prob: float = 0.8,
        gamma: float = 0.05,
        t0: float = 10.0,
        kappa: float = 0.75,
    ):
        self.target = target_accept_prob
        self.gamma, self.t0, self.kappa = gamma, t0, kappa
        self.restart(step_size)

    def restart(self, step_size: torch.Tensor) -> None:
        """Start again from ``step_size`` (at the start of each adaptation window)."""
        self.mu = (10.0 * step_size).log()
        self.iteration = 0
        self.error_sum = torch.zeros_like(step_size)
        self.log_averaged = torch.zeros_like(step_size)

    def update(self, accept_prob: torch.Tensor) -> torch.Tensor:
        """Take in each chain's acceptance statistic; return the next step size per chain."""
        self.iteration += 1
        t = self.iteration
        accept_prob = torch.nan_to_num(accept_prob, nan=0.0)
        self.error_sum = self.error_sum + (self.target - accept_prob)
        log_step = self.mu - self.error_sum * (math.sqrt(t) / (self.gamma * (t + self.t0)))
        weight = t ** (-self.kappa)
        self.log_averaged = weight * log_step + (1 - weight) * self.log_averaged
        return log_step.exp()

    def final_step_size(self) -> torch.Tensor:
        """The averaged step size: what sampling uses once the window (or warm-up) ends."""
        return self.log_averaged.exp()


def find_reasonable_step_size(
    energy_and_grad: EnergyAndGrad,
    mass: MassMatrix,
    z: torch.Tensor,
    energy: torch.Tensor,
    grad: torch.Tensor,
    step_size: torch.Tensor,
    max_doublings: int = 100,
) -> torch.Tensor:
    """Double or halve each chain's step size until one leapfrog step's acceptance probability
    crosses 0.8 (Stan's version of Hoffman & Gelman's heuristic), starting from ``step_size``
    (C,). A search that runs away (a flat potential) stops after ``max_doublings``; the kernel
    clamps the result.

    >>> from engine.infer.mcmc.mass_matrix import MassMatrix
    >>> def narrow(z):  # U(z) = 50 z²: a standard deviation of 0.1
    ...     return 50 * (z * z).sum(-1), 100 * z
    >>> z = torch.ones(1, 1)
    >>> step = find_reasonable_step_size(narrow, MassMatrix(1, 1, False), z, *narrow(z),
    ...                                  torch.ones(1))
    >>> bool(step < 1)
    True
    """
    step_size = step_size.clone()
    direction = None
    searching = torch.ones_like(step_size, dtype=torch.bool)
    for _ in range(max_doublings):
        momentum = mass.sample_momentum()
        start = energy + mass.kinetic_energy(momentum)
        _, new_momentum, new_energy, _ = leapfrog(
            energy_and_grad, mass, z, momentum, grad, step_size
        )
        delta = start - (new_energy + mass.kinetic_energy(new_momentum))
        delta = torch.nan_to_num(delta, nan=-math.inf)
        above = delta > math.log(0.8)
        if direction is None:
            direction = torch.where(above, 2.0, 0.5).to(step_size.dtype)
        # A chain stops once its acceptance crosses 1/2 in its direction of search.
        crossed = torch.where(direction > 1, ~above, above)
        searching = searching & ~crossed
        if not bool(searching.any()):
            break
        step_size = torch.where(searching, step_size * direction, step_size)
    return step_size
