"""Orthonormal changes of basis along one dim: the discrete cosine and the Haar wavelet transforms,
and permutations.

All are rotations or reflections of ``R^n`` (their Jacobian determinant is 1), so they move a
distribution into new coordinates without changing its density: a smooth signal is a few large
low-frequency coefficients in the cosine or the Haar basis. ``DiscreteCosineReparam`` and
``HaarReparam`` use them.

>>> import torch
>>> x = torch.randn(2, 6)
>>> for t in (DiscreteCosineTransform(), HaarTransform()):
...     assert torch.allclose(t.inv(t(x)), x, atol=1e-5)
...     assert torch.allclose(t(x).norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # a rotation
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from engine.errors import ArgumentError


@functools.lru_cache(maxsize=32)
def _cosine_basis(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``B`` (``coefficients = B @ signal``)."""
    k = torch.arange(size, dtype=torch.float64).unsqueeze(-1)
    n = torch.arange(size, dtype=torch.float64)
    basis = torch.cos(math.pi / size * (n + 0.5) * k) * math.sqrt(2.0 / size)
    basis[0] /= math.sqrt(2.0)
    return basis.to(dtype=dtype, device=device)


class RealEventAlongDim:
    """Domain and codomain of a transform of real tensors whose event is the last ``-dim``
    dims (``self.dim`` negative); a base listed before ``Transform``.

    >>> HaarTransform(dim=-2).domain.reinterpreted_batch_ndims
    2
    """

    @property
    def domain(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, -self.dim)

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, -self.dim)


class _AlongDim(RealEventAlongDim, Transform):
    """A bijection of ``R^n`` applied along the negative dim ``dim`` (event dim ``-dim``)."""

    bijective = True

    def __init__(self, dim: int = -1, cache_size: int = 0):
        if not isinstance(dim, int) or dim >= 0:
            raise ValueError(f"{type(self).__name__}(dim=...) takes a negative dim, got {dim!r}")
        self.dim = dim
        super().__init__(cache_size=cache_size)

    def _last(self, x: torch.Tensor, fn) -> torch.Tensor:
        if self.dim == -1:
            return fn(x)
        return fn(x.transpose(self.dim, -1)).transpose(self.dim, -1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[: self.dim])

    def _settings(self) -> tuple:
        """What makes two instances equal; by default also the constructor's positional
        arguments, which ``with_cache`` relies on (a subclass where they differ overrides it)."""
        return (self.dim,)

    def with_cache(self, cache_size: int = 1) -> _AlongDim:
        if self._cache_size == cache_size:
            return self
        return type(self)(*self._settings(), cache_size=cache_size)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._settings() == other._settings()

    def __hash__(self) -> int:
        return hash((type(self), self._settings()))


