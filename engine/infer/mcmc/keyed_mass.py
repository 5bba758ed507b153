"""The mass matrix of every chain when a mass-matrix adapter sets it: one
:class:`~engine.infer.mcmc.mass_matrix.MassMatrix` per key of the adapter (a tuple of site
names), each over its sites' coordinates of the flat unconstrained vector.

An adapter (:class:`~engine.infer.mcmc.BlockMassMatrix`,
:class:`~engine.infer.mcmc.ArrowheadMassMatrix` or a user's own) says, per key, the inverse mass
matrix of one chain: a vector (diagonal) or a matrix (dense) over the key's sites, flattened and
joined in the key's order. The kernel's step needs the same algebra as with one flat matrix
(velocity ``M⁻¹ r``, kinetic energy, momentum draws ``r ~ N(0, M)``) for all chains at once:
:class:`KeyedMass` gathers each key's coordinates, applies that key's matrix, and scatters the
result back, so a block structure costs what its blocks cost (a large diagonal rest next to a
small dense block stays a vector).

>>> import torch
>>> mass = KeyedMass({("b", "a"): torch.tensor([2, 0, 1]), ("c",): torch.tensor([3])},
...                  num_chains=1, dense={("b", "a"): True, ("c",): False})
>>> mass.set_inverse_by_key({("b", "a"): torch.diag(torch.tensor([[2.0, 3.0, 4.0]])[0])[None],
...                          ("c",): torch.tensor([[5.0]])})
>>> mass.velocity(torch.ones(1, 4))  # coordinates 2, 0, 1 scaled by 2, 3, 4; coordinate 3 by 5
tensor([[3., 4., 2., 5.]])
>>> mass.inverse.diagonal(dim1=-2, dim2=-1)  # the whole flat matrix, for inspection
tensor([[3., 4., 2., 5.]])
"""

from __future__ import annotations

import torch

from engine.infer.mcmc.mass_matrix import MassMatrix

Block = tuple[str, ...]


class KeyedMass:
    """Every chain's mass matrix, one :class:`MassMatrix` per key. ``index`` maps each key to
    its coordinates of the flat vector (in the key's order); together the keys must cover every
    coordinate exactly once (at least one). ``dense`` says which keys hold a matrix."""

    def __init__(
        self,
        index: dict[Block, torch.Tensor],
        num_chains: int,
        dense: dict[Block, bool],
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        self.keys = list(index)
        order = torch.cat([index[key].to(device=device, dtype=torch.long) for key in self.keys])
        self.dim = order.numel()
        if not torch.equal(order.sort().values, torch.arange(self.dim, device=order.device)):
            raise ValueError(
                f"the keys {self.keys} must cover each coordinate of the {self.dim} latent "
                "coordinates exactly once"
            )
        # When the keys already list the coordinates in flat order, no gather is needed.
        self._in_order = torch.equal(order, torch.arange(self.dim, device=order.device))
        self._order, self._unorder = order, order.argsort()
        self._sizes = [int(index[key].numel()) for key in self.keys]
        self._index = {key: index[key].to(device=device, dtype=torch.long) for key in self.keys}
        self.masses = {
            key: MassMatrix(num_chains, size, dense[key], dtype=dtype, device=device)
            for key, size in zip(self.keys, self._sizes, strict=True)
        }
        self.dense = any(dense.values())

    def set_inverse_by_key(self, inverses: dict[Block, torch.Tensor]) -> None:
        """Use each key's inverse mass, (C, size) for a diagonal key or (C, size, size) for a
        dense one (per chain)."""
        for key in self.keys:
            self.masses[key].set_inverse(inverses[key])

    def inverse_by_key(self) -> dict[Block, torch.Tensor]:
        """Each key's inverse mass per chain."""
        return {key: self.masses[key].inverse for key in self.keys}

    @property
    def inverse(self) -> torch.Tensor:
        """The whole inverse mass over the flat vector, for inspection: (C, D) when every key
        is diagonal, else (C, D, D) (zero between keys)."""
        first = self.masses[self.keys[0]].inverse
        chains = first.shape[0]
        if not self.dense:
            joined = torch.cat([self.masses[key].inverse for key in self.keys], -1)
            return joined[..., self._unorder]
        whole = first.new_zeros(chains, self.dim, self.dim)
        for key in self.keys:
            index, inverse = self._index[key], self.masses[key].inverse
            if not self.masses[key].dense:
                inverse = torch.diag_embed(inverse)
            whole[:, index.unsqueeze(-1), index] = inverse
        return whole

    def _split(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (flat if self._in_order else flat[..., self._order]).split(self._sizes, -1)

    def _join(self, parts: list[torch.Tensor]) -> torch.Tensor:
        joined = torch.cat(parts, -1)
        return joined if self._in_order else joined[..., self._unorder]

    def velocity(self, momentum: torch.Tensor) -> torch.Tensor:
        """``M⁻¹ r`` per chain, (C, D)."""
        parts = self._split(momentum)
        return self._join(
            [self.masses[key].velocity(part) for key, part in zip(self.keys, parts, strict=True)]
        )

    def kinetic_energy(self, momentum: torch.Tensor) -> torch.Tensor:
        """``½ rᵀ M⁻¹ r`` per chain, shape (C,)."""
        return 0.5 * (momentum * self.velocity(momentum)).sum(-1)

    def sample_momentum(self) -> torch.Tensor:
        """A fresh momentum ``r ~ N(0, M)`` per chain, (C, D): each key's own draw."""
        return self._join([self.masses[key].sample_momentum() for key in self.keys])
