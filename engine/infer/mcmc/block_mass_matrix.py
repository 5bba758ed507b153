"""Pyro's public mass-matrix adapters, :class:`BlockMassMatrix` and :class:`ArrowheadMassMatrix`:
one chain's mass matrix keyed by blocks of sites, with the algebra a Hamiltonian step needs.

Both keep their matrices in :class:`~engine.infer.mcmc.mass_matrix.MassMatrix` (one chain) and
estimate them with :class:`~engine.infer.mcmc.mass_matrix.WelfordCovariance`, the estimator the
batched HMC/NUTS kernels adapt from; they differ in what they estimate:

- :class:`BlockMassMatrix`: the inverse mass of each block is the covariance of its *draws*
  (dense for a block configured with a matrix shape, diagonal for a vector shape);
- :class:`ArrowheadMassMatrix`: the mass matrix itself is the covariance of the *gradients* of the
  potential (for a Gaussian posterior ``Cov(∇U) = Σ⁻¹``), kept in arrowhead form: a dense head
  over the sites of the dense blocks, their cross terms with every other site, and a diagonal
  for the rest. All sites share one key, the head's sites first.

Values travel as dicts: ``update(z, z_grad)`` and ``kinetic_grad(r)`` take and give tensors by
site name; :meth:`~BlockMassMatrix.scale` turns standard-normal noise by block into a momentum
by site and :meth:`~BlockMassMatrix.unscale` goes back.

>>> import torch
>>> adapter = BlockMassMatrix()
>>> adapter.configure({("a",): (2,), ("b", "c"): (2, 2)})
>>> adapter.inverse_mass_matrix[("a",)]
tensor([1., 1.])
>>> for x in ([1.0, 2.0], [3.0, 2.0], [5.0, 2.0]):
...     adapter.update({"a": torch.tensor(x), "b": torch.zeros(1), "c": torch.zeros(1)}, None)
>>> adapter.end_adaptation()  # variance 4 and 0, shrunk as Stan does: 4 · 3/8 + 1e-3 · 5/8
>>> adapter.inverse_mass_matrix[("a",)]
tensor([1.5006e+00, 6.2500e-04])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import torch

from engine.infer.mcmc.mass_matrix import MassMatrix, WelfordCovariance

Block = tuple[str, ...]
Values = dict[str, torch.Tensor]


class _Entry:
    """One key's matrix and running estimate."""

    def __init__(self, sites: Block, size: int, dense: bool, options: dict[str, Any]):
        self.sites = sites
        self.mass = MassMatrix(1, size, dense, **options)
        self.estimate = WelfordCovariance(1, size, dense, **options)


