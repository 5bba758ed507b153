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

The per-leaf bookkeeping works on packed blocks, so that it costs a few tensor operations
whatever the model: a point of the trajectory is one (4, C, D) block (position, momentum,
gradient, velocity), selected per chain with one ``torch.where``; a candidate is such a block
and its potential energy; the checkpoints of all levels are one (max_tree_depth, 3, C, D) block
that also carries the leaf's velocity, so both U-turn criteria of every level ending at a leaf
are one product and one sum. The only host sync per leaf is the check that some chain still
integrates the subtree.

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
from engine.infer.mcmc.hmc import HMC
from engine.infer.mcmc.integrator import leapfrog_with
from engine.infer.mcmc.state import ChainPoint, where_chains
from engine.runtime import Message

# The rows of a point block (4, C, D).
Z, MOMENTUM, GRAD, VELOCITY = range(4)


def _turned(start_velocity, end_velocity, momentum_sum) -> torch.Tensor:
    """The generalized U-turn criterion, per chain.

    >>> _turned(torch.tensor([[1.0]]), torch.tensor([[-1.0]]), torch.tensor([[0.5]]))
    tensor([True])
    """
    return ((start_velocity * momentum_sum).sum(-1) <= 0) | (
        (end_velocity * momentum_sum).sum(-1) <= 0
    )


class _Candidate(NamedTuple):
    """The point a (sub)trajectory would move the chain to: its point block (4, C, D) and its
    potential energy (C,). Its Hamiltonian is not carried: :func:`_hamiltonian` recomputes it
    from the block with the very same arithmetic, once per iteration instead of once per leaf."""

    point: torch.Tensor
    energy: torch.Tensor


def _hamiltonian(
    energy: torch.Tensor, momentum: torch.Tensor, velocity: torch.Tensor
) -> torch.Tensor:
    """``U + ½ rᵀ M⁻¹ r`` given the velocity ``M⁻¹ r`` (the arithmetic of
    ``energy + MassMatrix.kinetic_energy(momentum)``, without computing the velocity again).

    >>> _hamiltonian(torch.tensor([1.0]), torch.ones(1, 2), torch.ones(1, 2))
    tensor([2.])
    """
    return energy + 0.5 * (momentum * velocity).sum(-1)


class _SubtreeState(NamedTuple):
    """A subtree being integrated, per chain: its far end (a point block (4, C, D)), its
    candidate, its running sums, which chains go on integrating it (``live``: active, not
    turned, not diverged; at the end, the chains whose subtree may join the trajectory), and one
    checkpoint per level of balanced sub-trees, shaped (max_tree_depth, 3, C, D): the velocity
    at the sub-tree's first leaf, the current leaf's velocity, and the momentum sum before the
    sub-tree (velocities side by side: both U-turn criteria are one product)."""

    point: torch.Tensor
    candidate: _Candidate
    log_weight: torch.Tensor
    momentum_sum: torch.Tensor
    checkpoints: torch.Tensor
    live: torch.Tensor
    diverging: torch.Tensor
    accept_sum: torch.Tensor
    num_steps: torch.Tensor


