"""HMC and NUTS driven by a mass-matrix adapter (Pyro's ``kernel.mass_matrix_adapter``): the
layout of the mass matrix by blocks of sites that ``full_mass`` asks for, one adapter per chain,
and the :class:`~engine.infer.mcmc.keyed_mass.KeyedMass` they set.

Pyro's layout: ``full_mass=True`` is one dense block of every latent site, ``False`` one diagonal
block; a list of tuples of site names makes each tuple a dense block, in the order given, and
the other sites one diagonal block after them. Site names within a block of all sites (or of the
rest) are sorted, as Pyro orders them.

Pyro's adapter follows one chain. Chains here move together, so each chain gets its own adapter:
the kernel's (the user's object) follows the first chain and deep copies of it the others.

>>> mass_matrix_shape([("b", "a")], {"a": 1, "b": 2, "c": 3, "d": 1})
{('b', 'a'): (3, 3), ('c', 'd'): (4,)}
>>> mass_matrix_shape(True, {"b": 2, "a": 1})
{('a', 'b'): (3, 3)}
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from engine.errors import MCMCError
from engine.infer.mcmc.keyed_mass import Block, KeyedMass

Values = dict[str, torch.Tensor]


def mass_matrix_shape(
    full_mass: bool | list[tuple[str, ...]], sizes: dict[str, int]
) -> dict[Block, tuple[int, ...]]:
    """The shape of the mass matrix of each block (Pyro's ``mass_matrix_shape``): ``(n, n)``
    for a dense block, ``(n,)`` for the diagonal one, given each latent site's unconstrained
    size (``sizes``). Names in ``full_mass`` that are no latent site, or that two blocks share,
    are refused."""
    if full_mass is True:
        blocks = [tuple(sorted(sizes))] if sizes else []
    elif full_mass is False:
        blocks = []
    else:
        blocks = [tuple(block) for block in full_mass]
    seen: set[str] = set()
    for block in blocks:
        if not block:
            raise MCMCError("full_mass holds an empty block; each block names at least one site.")
        unknown = [name for name in block if name not in sizes]
        if unknown:
            raise MCMCError(
                f"full_mass names {unknown}, which {'is' if len(unknown) == 1 else 'are'} not a "
                f"latent site of the model; its latent sites are {list(sizes)}."
            )
        twice = [name for name in block if name in seen or block.count(name) > 1]
        if twice:
            raise MCMCError(
                f"full_mass names {sorted(set(twice))} in more than one place; each site "
                f"belongs to at most one block (got {blocks})."
            )
        seen.update(block)
    shapes: dict[Block, tuple[int, ...]] = {}
    for block in blocks:
        size = sum(sizes[name] for name in block)
        shapes[block] = (size, size)
    rest = tuple(sorted(name for name in sizes if name not in seen))
    if rest:
        shapes[rest] = (sum(sizes[name] for name in rest),)
    return shapes


class ChainAdapters:
    """One configured adapter per chain and the chains' :class:`KeyedMass`.

    ``adapter`` is configured with ``shapes`` (and ``adapt``, the kernel's
    ``adapt_mass_matrix``), then copied for every other chain; the keys of its
    ``inverse_mass_matrix`` (an :class:`~engine.infer.mcmc.ArrowheadMassMatrix` joins all
    sites in one key) index the flat vector through ``ranges`` (each site's coordinates).

    >>> from engine.infer.mcmc import BlockMassMatrix
    >>> chains = ChainAdapters(BlockMassMatrix(init_scale=2.0), {("x",): (2, 2)},
    ...                        {"x": range(0, 2)}, num_chains=3, adapt=True,
    ...                        dtype=torch.float32, device=torch.device("cpu"))
    >>> chains.mass.inverse.shape, chains.inverse_mass_matrix()[("x",)][0, 0].tolist()
    (torch.Size([3, 2, 2]), [2.0, 0.0])
    """

    def __init__(
        self,
        adapter: Any,
        shapes: dict[Block, tuple[int, ...]],
        ranges: dict[str, range],
        num_chains: int,
        adapt: bool,
        dtype: torch.dtype,
        device: torch.device,
    ):
        self.dtype, self.device = dtype, device
        adapter.configure(
            shapes, adapt_mass_matrix=adapt, options={"dtype": dtype, "device": device}
        )
        self.adapters = [adapter] + [copy.deepcopy(adapter) for _ in range(num_chains - 1)]
        first = adapter.inverse_mass_matrix
        index, dense = {}, {}
        for key, inverse in first.items():
            key = tuple(key)
            unknown = [name for name in key if name not in ranges]
            if unknown:
                raise MCMCError(
                    f"{type(adapter).__name__}.inverse_mass_matrix has the key {key}, whose "
                    f"{unknown} {'is' if len(unknown) == 1 else 'are'} not a latent site; the "
                    f"latent sites are {list(ranges)}."
                )
            index[key] = torch.tensor([i for name in key for i in ranges[name]], device=device)
            size = index[key].numel()
            if tuple(inverse.shape) not in ((size,), (size, size)):
                raise MCMCError(
                    f"{type(adapter).__name__}.inverse_mass_matrix[{key}] has shape "
                    f"{tuple(inverse.shape)}; over those sites it must be ({size},) (diagonal) "
                    f"or ({size}, {size}) (dense)."
                )
            dense[key] = inverse.dim() == 2
        try:
            self.mass = KeyedMass(index, num_chains, dense, dtype=dtype, device=device)
        except ValueError as error:
            raise MCMCError(
                f"The blocks of {type(adapter).__name__} do not cover the latent sites "
                f"{list(ranges)} once each: {error}."
            ) from None
        self.mass.set_inverse_by_key(self._stacked())

    def _stacked(self) -> dict[Block, torch.Tensor]:
        """Every chain's inverse mass by key, stacked along a leading chain dim."""
        by_chain = [adapter.inverse_mass_matrix for adapter in self.adapters]
        options = {"device": self.device, "dtype": self.dtype}
        return {
            key: torch.stack([inverses[key] for inverses in by_chain]).to(**options)
            for key in self.mass.keys
        }

    def update(self, z: Values, z_grad: Values) -> None:
        """Feed each chain's adapter its draw and the potential's gradient there (each value
        with a leading chain dim)."""
        for chain, adapter in enumerate(self.adapters):
            adapter.update(
                {name: value[chain] for name, value in z.items()},
                {name: value[chain] for name, value in z_grad.items()},
            )

    def end_window(self) -> None:
        """Close an adaptation window: each adapter sets its new matrices, which the chains
        use from now on."""
        for adapter in self.adapters:
            adapter.end_adaptation()
        self.mass.set_inverse_by_key(self._stacked())

    def inverse_mass_matrix(self) -> dict[Block, torch.Tensor]:
        """Each key's inverse mass, with a leading chain dim."""
        return self.mass.inverse_by_key()