class _KeyedMassMatrix(ABC):
    """What both adapters share: the keys, the flattening of values by site into one vector per
    key, and the Hamiltonian algebra on the per-key :class:`MassMatrix`."""

    #: which argument of :meth:`update` is estimated: ``"z"`` (draws) or ``"z_grad"``
    _estimated = "z"

    def __init__(self, init_scale: float = 1.0):
        self._init_scale = float(init_scale)
        self._adapt = True
        self._entries: dict[Block, _Entry] = {}

    def configure(
        self,
        mass_matrix_shape: dict[Block, tuple[int, ...]],
        adapt_mass_matrix: bool = True,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Set up the initial matrices. ``mass_matrix_shape`` maps each block (a tuple of site
        names) to ``(size,)`` for a diagonal or ``(size, size)`` for a dense matrix;
        ``options`` are tensor options (``dtype``, ``device``); with ``adapt_mass_matrix=False``
        :meth:`update` and :meth:`end_adaptation` leave the matrices alone."""
        for block, shape in mass_matrix_shape.items():
            if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != shape[1]):
                raise ValueError(
                    f"the mass matrix of block {block} must have shape (size,) (diagonal) or "
                    f"(size, size) (dense), got {tuple(shape)}"
                )
        self._adapt = adapt_mass_matrix
        self._entries = self._layout(dict(mass_matrix_shape), dict(options or {}))

    @abstractmethod
    def _layout(
        self, shapes: dict[Block, tuple[int, ...]], options: dict[str, Any]
    ) -> dict[Block, _Entry]:
        """The keys and their initial matrices."""

    @property
    def mass_matrix_size(self) -> dict[Block, int]:
        """The size of each key's matrix."""
        return {key: entry.mass.inverse.shape[1] for key, entry in self._entries.items()}

    @property
    def inverse_mass_matrix(self) -> dict[Block, torch.Tensor]:
        """Each key's inverse mass matrix: a vector (diagonal) or a matrix (dense)."""
        return {key: entry.mass.inverse[0] for key, entry in self._entries.items()}

    def update(self, z: Values, z_grad: Values | None) -> None:
        """Feed one warm-up state: the draw ``z`` and the potential's gradient ``z_grad`` there
        (by site); only the one the adapter estimates from is read."""
        if not self._adapt:
            return
        values = z if self._estimated == "z" else z_grad
        if values is None:
            raise ValueError(f"{type(self).__name__}.update needs {self._estimated}")
        for entry in self._entries.values():
            entry.estimate.update(_flat(values, entry.sites)[None])

    def end_adaptation(self) -> None:
        """Close an adaptation window: the estimate becomes the matrix and starts afresh."""
        if not self._adapt:
            return
        for entry in self._entries.values():
            self._set_from_estimate(entry, entry.estimate.covariance()[0])
            entry.estimate.reset()

    @abstractmethod
    def _set_from_estimate(self, entry: _Entry, covariance: torch.Tensor) -> None:
        """Turn a closed window's estimate into the key's matrix."""

    def kinetic_grad(self, r: Values) -> Values:
        """``M⁻¹ r``, the gradient of the kinetic energy in the momentum (by site)."""
        velocity = {}
        for entry in self._entries.values():
            flat = entry.mass.velocity(_flat(r, entry.sites)[None])[0]
            velocity.update(_unflat(flat, entry.sites, r))
        return velocity

    def scale(self, r_unscaled: dict[Block, torch.Tensor], r_prototype: Values) -> Values:
        """``M^½ ε``: standard-normal noise by key made a momentum ``r ~ N(0, M)``, by site
        shaped like ``r_prototype``."""
        momentum = {}
        for key, entry in self._entries.items():
            flat = entry.mass.momentum_from_noise(r_unscaled[key][None])[0]
            momentum.update(_unflat(flat, entry.sites, r_prototype))
        return momentum

    def unscale(self, r: Values) -> dict[Block, torch.Tensor]:
        """``M^-½ r``: a momentum by site back to the noise by key (undoes :meth:`scale`)."""
        return {
            key: entry.mass.noise_from_momentum(_flat(r, entry.sites)[None])[0]
            for key, entry in self._entries.items()
        }


class BlockMassMatrix(_KeyedMassMatrix):
    """A block-diagonal mass matrix: each block of sites has its own inverse mass, dense or
    diagonal, adapted to the covariance of the block's draws. ``init_scale`` is the initial
    inverse mass (times the identity), as in Pyro.

    >>> adapter = BlockMassMatrix(init_scale=2.0)
    >>> adapter.configure({("x", "y"): (2, 2)})
    >>> adapter.inverse_mass_matrix = {("x", "y"): torch.tensor([[4.0, 1.0], [1.0, 2.0]])}
    >>> adapter.kinetic_grad({"x": torch.ones(1), "y": torch.ones(1)})
    {'x': tensor([5.]), 'y': tensor([3.])}
    """

    def _layout(
        self, shapes: dict[Block, tuple[int, ...]], options: dict[str, Any]
    ) -> dict[Block, _Entry]:
        entries = {}
        for block, shape in shapes.items():
            entry = _Entry(tuple(block), shape[0], len(shape) == 2, options)
            entry.mass.set_inverse(entry.mass.inverse * self._init_scale)
            entries[tuple(block)] = entry
        return entries

    @property
    def inverse_mass_matrix(self) -> dict[Block, torch.Tensor]:
        """Each block's inverse mass matrix (settable with a dict of the same keys)."""
        return super().inverse_mass_matrix

    @inverse_mass_matrix.setter
    def inverse_mass_matrix(self, value: dict[Block, torch.Tensor]) -> None:
        for key, inverse in value.items():
            entry = self._entries.get(tuple(key))
            if entry is None:
                raise KeyError(f"no block {key}; the blocks are {list(self._entries)}")
            expected = entry.mass.inverse.shape[1:]
            if inverse.shape != expected:
                raise ValueError(
                    f"the inverse mass matrix of block {key} must have shape {tuple(expected)}, "
                    f"got {tuple(inverse.shape)}"
                )
            entry.mass.set_inverse(inverse[None])

    def _set_from_estimate(self, entry: _Entry, covariance: torch.Tensor) -> None:
        entry.mass.set_inverse(covariance[None])


class ArrowheadMatrix(NamedTuple):
    """A symmetric arrowhead matrix: its first rows ``top`` (the head's rows, every column) and
    the diagonal of the rest ``bottom_diag``; every other entry is zero.

    >>> ArrowheadMatrix(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([3.0, 4.0])).to_dense()
    tensor([[2., 1., 0.],
            [1., 3., 0.],
            [0., 0., 4.]])
    """

    top: torch.Tensor
    bottom_diag: torch.Tensor

    def to_dense(self) -> torch.Tensor:
        """The full symmetric matrix."""
        head = self.top.shape[0]
        dense = torch.diag_embed(torch.cat([self.top.diagonal()[:head], self.bottom_diag]))
        dense[:head] = self.top
        dense[:, :head] = self.top.transpose(-1, -2)
        return dense


class ArrowheadMassMatrix(_KeyedMassMatrix):
    """A mass matrix of arrowhead form over all sites, adapted to the covariance of the
    potential's gradients: dense among the sites of the blocks configured with a matrix shape
    (the head, e.g. ``full_mass=[("w",), ("x", "y")]``), and between those and every other
    site, diagonal among the others. All sites share one key, the head's sites first. Its
    inverse is dense when there is a head, else a vector. ``init_scale`` is the initial *mass*
    (times the identity), as in Pyro.

    >>> adapter = ArrowheadMassMatrix()
    >>> adapter.configure({("a",): (1,), ("b",): (2, 2)})
    >>> list(adapter.inverse_mass_matrix)
    [('b', 'a')]
    >>> adapter.mass_matrix[("b", "a")].top.shape, adapter.mass_matrix[("b", "a")].bottom_diag
    (torch.Size([2, 3]), tensor([1.]))
    """

    _estimated = "z_grad"

    def _layout(
        self, shapes: dict[Block, tuple[int, ...]], options: dict[str, Any]
    ) -> dict[Block, _Entry]:
        head = [(block, shape) for block, shape in shapes.items() if len(shape) == 2]
        rest = [(block, shape) for block, shape in shapes.items() if len(shape) == 1]
        sites = tuple(name for block, _ in [*head, *rest] for name in block)
        self._head_size = sum(shape[0] for _, shape in head)
        size = self._head_size + sum(shape[0] for _, shape in rest)
        entry = _Entry(sites, size, self._head_size > 0, options)
        mass = entry.mass.inverse.new_ones(size) * self._init_scale
        self._mass = ArrowheadMatrix(torch.diag(mass)[: self._head_size], mass[self._head_size :])
        entry.mass.set_inverse(self._inverse_of(self._mass)[None])
        return {sites: entry}

    @property
    def mass_matrix(self) -> dict[Block, ArrowheadMatrix]:
        """The mass matrix itself, in arrowhead form (``top`` and ``bottom_diag``)."""
        return {key: self._mass for key in self._entries}

    def _inverse_of(self, mass: ArrowheadMatrix) -> torch.Tensor:
        if self._head_size == 0:
            return mass.bottom_diag.reciprocal()
        return torch.linalg.inv(mass.to_dense())

    def _set_from_estimate(self, entry: _Entry, covariance: torch.Tensor) -> None:
        head = self._head_size
        if head == 0:
            self._mass = ArrowheadMatrix(covariance.new_zeros(0, covariance.shape[0]), covariance)
        else:
            self._mass = ArrowheadMatrix(covariance[:head], covariance.diagonal()[head:])
        entry.mass.set_inverse(self._inverse_of(self._mass)[None])


def _flat(values: Values, sites: Block) -> torch.Tensor:
    """The sites' values, flattened and joined in the block's order."""
    return torch.cat([values[name].reshape(-1) for name in sites])


def _unflat(flat: torch.Tensor, sites: Block, prototype: Values) -> Values:
    """Split a block's vector back into values by site, shaped like ``prototype``'s."""
    shapes = [prototype[name].shape for name in sites]
    pieces = flat.split([shape.numel() for shape in shapes])
    pairs = zip(sites, pieces, shapes, strict=True)
    return {name: piece.reshape(shape) for name, piece, shape in pairs}