class NUTS(HMC):
    """The No-U-Turn sampler (Pyro's arguments, plus those of :class:`HMC`).

    ``max_tree_depth`` caps a trajectory at ``2^max_tree_depth`` leapfrog steps.
    ``use_multinomial_sampling=False`` (Pyro: draw the next point by slice sampling, as the
    original NUTS paper did) is accepted and draws multinomially all the same, as Stan does:
    both leave the posterior invariant, and the multinomial draw mixes at least as well.
    """

    def __init__(
        self,
        model: Callable | None = None,
        potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
        step_size: float | None = 1.0,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool = True,
        full_mass: bool | list[tuple[str, ...]] = False,
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
        """One trajectory per chain, doubled until it turns; each chain moves to its
        trajectory's candidate."""
        state = self.state
        mass, step_size, current = state.mass, state.step_size, state.point
        momentum = mass.sample_momentum()
        start_h = current.energy + mass.kinetic_energy(momentum)
        # Both ends of the trajectory start at the current point.
        left = right = torch.stack((current.z, momentum, current.grad, mass.velocity(momentum)))
        candidate = _Candidate(left, current.energy)
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
            start = torch.where(forward.unsqueeze(-1), right, left)
            step = torch.where(forward, step_size, -step_size)
            active = ~done
            subtree = self._subtree(start, step, tree_depth, start_h, active)
            depth = depth + active.long()
            accept_sum = accept_sum + subtree.accept_sum
            num_steps = num_steps + subtree.num_steps
            diverging = diverging | subtree.diverging
            good = subtree.live  # the chains that neither turned nor diverged in the subtree
            moves_into_subtree = good & (
                torch.rand_like(start_h).log() < subtree.log_weight - log_weight
            )
            candidate = where_chains(moves_into_subtree, subtree.candidate, candidate)
            log_weight = torch.where(
                good, torch.logaddexp(log_weight, subtree.log_weight), log_weight
            )
            momentum_sum = torch.where(
                good.unsqueeze(-1), momentum_sum + subtree.momentum_sum, momentum_sum
            )
            right = torch.where((good & forward).unsqueeze(-1), subtree.point, right)
            left = torch.where((good & ~forward).unsqueeze(-1), subtree.point, left)
            turned = _turned(left[VELOCITY], right[VELOCITY], momentum_sum)
            done = done | ~good | turned

        chosen = ChainPoint(candidate.point[Z], candidate.energy, candidate.point[GRAD])
        self.state = state._replace(point=chosen)
        return {
            "accept_prob": accept_sum / num_steps.clamp(min=1),
            "diverging": diverging,
            "num_steps": num_steps,
            "tree_depth": depth,
            "energy": _hamiltonian(
                candidate.energy, candidate.point[MOMENTUM], candidate.point[VELOCITY]
            ),
        }

    def _subtree(
        self,
        start: torch.Tensor,
        step: torch.Tensor,
        tree_depth: int,
        start_h: torch.Tensor,
        active: torch.Tensor,
    ) -> _SubtreeState:
        """Integrate ``2^tree_depth`` leapfrog steps from the point block ``start`` for the
        ``active`` chains."""
        step = step.unsqueeze(-1)
        steps = (step, 0.5 * step)  # once per subtree, not once per leaf
        state = _SubtreeState(
            # A fresh tensor, not an alias of ``start``: compiled code is specialised on
            # aliasing, and this keeps one compiled variant for every leaf.
            point=start.clone(),
            # Any placeholder: the first valid leaf always replaces it (its weight is all there
            # is).
            candidate=_Candidate(torch.zeros_like(start), torch.zeros_like(start_h)),
            log_weight=torch.full_like(start_h, -math.inf),
            momentum_sum=torch.zeros_like(start[MOMENTUM]),
            checkpoints=start.new_zeros((self.max_tree_depth, 3, *start.shape[1:])),
            live=active,
            diverging=torch.zeros_like(active),
            accept_sum=torch.zeros_like(start_h),
            num_steps=torch.zeros_like(start_h, dtype=torch.long),
        )
        last = 2**tree_depth - 1
        for leaf in range(last + 1):
            masks = self._level_masks(tree_depth, leaf, start.device)
            state = self._advance(state, *steps, start_h, *masks)
            # The one host sync per leaf: the loop must stop at the leaf it always stopped at,
            # or the next leaf's random draw would shift every later draw.
            if leaf < last and not bool(state.live.any()):
                break
        return state

    def _level_masks(
        self, tree_depth: int, leaf: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Which levels of balanced sub-trees start (store a checkpoint) and end (check for a
        U-turn) at ``leaf`` of a subtree of depth ``tree_depth``; level k is index k - 1.

        Shaped for the checkpoint block (levels, 3, C, D): the start mask (levels, 3, 1, 1)
        selects the new checkpoint (rows 0 and 2) where a level starts, and always the leaf's
        velocity (row 1); the end mask (levels, 1, 1) keeps the criteria of the levels that end.
        No level ends at an even leaf: there the end mask is None and the U-turn check is
        skipped, except under ``jit_compile``, where a mask of all False keeps one compiled
        variant of the leaf step for every leaf.

        >>> nuts = NUTS(lambda: None, max_tree_depth=3)
        >>> nuts._masks = {}
        >>> starts, ends = nuts._level_masks(2, 3, torch.device("cpu"))  # leaf 3 of 0..3
        >>> starts[:, 0].flatten().tolist(), ends.flatten().tolist()
        ([False, False, False], [True, True, False])
        >>> nuts._level_masks(2, 2, torch.device("cpu"))[1] is None
        True
        """
        key = (tree_depth, leaf, device)
        masks = self._masks.get(key)
        if masks is None:
            levels = range(1, self.max_tree_depth + 1)
            starts = [level <= tree_depth and leaf % 2**level == 0 for level in levels]
            ends = [level <= tree_depth and (leaf + 1) % 2**level == 0 for level in levels]
            start_rows = [[s, True, s] for s in starts]
            ends_mask = torch.tensor(ends, device=device)[:, None, None]
            masks = (
                torch.tensor(start_rows, device=device)[:, :, None, None],
                ends_mask if any(ends) or self.jit_compile else None,
            )
            self._masks[key] = masks
        return masks

    def _make_step_functions(self) -> None:
        super()._make_step_functions()
        self._masks: dict = {}
        advance = functools.partial(
            _advance_leaf, self._energy_and_grad, self.mass, self.max_delta_energy
        )
        self._advance = self._compiled(advance)


def _advance_leaf(
    energy_and_grad,
    mass,
    max_delta_energy: float,
    state: _SubtreeState,
    step: torch.Tensor,
    half_step: torch.Tensor,
    start_h: torch.Tensor,
    starts: torch.Tensor,
    ends: torch.Tensor | None,
) -> _SubtreeState:
    """One leapfrog step of a subtree for the ``live`` chains (the others keep their point);
    ``starts``/``ends`` (from ``NUTS._level_masks``) say which levels of balanced sub-trees
    begin and end at this leaf. Values computed for chains that are not live are never read:
    every update below is masked by ``live`` or by ``valid`` (a subset of it)."""
    live = state.live
    point = state.point
    z, momentum, grad, _ = point.unbind()
    z, momentum, energy, grad = leapfrog_with(
        energy_and_grad, mass, z, momentum, grad, step, half_step
    )
    velocity = mass.velocity(momentum)
    leaf = torch.stack((z, momentum, grad, velocity))
    # -ΔH = H0 - H, exactly the negation of H - H0; NaN counts as an infinite energy error.
    hamiltonian = _hamiltonian(energy, momentum, velocity)
    neg_delta = torch.nan_to_num(start_h - hamiltonian, nan=-math.inf)
    valid = live & (neg_delta >= -max_delta_energy)
    # Multinomial draw inside the subtree: the new leaf wins with its share of the weight.
    new_log_weight = torch.logaddexp(state.log_weight, neg_delta)
    wins = valid & (torch.rand_like(neg_delta).log() < neg_delta - new_log_weight)
    momentum_sum = torch.where(
        valid.unsqueeze(-1), state.momentum_sum + momentum, state.momentum_sum
    )
    # Balanced sub-trees: those starting here checkpoint this leaf; those ending here are
    # checked for a U-turn between their first leaf and this one, all levels at once.
    checkpoints = torch.where(
        starts, torch.stack((velocity, velocity, state.momentum_sum)), state.checkpoints
    )
    if ends is not None:
        rho = momentum_sum - checkpoints.select(1, 2)
        criteria = (checkpoints.narrow(1, 0, 2) * rho.unsqueeze(1)).sum(-1) <= 0  # (levels, 2, C)
        valid_next = valid & ~(criteria & ends).any((0, 1))
    else:
        valid_next = valid
    # The acceptance statistic is finite (0 where ΔH is infinite), so masking is a product.
    accept = neg_delta.clamp(max=0.0).exp() * live
    return _SubtreeState(
        point=torch.where(live.unsqueeze(-1), leaf, point),
        candidate=where_chains(wins, _Candidate(leaf, energy), state.candidate),
        log_weight=torch.where(valid, new_log_weight, state.log_weight),
        momentum_sum=momentum_sum,
        checkpoints=checkpoints,
        live=valid_next,
        diverging=state.diverging | (live ^ valid),
        accept_sum=state.accept_sum + accept,
        num_steps=state.num_steps + live,
    )
