"""The state a Hamiltonian kernel carries between iterations, as named types, and the one
per-chain selection between two states.

Every chain moves at once, so each field holds all chains: a (C,) tensor has one value per
chain, and any other tensor has the chain dim second to last (a (C, D) position, or a NUTS point
block (4, C, D)). A Metropolis correction, a multinomial draw along a NUTS trajectory, a masked
leapfrog step: each keeps, per chain, either a proposal or the current state, and
:func:`where_chains` is that choice for any such NamedTuple.

>>> here = ChainPoint(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 3))
>>> there = ChainPoint(torch.ones(2, 3), torch.ones(2), torch.ones(2, 3))
>>> where_chains(torch.tensor([False, True]), there, here).energy.tolist()
[0.0, 1.0]
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import torch

from engine.infer.mcmc.adaptation import WarmupAdapter
from engine.infer.mcmc.keyed_mass import KeyedMass
from engine.infer.mcmc.mass_matrix import MassMatrix

State = TypeVar("State", bound=tuple)


class ChainPoint(NamedTuple):
    """Where every chain is: its unconstrained position ``z`` (C, D), the potential energy there
    (C,) and its gradient (C, D), kept together so that no step computes them twice."""

    z: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


class PhasePoint(NamedTuple):
    """A point of a trajectory, for every chain: the position (C, D), the momentum (C, D), the
    potential energy (C,) and its gradient (C, D), in the order the leapfrog step returns them."""

    z: torch.Tensor
    momentum: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


class HMCState(NamedTuple):
    """What an :class:`~engine.infer.mcmc.HMC` (or ``NUTS``) kernel carries from one iteration to
    the next, for every chain: where it is (``point``), its step size (C,), the mass matrix and
    the warm-up adapter.

    ``HMC.setup_chains`` makes it once; a transition or a new step size replaces it (``_replace``),
    never changes it. The mass matrix and the adapter are objects that warm-up updates in place:
    the compiled leapfrog step holds the mass matrix, so it stays one object for the whole run.

    >>> import engine, engine.distributions as dist
    >>> from engine.infer.mcmc import HMC
    >>> kernel = HMC(lambda: engine.sample("x", dist.Normal(0.0, 1.0)), step_size=0.5)
    >>> kernel.setup_chains(num_chains=2, num_warmup=0)
    >>> kernel.state.point.z.shape, kernel.state.step_size.tolist()
    (torch.Size([2, 1]), [0.5, 0.5])
    """

    point: ChainPoint
    step_size: torch.Tensor
    mass: MassMatrix | KeyedMass
    adapter: WarmupAdapter


def where_chains(mask: torch.Tensor, chosen: State, other: State) -> State:
    """Per chain, ``chosen`` where ``mask`` (C,) holds, else ``other``: one ``torch.where`` per
    field of two NamedTuples of one type. A (C,) field takes the mask as it is; any other field
    has the chain dim second to last, so it takes the mask as a column.

    >>> class Pair(NamedTuple):
    ...     block: torch.Tensor
    ...     energy: torch.Tensor
    >>> mine = Pair(torch.zeros(4, 2, 3), torch.zeros(2))
    >>> theirs = Pair(torch.ones(4, 2, 3), torch.ones(2))
    >>> picked = where_chains(torch.tensor([True, False]), mine, theirs)
    >>> picked.block[:, :, 0].tolist(), picked.energy.tolist()
    ([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]], [0.0, 1.0])
    """
    # A plain loop, not a comprehension: this runs once per NUTS leaf, and the comprehension's
    # own frame measured about 1 µs there.
    column = mask.unsqueeze(-1)
    picked = []
    for mine, theirs in zip(chosen, other, strict=True):
        picked.append(torch.where(column if mine.dim() > 1 else mask, mine, theirs))
    return type(chosen)(*picked)
