"""The leapfrog (velocity Verlet) integrator of Hamiltonian dynamics, for every chain at once.

One step of size ε: half a kick ``r ← r - ε/2 ∇U(z)``, a drift ``z ← z + ε M⁻¹ r``, another half
kick with the gradient at the new point. Each chain has its own step size (a (C,) tensor, which
may be negative to integrate backwards in time).

>>> import torch
>>> from engine.infer.mcmc.mass_matrix import MassMatrix
>>> def quadratic(z):  # U(z) = z²/2
...     return 0.5 * (z * z).sum(-1), z
>>> z, r = torch.tensor([[1.0]]), torch.tensor([[0.0]])
>>> z, r, energy, grad = leapfrog(quadratic, MassMatrix(1, 1, False), z, r, z, torch.tensor([0.1]))
>>> round(z.item(), 3), round(r.item(), 5)
(0.995, -0.09975)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.infer.mcmc.mass_matrix import MassMatrix


def leapfrog(
    energy_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    mass: MassMatrix,
    z: torch.Tensor,
    momentum: torch.Tensor,
    grad: torch.Tensor,
    step_size: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One leapfrog step per chain: returns ``(z, momentum, energy, grad)`` at the new point."""
    step = step_size.unsqueeze(-1)
    return leapfrog_with(energy_and_grad, mass, z, momentum, grad, step, 0.5 * step)


def leapfrog_with(
    energy_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    mass: MassMatrix,
    z: torch.Tensor,
    momentum: torch.Tensor,
    grad: torch.Tensor,
    step: torch.Tensor,
    half_step: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`leapfrog` given the step as a column ``step`` (C, 1) and ``half_step = 0.5 * step``:
    a caller taking many steps of one size (a NUTS subtree) computes them once, not per step.

    >>> def quadratic(z):
    ...     return 0.5 * (z * z).sum(-1), z
    >>> z, step = torch.tensor([[1.0]]), torch.tensor([[0.1]])
    >>> args = (quadratic, MassMatrix(1, 1, False), z, torch.zeros(1, 1), z)
    >>> leapfrog_with(*args, step, 0.5 * step)[0].item() == leapfrog(*args, step[:, 0])[0].item()
    True
    """
    momentum = momentum - half_step * grad
    z = z + step * mass.velocity(momentum)
    energy, grad = energy_and_grad(z)
    momentum = momentum - half_step * grad
    return z, momentum, energy, grad
