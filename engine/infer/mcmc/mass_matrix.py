"""The mass matrix of HMC, one per chain, and the running estimate warm-up adapts it from.

HMC draws a momentum ``r ~ N(0, M)`` and moves with velocity ``M⁻¹ r``. The best ``M⁻¹`` is the
posterior covariance (in unconstrained space), so warm-up estimates that covariance from its
draws (:class:`WelfordCovariance`) and sets it as the inverse mass. Both are diagonal (a vector
per chain) or dense (a matrix per chain); every chain has its own.

>>> import torch
>>> mass = MassMatrix(num_chains=2, dim=3, dense=False)
>>> r = mass.sample_momentum()
>>> r.shape, mass.kinetic_energy(torch.ones(2, 3))
(torch.Size([2, 3]), tensor([1.5000, 1.5000]))
"""

from __future__ import annotations

import torch


class MassMatrix:
    """The inverse mass ``M⁻¹`` of each chain: shape (C, D) when diagonal, (C, D, D) when dense."""

    def __init__(
        self,
        num_chains: int,
        dim: int,
        dense: bool,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        self.dense = dense
        if dense:
            eye = torch.eye(dim, dtype=dtype, device=device)
            self.set_inverse(eye.expand(num_chains, dim, dim).clone())
        else:
            self.set_inverse(torch.ones(num_chains, dim, dtype=dtype, device=device))

    def set_inverse(self, inverse: torch.Tensor) -> None:
        """Use ``inverse`` as ``M⁻¹`` (per chain)."""
        self.inverse = inverse
        if self.dense:
            # r ~ N(0, M) with M = (L Lᵀ)⁻¹ for the Cholesky factor L of M⁻¹: r = L⁻ᵀ ε.
            self._inverse_cholesky = torch.linalg.cholesky(inverse)
        else:
            self._momentum_scale = inverse.rsqrt()

    def velocity(self, momentum: torch.Tensor) -> torch.Tensor:
        """``M⁻¹ r`` per chain."""
        if self.dense:
            return (self.inverse @ momentum.unsqueeze(-1)).squeeze(-1)
        return self.inverse * momentum

    def kinetic_energy(self, momentum: torch.Tensor) -> torch.Tensor:
        """``½ rᵀ M⁻¹ r`` per chain, shape (C,)."""
        return 0.5 * (momentum * self.velocity(momentum)).sum(-1)

    def sample_momentum(self) -> torch.Tensor:
        """A fresh momentum ``r ~ N(0, M)`` per chain, shape (C, D)."""
        noise = torch.randn(
            self.inverse.shape[:2], dtype=self.inverse.dtype, device=self.inverse.device
        )
        return self.momentum_from_noise(noise)

    def momentum_from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """``M^½ ε`` per chain: a standard normal ``ε`` (C, D) made a momentum ``r ~ N(0, M)``.

        >>> mass = MassMatrix(1, 2, dense=True)
        >>> mass.set_inverse(torch.tensor([[[4.0, 1.0], [1.0, 2.0]]]))
        >>> r = mass.momentum_from_noise(torch.ones(1, 2))
        >>> torch.allclose(mass.noise_from_momentum(r), torch.ones(1, 2))
        True
        """
        if self.dense:
            upper = self._inverse_cholesky.transpose(-1, -2)
            return torch.linalg.solve_triangular(upper, noise.unsqueeze(-1), upper=True).squeeze(-1)
        return self._momentum_scale * noise

    def noise_from_momentum(self, momentum: torch.Tensor) -> torch.Tensor:
        """``M^-½ r`` per chain: undoes :meth:`momentum_from_noise` (the same factor of ``M``)."""
        if self.dense:
            upper = self._inverse_cholesky.transpose(-1, -2)
            return (upper @ momentum.unsqueeze(-1)).squeeze(-1)
        return momentum / self._momentum_scale


class WelfordCovariance:
    """Running mean and (co)variance of each chain's draws, regularised as Stan does.

    >>> import torch
    >>> estimate = WelfordCovariance(num_chains=1, dim=2, dense=False)
    >>> for x in ([0.0, 1.0], [2.0, 1.0], [4.0, 1.0]):
    ...     estimate.update(torch.tensor([x]))
    >>> estimate.count, estimate.covariance(regularize=False)
    (3, tensor([[4., 0.]]))
    """

    def __init__(
        self,
        num_chains: int,
        dim: int,
        dense: bool,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        self.dense = dense
        self._shape = (num_chains, dim, dim) if dense else (num_chains, dim)
        self._mean = torch.zeros(num_chains, dim, dtype=dtype, device=device)
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self._mean = torch.zeros_like(self._mean)
        self._m2 = self._mean.new_zeros(self._shape)

    def update(self, draws: torch.Tensor) -> None:
        """Add one draw per chain, shape (C, D)."""
        self.count += 1
        delta = draws - self._mean
        self._mean = self._mean + delta / self.count
        after = draws - self._mean
        if self.dense:
            self._m2 = self._m2 + delta.unsqueeze(-1) * after.unsqueeze(-2)
        else:
            self._m2 = self._m2 + delta * after

    @property
    def mean(self) -> torch.Tensor:
        """The running mean per chain, shape (C, D)."""
        return self._mean

    def merged(self, other: WelfordCovariance) -> WelfordCovariance:
        """A new estimate of both sets of draws together (Chan et al.'s pairwise update).

        >>> a, b, both = (WelfordCovariance(1, 1, dense=False) for _ in range(3))
        >>> for x in (1.0, 2.0):
        ...     a.update(torch.tensor([[x]])); both.update(torch.tensor([[x]]))
        >>> for x in (4.0, 8.0, 9.0):
        ...     b.update(torch.tensor([[x]])); both.update(torch.tensor([[x]]))
        >>> torch.allclose(a.merged(b).covariance(False), both.covariance(False))
        True
        """
        merged = WelfordCovariance.__new__(WelfordCovariance)
        merged.dense, merged._shape = self.dense, self._shape
        merged.count = self.count + other.count
        if merged.count == 0:
            merged._mean, merged._m2 = self._mean.clone(), self._m2.clone()
            return merged
        delta = other._mean - self._mean
        weight = other.count / merged.count
        merged._mean = self._mean + delta * weight
        cross = delta.unsqueeze(-1) * delta.unsqueeze(-2) if self.dense else delta * delta
        merged._m2 = self._m2 + other._m2 + cross * (self.count * weight)
        return merged

    def covariance(self, regularize: bool = True) -> torch.Tensor:
        """The sample (co)variance per chain; regularised towards a small multiple of the
        identity, ``n/(n+5) Σ + 1e-3 · 5/(n+5) I``, so a short window cannot give a singular or
        wildly small estimate."""
        n = self.count
        cov = self._m2 / max(n - 1, 1)
        if not regularize:
            return cov
        shrink = 1e-3 * 5.0 / (n + 5.0)
        cov = cov * (n / (n + 5.0))
        if self.dense:
            eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
            return cov + shrink * eye
        return cov + shrink
