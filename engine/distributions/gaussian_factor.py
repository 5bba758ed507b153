"""Gaussian factors in information form: the algebra behind the engine's Gaussian HMMs.

A factor over ``x`` in ``R^n`` is the unnormalized log density

    log f(x) = const + info . x - x' precision x / 2,

batched over leading dims. Multiplying factors adds their parts; fixing some of the variables
(:meth:`GaussianFactor.condition`) or integrating a block of them out
(:meth:`GaussianFactor.marginalize`) leaves a factor over the rest; integrating all of them
(:meth:`GaussianFactor.integrate`) leaves the log of a number. ``GaussianHMM``, ``GaussianMRF``
and the Gamma-Gaussian factors of ``GammaGaussianHMM`` are these few moves along a chain of time
steps. A private helper of the engine's distributions.

Precisions are kept at their own batch shape: conditioning on a batch of values (draws, data)
only gives ``info`` and ``const`` the extra dims, so the Cholesky factorizations are done once
per distinct precision rather than once per value.

>>> import torch, engine.distributions as dist
>>> f = from_mvn(dist.MultivariateNormal(torch.zeros(2), torch.eye(2)))
>>> abs(float(f.integrate())) < 1e-6  # a normalized density integrates to one
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from engine.distributions.util import broadcast_shape
from engine.errors import ArgumentError

LOG_2PI = math.log(2 * math.pi)


def _mv(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """Matrix times vector over broadcast batch dims."""
    return (matrix @ vector.unsqueeze(-1)).squeeze(-1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def _cholesky(precision: torch.Tensor) -> torch.Tensor:
    """The lower Cholesky factor of a batch of precision matrices, with a readable error for
    one that is not positive definite (a degenerate Gaussian that cannot be integrated)."""
    tril, info = torch.linalg.cholesky_ex(precision)
    if bool((info > 0).any()):
        raise ArgumentError(
            "A Gaussian factor met in an HMM computation has a precision matrix that is not "
            "positive definite, so the hidden state cannot be integrated out. Check that the "
            "covariances given to the distribution are positive definite (not singular) and "
            "that the default dtype has enough precision (float64 for ill-conditioned models)."
        )
    return tril


def _solve_triangular(tril: torch.Tensor, rhs: torch.Tensor, transpose: bool) -> torch.Tensor:
    """``tril^-1 rhs`` (``tril^-T rhs`` with ``transpose``) for a lower-triangular ``tril``,
    batch dims broadcast. The batch dims of ``rhs`` that ``tril`` is shared across (draws,
    data batches) are folded into the columns, so a shared factor is never copied per draw."""
    n, k = rhs.shape[-2:]
    batch = broadcast_shape(tril.shape[:-2], rhs.shape[:-2])
    rank = len(batch)
    tril_batch = (1,) * (rank - (tril.dim() - 2)) + tuple(tril.shape[:-2])
    fold = [i for i in range(rank) if tril_batch[i] == 1 and batch[i] != 1]
    keep = [i for i in range(rank) if i not in fold]
    keep_shape = [batch[i] for i in keep]
    rhs = rhs.expand((*batch, n, k))
    if fold:
        order = [*keep, rank, *fold, rank + 1]
        rhs = rhs.permute(order).reshape([*keep_shape, n, -1])
    tril = tril.reshape([tril_batch[i] for i in keep] + [n, n]).expand([*keep_shape, n, n])
    solution = torch.linalg.solve_triangular(tril.mT if transpose else tril, rhs, upper=transpose)
    if fold:
        solution = solution.reshape(keep_shape + [n] + [batch[i] for i in fold] + [k])
        inverse = sorted(range(len(order)), key=order.__getitem__)
        solution = solution.permute(inverse)
    return solution


def _solve_lower(tril: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``tril^-1 rhs`` for a lower-triangular ``tril``, batch dims broadcast."""
    return _solve_triangular(tril, rhs, transpose=False)


