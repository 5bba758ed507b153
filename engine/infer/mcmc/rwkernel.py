"""``RandomWalkKernel``: gradient-free Metropolis with an isotropic Gaussian random walk in the
model's unconstrained space, every chain at once.

Each iteration proposes ``z' = z + step_size · ε`` with ``ε ~ N(0, I)`` and accepts it with
probability ``min(1, exp(U(z) - U(z')))`` (the proposal is symmetric, so no correction). During
warm-up each chain's step size is tuned towards ``target_accept_prob`` (0.234 by default, the
optimal rate of a random walk in many dimensions) by a Robbins-Monro step on its logarithm:
``log ε += (accept_prob - target) / t^0.6`` at warm-up iteration ``t``. Only the potential
energy is needed, never its gradient, so models whose density has no useful gradient work, at
the price of far more iterations than HMC for the same precision.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer.mcmc import MCMC
>>> def model():
...     engine.sample("x", dist.Normal(3.0, 1.0))
>>> engine.set_rng_seed(0)
>>> mcmc = MCMC(RandomWalkKernel(model), num_samples=2000, warmup_steps=500)
>>> mcmc.run()
>>> x = mcmc.get_samples()["x"]
>>> bool(abs(x.mean() - 3.0) < 0.3), bool(abs(x.std() - 1.0) < 0.3)
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from engine.distributions.validation import trusted_run
from engine.infer.autoguide.initialization import init_to_uniform
from engine.infer.mcmc.batched_kernel import BatchedKernel
from engine.infer.mcmc.potential import Potential
from engine.runtime import Message

# The decay of the warm-up step: 1/t^0.6 sums to infinity (the step size can travel as far as
# it needs) while its squares sum to a finite value (the noise of the acceptances averages out).
_ADAPT_DECAY = 0.6


class RandomWalkKernel(BatchedKernel):
    """Random-walk Metropolis (Pyro's arguments: ``model``, ``init_step_size``,
    ``target_accept_prob``; plus ``init_strategy`` and ``max_plate_nesting`` as HMC has them).
    See the module docstring."""

    def __init__(
        self,
        model: Callable,
        init_step_size: float = 0.1,
        target_accept_prob: float = 0.234,
        *,
        init_strategy: Callable[[Message], torch.Tensor] = init_to_uniform,
        max_plate_nesting: int | None = None,
    ):
        if not init_step_size > 0:
            raise ValueError(f"init_step_size must be positive, got {init_step_size}")
        if not 0 < target_accept_prob < 1:
            raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob}")
        self.model = model
        self.init_step_size = float(init_step_size)
        self.target_accept_prob = target_accept_prob
        self.init_strategy = init_strategy
        self.max_plate_nesting = max_plate_nesting
        self.potential: Potential | None = None

    def setup_chains(
        self,
        num_chains: int,
        num_warmup: int,
        model_args: tuple = (),
        model_kwargs: dict[str, Any] | None = None,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Build the potential and place every chain (from ``initial_params`` or
        ``init_strategy``), each with the initial step size."""
        self.potential = self._model_potential(model_args, model_kwargs)
        z = self._starting_points(num_chains, initial_params)
        self._move_to(z)
        self._log_step_size = torch.full(
            (num_chains,), math.log(self.init_step_size), dtype=z.dtype, device=z.device
        )

    @property
    def z(self) -> torch.Tensor:
        return self._z

    def _move_to(self, z: torch.Tensor) -> None:
        self._z = z
        self._energy = self._energy_at(z)

    def _energy_at(self, z: torch.Tensor) -> torch.Tensor:
        # A proposal outside the model's comfort zone is a rejected move, not an error.
        with torch.no_grad(), trusted_run():
            return self.potential.energy(z)

    def step_chains(self, iteration: int, warmup: bool) -> dict[str, torch.Tensor]:
        """One Metropolis step of every chain; during warm-up, then the step-size update."""
        step_size = self._log_step_size.exp()
        proposal = self._z + step_size.unsqueeze(-1) * torch.randn_like(self._z)
        energy = self._energy_at(proposal)
        # NaN energy counts as infinite: the proposal is rejected.
        log_ratio = torch.nan_to_num(self._energy - energy, nan=-math.inf)
        accept_prob = log_ratio.clamp(max=0.0).exp()
        accepted = torch.rand_like(accept_prob) < accept_prob
        self._z = torch.where(accepted.unsqueeze(-1), proposal, self._z)
        self._energy = torch.where(accepted, energy, self._energy)
        if warmup:
            rate = (iteration + 1) ** -_ADAPT_DECAY
            self._log_step_size = self._log_step_size + rate * (
                accept_prob - self.target_accept_prob
            )
        return {
            "accept_prob": accept_prob,
            "diverging": torch.zeros_like(accepted),
            "num_steps": torch.zeros_like(accepted, dtype=torch.long),  # no gradient steps
            "step_size": step_size,
            "lp": -self._energy,
            "energy": self._energy.clone(),
        }


__all__ = ["RandomWalkKernel"]