class DiscreteCosineTransform(_AlongDim):
    """The orthonormal type-II discrete cosine transform along ``dim``.

    ``smooth`` reweights the frequencies by ``(k + 1/2) ** smooth`` (normalised to keep the
    Jacobian 1): 0 maps white noise to white noise, 1 maps Brownian (random-walk) noise to
    roughly white noise.

    >>> import torch
    >>> t = DiscreteCosineTransform()
    >>> bool(torch.allclose(t(torch.ones(4)), torch.tensor([2.0, 0, 0, 0]), atol=1e-6))  # a
    ... # constant signal is all in the first coefficient
    True
    """

    def __init__(self, dim: int = -1, smooth: float = 0.0, cache_size: int = 0):
        self.smooth = float(smooth)
        super().__init__(dim=dim, cache_size=cache_size)

    def _settings(self) -> tuple:
        return (self.dim, self.smooth)

    def _weights(self, y: torch.Tensor) -> torch.Tensor:
        frequency = torch.arange(y.size(-1), dtype=y.dtype, device=y.device) + 0.5
        weights = frequency.pow(self.smooth)
        return weights / weights.log().mean().exp()

    def _forward_last(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ _cosine_basis(x.size(-1), x.dtype, x.device).T
        return y * self._weights(y) if self.smooth else y

    def _inverse_last(self, y: torch.Tensor) -> torch.Tensor:
        if self.smooth:
            y = y / self._weights(y)
        return y @ _cosine_basis(y.size(-1), y.dtype, y.device)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self._last(x, self._forward_last)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._last(y, self._inverse_last)


def _haar(x: torch.Tensor) -> torch.Tensor:
    half = x.size(-1) // 2
    pairs = x[..., : 2 * half]
    first, second = pairs[..., 0::2], pairs[..., 1::2]
    average = (first + second) / math.sqrt(2)
    detail = (first - second) / math.sqrt(2)
    if half >= 2:
        average = _haar(average)
    return torch.cat([average, detail, x[..., 2 * half :]], dim=-1)


def _inverse_haar(y: torch.Tensor) -> torch.Tensor:
    half = y.size(-1) // 2
    average, detail, rest = y[..., :half], y[..., half : 2 * half], y[..., 2 * half :]
    if half >= 2:
        average = _inverse_haar(average)
    first = (average + detail) / math.sqrt(2)
    second = (average - detail) / math.sqrt(2)
    pairs = torch.stack([first, second], dim=-1).reshape(*first.shape[:-1], 2 * half)
    return torch.cat([pairs, rest], dim=-1)


class HaarTransform(_AlongDim):
    """The orthonormal Haar wavelet transform along ``dim``: averages of ever longer blocks first,
    then the differences at each scale (an odd tail is carried over). ``flip=True`` reverses the
    signal first, so the unpaired entry is the first one instead of the last.

    >>> import torch
    >>> y = HaarTransform()(torch.tensor([1.0, 1.0, 3.0, 3.0]))
    >>> bool(torch.allclose(y, torch.tensor([4.0, -2.0, 0.0, 0.0])))
    True
    """

    def __init__(self, dim: int = -1, flip: bool = False, cache_size: int = 0):
        self.flip = bool(flip)
        super().__init__(dim=dim, cache_size=cache_size)

    def _settings(self) -> tuple:
        return (self.dim, self.flip)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            return self._last(x, lambda v: _haar(v.flip(-1)))
        return self._last(x, _haar)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.flip:
            return self._last(y, lambda v: _inverse_haar(v).flip(-1))
        return self._last(y, _inverse_haar)


class Permute(_AlongDim):
    """Reorder the entries along ``dim``: ``y = x[..., permutation]`` (along ``dim``). Used
    between the layers of a normalizing flow so that every coordinate gets transformed.

    >>> import torch
    >>> t = Permute(torch.tensor([2, 0, 1]))
    >>> t(torch.tensor([10.0, 20.0, 30.0])), t.inv(torch.tensor([30.0, 10.0, 20.0]))
    (tensor([30., 10., 20.]), tensor([10., 20., 30.]))
    """

    def __init__(self, permutation: torch.Tensor, *, dim: int = -1, cache_size: int = 1):
        self.permutation = torch.as_tensor(permutation, dtype=torch.long)
        size = self.permutation.numel()
        if not torch.equal(self.permutation.sort().values, torch.arange(size)):
            raise ValueError(f"Permute: {permutation!r} is not a permutation of 0..{size - 1}")
        self.inv_permutation = torch.empty_like(self.permutation)
        self.inv_permutation[self.permutation] = torch.arange(size)
        super().__init__(dim=dim, cache_size=cache_size)

    def _settings(self) -> tuple:
        return (self.dim, tuple(self.permutation.tolist()))

    def with_cache(self, cache_size: int = 1) -> Permute:
        if self._cache_size == cache_size:
            return self
        return Permute(self.permutation, dim=self.dim, cache_size=cache_size)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(self.dim, self.permutation.to(x.device))

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.index_select(self.dim, self.inv_permutation.to(y.device))


def permute(
    input_dim: int | Sequence[int], permutation: torch.Tensor | None = None, dim: int = -1
) -> Permute:
    """A :class:`Permute` of ``input_dim`` entries, random unless ``permutation`` is given.
    With ``dim < -1``, ``input_dim`` may be the event shape from ``dim`` on (``-dim`` sizes,
    as Pyro allows); its first size is the one permuted.

    >>> permute(4).permutation.sort().values
    tensor([0, 1, 2, 3])
    >>> permute((3, 5), dim=-2).permutation.numel()
    3
    """
    if not isinstance(input_dim, int):
        shape = tuple(input_dim)
        if len(shape) != -dim:
            raise ArgumentError(
                f"permute(input_dim={shape}, dim={dim}): give the event shape from dim {dim} "
                f"on, {-dim} sizes, or the size of dim {dim} alone"
            )
        input_dim = shape[0]
    if permutation is None:
        permutation = torch.randperm(input_dim)
    return Permute(permutation, dim=dim)