def _solve_upper_t(tril: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``tril^-T rhs`` for a lower-triangular ``tril``, batch dims broadcast."""
    return _solve_triangular(tril, rhs, transpose=True)


class Elimination(NamedTuple):
    """What integrating a block of ``k`` variables out of ``exp(info.x - x'Px/2)`` leaves:
    the information form over the kept variables, the gain ``b_c' P_cc^-1 b_c / 2`` of the
    quadratic, and ``log det P_cc / 2`` (the normalizer of the integral is
    ``k/2 log 2pi - half_logdet``)."""

    info: torch.Tensor
    precision: torch.Tensor
    quad_gain: torch.Tensor
    half_logdet: torch.Tensor
    size: int


def eliminate(info: torch.Tensor, precision: torch.Tensor, start: int, stop: int) -> Elimination:
    """Integrate the variables ``start:stop`` out of a quadratic in information form (the Schur
    complement). Shared by the Gaussian and the Gamma-Gaussian factors.

    >>> e = eliminate(torch.zeros(2), torch.tensor([[2.0, 1.0], [1.0, 2.0]]), 1, 2)
    >>> e.precision  # 2 - 1 * 1 / 2
    tensor([[1.5000]])
    """
    n = info.size(-1)
    device = info.device
    out = torch.arange(start, stop, device=device)
    keep = torch.cat([torch.arange(0, start, device=device), torch.arange(stop, n, device=device)])
    rows_keep = precision.index_select(-2, keep)
    p_kk = rows_keep.index_select(-1, keep)
    p_ko = rows_keep.index_select(-1, out)
    p_oo = precision.index_select(-2, out).index_select(-1, out)
    tril = _cholesky(p_oo)
    whitened_cross = _solve_lower(tril, p_ko.mT)  # L^-1 P_ok
    whitened_info = _solve_lower(tril, info.index_select(-1, out).unsqueeze(-1)).squeeze(-1)
    new_precision = p_kk - whitened_cross.mT @ whitened_cross
    new_info = info.index_select(-1, keep) - _mv(whitened_cross.mT, whitened_info)
    quad_gain = 0.5 * whitened_info.pow(2).sum(-1)
    half_logdet = tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return Elimination(new_info, new_precision, quad_gain, half_logdet, stop - start)


def fit_time(t: torch.Tensor, event_dims: int, rank: int, num_steps: int) -> torch.Tensor:
    """``t`` with ``rank`` batch dims, the last (time) one expanded to ``num_steps``."""
    batch = t.shape[: t.dim() - event_dims]
    t = t.reshape((1,) * (rank - len(batch)) + t.shape)
    sizes = [-1] * t.dim()
    sizes[rank - 1] = num_steps
    return t.expand(sizes)


class GaussianFactor:
    """``log f(x) = const + info . x - x' precision x / 2`` over ``x`` of size ``dim``.

    >>> f = GaussianFactor(torch.tensor(0.0), torch.tensor([1.0]), torch.tensor([[1.0]]))
    >>> float(f.evaluate(torch.tensor([1.0])))  # 1 - 1/2
    0.5
    """

    __slots__ = ("const", "info", "precision")

    def __init__(self, const: torch.Tensor, info: torch.Tensor, precision: torch.Tensor):
        self.const = const
        self.info = info
        self.precision = precision

    @property
    def dim(self) -> int:
        """The number of variables."""
        return self.info.size(-1)

    @property
    def batch_shape(self) -> torch.Size:
        """The broadcast batch shape of the three parts."""
        return broadcast_shape(self.const.shape, self.info.shape[:-1], self.precision.shape[:-2])

    def __add__(self, other: GaussianFactor | torch.Tensor | float) -> GaussianFactor:
        """The product of two factors over the same variables, or a factor times ``exp(c)``."""
        if isinstance(other, GaussianFactor):
            return GaussianFactor(
                self.const + other.const, self.info + other.info, self.precision + other.precision
            )
        return GaussianFactor(self.const + other, self.info, self.precision)

    def expand(self, batch_shape: Sequence[int]) -> GaussianFactor:
        """Broadcast every part to ``batch_shape`` (views, no copies)."""
        batch_shape = torch.Size(batch_shape)
        n = self.dim
        return GaussianFactor(
            self.const.expand(batch_shape),
            self.info.expand((*batch_shape, n)),
            self.precision.expand((*batch_shape, n, n)),
        )

    def pad(self, left: int = 0, right: int = 0) -> GaussianFactor:
        """The same factor over ``left + dim + right`` variables, constant in the new ones."""
        return GaussianFactor(
            self.const,
            F.pad(self.info, (left, right)),
            F.pad(self.precision, (left, right, left, right)),
        )

    def condition(self, value: torch.Tensor, left: bool = False) -> GaussianFactor:
        """Fix the rightmost (or with ``left=True`` the leftmost) ``value.size(-1)`` variables
        at ``value``: a factor over the others, with ``value``'s batch dims broadcast in."""
        n, k = self.dim, value.size(-1)
        fixed, free = (slice(0, k), slice(k, n)) if left else (slice(n - k, n), slice(0, n - k))
        p = self.precision
        cross = p[..., free, fixed]
        info = self.info[..., free] - _mv(cross, value)
        const = (
            self.const
            + _dot(self.info[..., fixed], value)
            - 0.5 * _dot(value, _mv(p[..., fixed, fixed], value))
        )
        return GaussianFactor(const, info, p[..., free, free])

    def marginalize(self, start: int, stop: int) -> GaussianFactor:
        """Integrate the variables ``start:stop`` out."""
        e = eliminate(self.info, self.precision, start, stop)
        const = self.const + 0.5 * e.size * LOG_2PI - e.half_logdet + e.quad_gain
        return GaussianFactor(const, e.info, e.precision)

    def integrate(self) -> torch.Tensor:
        """``log`` of the integral of ``f`` over all its variables."""
        return self.marginalize(0, self.dim).const

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """``log f(x)``."""
        return self.const + _dot(self.info, x) - 0.5 * _dot(x, _mv(self.precision, x))

    def mean_and_tril(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of the normalized density and the Cholesky factor of its precision."""
        tril = _cholesky(self.precision)
        whitened = _solve_lower(tril, self.info.unsqueeze(-1))
        return _solve_upper_t(tril, whitened).squeeze(-1), tril

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        """A reparameterized draw from the normalized density ``f / integral(f)``."""
        mean, tril = self.mean_and_tril()
        shape = torch.Size(sample_shape) + self.batch_shape + (self.dim,)
        noise = torch.randn(shape, dtype=mean.dtype, device=mean.device)
        return mean + _solve_upper_t(tril, noise.unsqueeze(-1)).squeeze(-1)

    def to_mvn(self, validate_args: bool | None = None):
        """The normalized density as the engine's ``MultivariateNormal``."""
        from engine.distributions.torch_wrappers import MultivariateNormal

        mean, _ = self.mean_and_tril()
        batch = self.batch_shape
        n = self.dim
        return MultivariateNormal(
            mean.expand((*batch, n)),
            precision_matrix=self.precision.expand((*batch, n, n)),
            validate_args=validate_args,
        )

    # The time axis is the rightmost batch dim; the chain reductions index and join along it.

    def with_time(self, num_steps: int) -> GaussianFactor:
        """Every part with the full batch rank and its time dim expanded to ``num_steps``."""
        rank = max(len(self.batch_shape), 1)
        return GaussianFactor(
            fit_time(self.const, 0, rank, num_steps),
            fit_time(self.info, 1, rank, num_steps),
            fit_time(self.precision, 2, rank, num_steps),
        )

    def take(self, index: slice | int) -> GaussianFactor:
        """The steps ``index`` of a factor prepared by :meth:`with_time`."""
        return GaussianFactor(
            self.const[..., index], self.info[..., index, :], self.precision[..., index, :, :]
        )

    @staticmethod
    def join(first: GaussianFactor, second: GaussianFactor) -> GaussianFactor:
        """Concatenate two runs of steps along time."""
        return GaussianFactor(
            cat_time(first.const, second.const, 0),
            cat_time(first.info, second.info, 1),
            cat_time(first.precision, second.precision, 2),
        )


def cat_time(a: torch.Tensor, b: torch.Tensor, event_dims: int) -> torch.Tensor:
    """Concatenate along the time dim (the last batch dim), broadcasting the other batch dims."""
    time = a.dim() - event_dims - 1
    batch = broadcast_shape(a.shape[:time], b.shape[:time])
    a = a.expand(batch + a.shape[time:])
    b = b.expand(batch + b.shape[time:])
    return torch.cat([a, b], dim=time)


def _noise_parts(noise: torch.distributions.Distribution, role: str):
    """``(log_norm, loc, precision)`` of a ``MultivariateNormal`` or a ``Normal`` made one-
    dimensional by ``to_event(1)``: ``log_norm = -n/2 log 2pi - log det(cov)/2``."""
    if isinstance(noise, torch.distributions.MultivariateNormal):
        n = noise.event_shape[0]
        tril = noise._unbroadcasted_scale_tril
        log_norm = -0.5 * n * LOG_2PI - tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        precision = torch.cholesky_inverse(tril)
        return log_norm.expand(noise.batch_shape), noise.loc, precision
    if (
        isinstance(noise, torch.distributions.Independent)
        and noise.reinterpreted_batch_ndims == 1
        and isinstance(noise.base_dist, torch.distributions.Normal)
    ):
        loc, scale = noise.base_dist.loc, noise.base_dist.scale
        n = loc.size(-1)
        log_norm = -0.5 * n * LOG_2PI - scale.log().sum(-1)
        return log_norm, loc, torch.diag_embed(scale.pow(-2))
    raise ArgumentError(
        f"{role} must be a MultivariateNormal or a Normal made one-dimensional with "
        f".to_event(1), got {type(noise).__name__} with event_shape "
        f"{tuple(noise.event_shape)}."
    )


class QuadraticParts(NamedTuple):
    """A Gaussian density split into its normalizer ``log_norm`` and the quadratic
    ``quad_const + info . x - x' precision x / 2`` (the Gamma-Gaussian factors scale only the
    quadratic)."""

    log_norm: torch.Tensor
    quad_const: torch.Tensor
    info: torch.Tensor
    precision: torch.Tensor


def mvn_parts(
    d: torch.distributions.Distribution, role: str = "the distribution"
) -> QuadraticParts:
    """The :class:`QuadraticParts` of a Gaussian over its own event."""
    log_norm, loc, precision = _noise_parts(d, role)
    info = _mv(precision, loc)
    return QuadraticParts(log_norm, -0.5 * _dot(loc, info), info, precision)


def linear_parts(
    matrix: torch.Tensor, noise: torch.distributions.Distribution, role: str = "the noise"
) -> QuadraticParts:
    """The :class:`QuadraticParts` over ``(x, y)`` of ``y = x @ matrix + noise``.

    With ``r = y - x @ M`` the noise's quadratic in ``r`` becomes one in ``(x, y)`` whose
    precision has the blocks ``[[M P M', -M P], [-P M', P]]``.
    """
    log_norm, quad_const, info, precision = mvn_parts(noise, role)
    mp = matrix @ precision
    mpm = mp @ matrix.mT
    batch = broadcast_shape(mpm.shape[:-2], precision.shape[:-2])
    n, m = matrix.shape[-2:]
    top = torch.cat([mpm.expand((*batch, n, n)), -mp.expand((*batch, n, m))], -1)
    bottom = torch.cat([-mp.mT.expand((*batch, m, n)), precision.expand((*batch, m, m))], -1)
    joint_precision = torch.cat([top, bottom], -2)
    info_batch = broadcast_shape(matrix.shape[:-2], info.shape[:-1])
    joint_info = torch.cat(
        [-_mv(matrix, info).expand((*info_batch, n)), info.expand((*info_batch, m))], -1
    )
    return QuadraticParts(log_norm, quad_const, joint_info, joint_precision)


def from_mvn(d: torch.distributions.Distribution, role: str = "the distribution") -> GaussianFactor:
    """The log density of a ``MultivariateNormal`` (or ``Normal(...).to_event(1)``) as a factor.

    >>> import engine.distributions as dist
    >>> d = dist.MultivariateNormal(torch.ones(2), 2 * torch.eye(2))
    >>> x = torch.tensor([0.5, -1.0])
    >>> bool(torch.isclose(from_mvn(d).evaluate(x), d.log_prob(x)))
    True
    """
    p = mvn_parts(d, role)
    return GaussianFactor(p.log_norm + p.quad_const, p.info, p.precision)


def from_linear(
    matrix: torch.Tensor, noise: torch.distributions.Distribution, role: str = "the noise"
) -> GaussianFactor:
    """The factor over ``(x, y)`` of ``y = x @ matrix + noise``: the density of ``y`` given
    ``x``, as a function of both.

    >>> import engine.distributions as dist
    >>> f = from_linear(torch.tensor([[2.0]]), dist.Normal(torch.zeros(1), 1.0).to_event(1))
    >>> float(f.evaluate(torch.tensor([1.0, 2.0])))  # y = 2 x exactly: the peak of N(0, 1)
    -0.9189385175704956
    """
    p = linear_parts(matrix, noise, role)
    return GaussianFactor(p.log_norm + p.quad_const, p.info, p.precision)
