"""``NUTS``: the No-U-Turn sampler, iterative (no recursion), all chains in lockstep.

Each iteration doubles a trajectory, in a random direction each time, until it makes a U-turn.
A doubling integrates a new subtree of ``2^depth`` leapfrog steps from the edge of the current
trajectory. Inside a subtree the draw is *multinomial*: each new point replaces the subtree's
candidate with probability proportional to its weight ``exp(-H)``; between the old trajectory
and a new subtree the candidate moves with probability ``min(1, w_new / w_old)`` (biased
progressive sampling), which favours points far from the start. The *generalized* U-turn
criterion is checked on every balanced sub-tree, from the momentum sum ``rho`` and the velocities
``M⁻¹p`` at its two ends: it turns once ``(M⁻¹p⁻)·rho ≤ 0`` or ``(M⁻¹p⁺)·rho ≤ 0``.

Iterative, because a subtree's balanced sub-trees end at known leaf indices: the sub-tree of size
``2^k`` that ends at leaf ``n`` (when ``(n+1)`` is a multiple of ``2^k``) started at leaf
``n + 1 - 2^k``, so keeping one checkpoint (the starting velocity and momentum sum) per level is
enough. Those indices are the same for every chain, so chains advance in lockstep, one batched
leapfrog step at a time; a chain whose trajectory has ended waits (its results are masked out)
until every chain's has.

A subtree whose energy error exceeds ``max_delta_energy`` diverges: it is dropped and the
trajectory ends.

>>> import engine, engine.distributions as dist
>>> from engine.infer.mcmc import MCMC
>>> def model():
...     engine.sample("x", dist.Normal(0.0, 1.0))
>>> mcmc = MCMC(NUTS(model), num_samples=100, warmup_steps=50, num_chains=2)
>>> mcmc.run()
>>> draws = mcmc.get_samples()["x"]
>>> draws.shape, bool(-1 < draws.mean() < 1)
(torch.Size([200]), True)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from engine.infer.autoguide.initialization import init_to_uniform
from engine.infer.mcmc.hmc import HMC, masked_leapfrog
from engine.runtime import Message


def _choose(condition: torch.Tensor, mine: NamedTuple, theirs: NamedTuple) -> NamedTuple:
    """Field by field, ``mine`` for the chains where ``condition`` (C,) holds, else ``theirs``
    (per-chain vectors (C,) and points (C, D) alike)."""
    picked = []
    for a, b in zip(mine, theirs, strict=True):
        keep = condition.reshape(condition.shape + (1,) * (a.dim() - condition.dim()))
        picked.append(torch.where(keep, a, b))
    return type(mine)(*picked)


class _Edge(NamedTuple):
    """One end of a trajectory, per chain."""

    z: torch.Tensor
    momentum: torch.Tensor
    grad: torch.Tensor
    velocity: torch.Tensor


class _Candidate(NamedTuple):
    """The point a (sub)trajectory would move the chain to, per chain."""

    z: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor
    hamiltonian: torch.Tensor


def _turned(start_velocity, end_velocity, momentum_sum) -> torch.Tensor:
    """The generalized U-turn criterion, per chain."""
    return ((start_velocity * momentum_sum).sum(-1) <= 0) | (
        (end_velocity * momentum_sum).sum(-1) <= 0
    )


class NUTS(HMC):
    """The No-U-Turn sampler (Pyro's arguments, plus those of :class:`HMC`).

    ``max_tree_depth`` caps a trajectory at ``2^max_tree_depth`` leapfrog steps.
    """

    def __init__(
        self,
        model: Callable | None = None,
        potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
        step_size: float = 1.0,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool = True,
        full_mass: bool = False,
        use_multinomial_sampling: bool = True,
        transforms: Any = None,
        max_plate_nesting: int | None = None,
        jit_compile: bool = False,
        jit_options: dict[str, Any] | None = None,
        ignore_jit_warnings: bool = False,
        target_accept_prob: float = 0.8,
        max_tree_depth: int = 10,
        init_strategy: Callable[[Message], torch.Tensor] = init_to_uniform,
        **kwargs: Any,
    ):
        if not use_multinomial_sampling:
            raise NotImplementedError(
                "use_multinomial_sampling=False (slice sampling of the tree) is not supported: "
                "NUTS here always draws multinomially, as Stan does."
            )
        if max_tree_depth < 1:
            raise ValueError(f"max_tree_depth must be at least 1, got {max_tree_depth}")
        super().__init__(
            model,
            potential_fn,
            step_size,
            adapt_step_size=adapt_step_size,
            adapt_mass_matrix=adapt_mass_matrix,
            full_mass=full_mass,
            transforms=transforms,
            max_plate_nesting=max_plate_nesting,
            jit_compile=jit_compile,
            jit_options=jit_options,
            ignore_jit_warnings=ignore_jit_warnings,
            target_accept_prob=target_accept_prob,
            init_strategy=init_strategy,
            **kwargs,
        )
        self.max_tree_depth = max_tree_depth

    def _transition(self) -> dict[str, torch.Tensor]:
        mass = self.mass
        momentum = mass.sample_momentum()
        start_h = self.energy + mass.kinetic_energy(momentum)
        edge = _Edge(self.z, momentum, self.grad, mass.velocity(momentum))
        left = right = edge
        candidate = _Candidate(self.z, self.energy, self.grad, start_h)
        log_weight = torch.zeros_like(start_h)  # log Σ exp(H0 - H) over the trajectory
        momentum_sum = momentum
        done = torch.zeros_like(start_h, dtype=torch.bool)
        diverging = torch.zeros_like(done)
        depth = torch.zeros_like(start_h, dtype=torch.long)
        accept_sum = torch.zeros_like(start_h)
        num_steps = torch.zeros_like(depth)

        for tree_depth in range(self.max_tree_depth):
            if bool(done.all()):
                break
            forward = torch.rand_like(start_h) < 0.5
            start = _choose(forward, right, left)
            step = torch.where(forward, self.step_size, -self.step_size)
            sub = self._subtree(start, step, tree_depth, start_h, ~done)
            active = ~done
            depth = depth + active.long()
            accept_sum = accept_sum + sub["accept_sum"]
            num_steps = num_steps + sub["num_steps"]
            diverging = diverging | sub["diverging"]
            good = active & ~sub["turned"] & ~sub["diverging"]
            take = good & (torch.rand_like(start_h).log() < sub["log_weight"] - log_weight)
            candidate = _choose(take, sub["candidate"], candidate)
            log_weight = torch.where(
                good, torch.logaddexp(log_weight, sub["log_weight"]), log_weight
            )
            momentum_sum = torch.where(
                good.unsqueeze(-1), momentum_sum + sub["momentum_sum"], momentum_sum
            )
            right = _choose(good & forward, sub["edge"], right)
            left = _choose(good & ~forward, sub["edge"], left)
            turned = _turned(left.velocity, right.velocity, momentum_sum)
            done = done | ~good | turned

        self.z, self.energy, self.grad = candidate.z, candidate.energy, candidate.grad
        return {
            "accept_prob": accept_sum / num_steps.clamp(min=1),
            "diverging": diverging,
            "num_steps": num_steps,
            "tree_depth": depth,
            "energy": candidate.hamiltonian,
        }

    def _subtree(
        self,
        start: _Edge,
        step: torch.Tensor,
        tree_depth: int,
        start_h: torch.Tensor,
        active: torch.Tensor,
    ) -> dict:
        """Integrate ``2^tree_depth`` leapfrog steps from ``start`` for the ``active`` chains."""
        levels = (self.max_tree_depth, *start.z.shape)
        state = _SubtreeState(
            z=start.z,
            momentum=start.momentum,
            grad=start.grad,
            energy=torch.zeros_like(start_h),
            velocity=start.velocity,
            # Any placeholder: the first valid leaf always replaces it (its weight is all there
            # is). Fresh tensors, not aliases of ``start``: compiled code is specialised on
            # aliasing, and this keeps one compiled variant for every leaf.
            candidate=_Candidate(
                torch.zeros_like(start.z),
                torch.zeros_like(start_h),
                torch.zeros_like(start.grad),
                torch.zeros_like(start_h),
            ),
            log_weight=torch.full_like(start_h, -math.inf),
            momentum_sum=torch.zeros_like(start.momentum),
            checkpoint_velocity=start.z.new_zeros(levels),
            checkpoint_sum=start.z.new_zeros(levels),
            turned=torch.zeros_like(active),
            diverging=torch.zeros_like(active),
            accept_sum=torch.zeros_like(start_h),
            num_steps=torch.zeros_like(start_h, dtype=torch.long),
        )
        for leaf in range(2**tree_depth):
            state, live_next = self._advance(
                state, step, active, start_h, *self._level_masks(tree_depth, leaf, start.z.device)
            )
            if not bool(live_next.any()):
                break
        return {
            "edge": _Edge(state.z, state.momentum, state.grad, state.velocity),
            "candidate": state.candidate,
            "log_weight": state.log_weight,
            "momentum_sum": state.momentum_sum,
            "turned": state.turned,
            "diverging": state.diverging,
            "accept_sum": state.accept_sum,
            "num_steps": state.num_steps,
        }

    def _level_masks(
        self, tree_depth: int, leaf: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Which levels of balanced sub-trees start (store a checkpoint) and end (check for a
        U-turn) at ``leaf`` of a subtree of depth ``tree_depth``; level k is index k - 1."""
        key = (tree_depth, leaf, device)
        masks = self._masks.get(key)
        if masks is None:
            levels = range(1, self.max_tree_depth + 1)
            starts = [level <= tree_depth and leaf % 2**level == 0 for level in levels]
            ends = [level <= tree_depth and (leaf + 1) % 2**level == 0 for level in levels]
            masks = (torch.tensor(starts, device=device), torch.tensor(ends, device=device))
            self._masks[key] = masks
        return masks

    def _make_step_functions(self) -> None:
        super()._make_step_functions()
        self._masks: dict = {}
        advance = functools.partial(
            _advance_leaf, self._energy_and_grad, self.mass, self.max_delta_energy
        )
        self._advance = self._compiled(advance)


class _SubtreeState(NamedTuple):
    """A subtree being integrated, per chain: its far end, its candidate, its running sums, and
    one checkpoint per level of balanced sub-trees (velocity at its first leaf, momentum sum
    before it), shaped (max_tree_depth, C, D)."""

    z: torch.Tensor
    momentum: torch.Tensor
    grad: torch.Tensor
    energy: torch.Tensor
    velocity: torch.Tensor
    candidate: _Candidate
    log_weight: torch.Tensor
    momentum_sum: torch.Tensor
    checkpoint_velocity: torch.Tensor
    checkpoint_sum: torch.Tensor
    turned: torch.Tensor
    diverging: torch.Tensor
    accept_sum: torch.Tensor
    num_steps: torch.Tensor


def _advance_leaf(
    energy_and_grad,
    mass,
    max_delta_energy: float,
    state: _SubtreeState,
    step: torch.Tensor,
    active: torch.Tensor,
    start_h: torch.Tensor,
    starts: torch.Tensor,
    ends: torch.Tensor,
) -> tuple[_SubtreeState, torch.Tensor]:
    """One leapfrog step of a subtree for the chains still integrating it (the others keep
    their state); ``starts``/``ends`` say which levels of balanced sub-trees begin and end at
    this leaf. Returns the new state and which chains go on to the next leaf."""
    live = active & ~state.turned & ~state.diverging
    z, momentum, energy, grad = masked_leapfrog(
        energy_and_grad, mass, state.z, state.momentum, state.energy, state.grad, step, live
    )
    velocity = mass.velocity(momentum)
    hamiltonian = energy + mass.kinetic_energy(momentum)
    delta = torch.nan_to_num(hamiltonian - start_h, nan=math.inf)
    diverged_now = live & (delta > max_delta_energy)
    valid = live & ~diverged_now
    # Multinomial draw inside the subtree: the new leaf wins with its share of the weight.
    new_log_weight = torch.logaddexp(state.log_weight, -delta)
    wins = valid & (torch.rand_like(delta).log() < -delta - new_log_weight)
    momentum_sum = torch.where(
        valid.unsqueeze(-1), state.momentum_sum + momentum, state.momentum_sum
    )
    # Balanced sub-trees: those starting here checkpoint this leaf; those ending here are
    # checked for a U-turn between their first leaf and this one.
    starting = starts[:, None, None]
    checkpoint_velocity = torch.where(starting, velocity, state.checkpoint_velocity)
    checkpoint_sum = torch.where(starting, state.momentum_sum, state.checkpoint_sum)
    turns = _turned(checkpoint_velocity, velocity, momentum_sum - checkpoint_sum)
    turned = state.turned | (valid & (turns & ends[:, None]).any(0))
    diverging = state.diverging | diverged_now
    new_state = _SubtreeState(
        z=z,
        momentum=momentum,
        grad=grad,
        energy=energy,
        velocity=velocity,
        candidate=_choose(wins, _Candidate(z, energy, grad, hamiltonian), state.candidate),
        log_weight=torch.where(valid, new_log_weight, state.log_weight),
        momentum_sum=momentum_sum,
        checkpoint_velocity=checkpoint_velocity,
        checkpoint_sum=checkpoint_sum,
        turned=turned,
        diverging=diverging,
        accept_sum=state.accept_sum + torch.where(live, (-delta).clamp(max=0.0).exp(), 0.0),
        num_steps=state.num_steps + live.long(),
    )
    return new_state, active & ~turned & ~diverging
