"""``SineBivariateVonMises``: two dependent angles on the torus (the "sine" bivariate von Mises).

Protein backbones are described by pairs of torsion angles; this law couples two von Mises
angles through a ``correlation * sin(phi - phi_loc) * sin(psi - psi_loc)`` term.

Integrating ``psi`` out in closed form (a von Mises integral, giving ``2 pi I0(r)``) leaves a
smooth, periodic one-dimensional integral over ``phi`` for the normaliser; the trapezoid rule on
a uniform grid converges geometrically for such integrands, so a fixed grid gives the normaliser
to float precision for concentrations far beyond the useful range. Sampling uses the same
factorisation: ``phi`` from its marginal by rejection against a von Mises proposal fitted to the
mode(s) (with an envelope bounded from the grid and the function's curvature), then
``psi | phi`` exactly, a von Mises with concentration ``r`` and shifted location.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all, lazy_property

from engine.distributions.param_expand import expand_params
from engine.distributions.torch_distribution import TorchDistribution
from engine.errors import DistributionArgumentError

Param = torch.Tensor | Number

# Grid points over [-pi, pi) for the normaliser and the sampler's envelope (see module doc).
_GRID = 2048


def _log_i0(x: torch.Tensor) -> torch.Tensor:
    return torch.special.i0e(x).log() + x


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


class SineBivariateVonMises(TorchDistribution):
    """Angles ``(phi, psi)`` with density
    ``exp(k1 cos(phi - m1) + k2 cos(psi - m2) + rho sin(phi - m1) sin(psi - m2)) / C``.

    Give ``correlation`` (``rho``) or ``weighted_correlation`` ``w`` in ``[-1, 1]``, which sets
    ``rho = w * sqrt(k1 * k2)`` and keeps the law unimodal.

    >>> d = SineBivariateVonMises(0.0, 0.0, 1.0, 1.0, correlation=0.0)
    >>> round(float(d.norm_const), 4)  # two independent von Mises: log((2 pi I0(1))**2)
    4.1476
    >>> d.sample((5,)).shape
    torch.Size([5, 2])
    """

    arg_constraints = {
        "phi_loc": constraints.real,
        "psi_loc": constraints.real,
        "phi_concentration": constraints.positive,
        "psi_concentration": constraints.positive,
        "correlation": constraints.real,
    }
    support = constraints.independent(constraints.real, 1)

    def __init__(
        self,
        phi_loc: Param,
        psi_loc: Param,
        phi_concentration: Param,
        psi_concentration: Param,
        correlation: Param | None = None,
        weighted_correlation: Param | None = None,
        validate_args: bool | None = None,
    ):
        if (correlation is None) == (weighted_correlation is None):
            raise DistributionArgumentError(
                "SineBivariateVonMises: give exactly one of correlation= or "
                "weighted_correlation= (in [-1, 1])."
            )
        if weighted_correlation is not None:
            weight = torch.as_tensor(weighted_correlation)
            conc = torch.as_tensor(phi_concentration) * torch.as_tensor(psi_concentration)
            correlation = weight * conc.sqrt()
        (
            self.phi_loc,
            self.psi_loc,
            self.phi_concentration,
            self.psi_concentration,
            self.correlation,
        ) = broadcast_all(phi_loc, psi_loc, phi_concentration, psi_concentration, correlation)
        super().__init__(self.phi_loc.shape, (2,), validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> SineBivariateVonMises:
        new = expand_params(self, SineBivariateVonMises, batch_shape, _instance)
        # A plate expands the law to the data's size; the normaliser depends on the parameters
        # only, so it is computed once on the unexpanded ones and broadcast.
        new._unexpanded = self.__dict__.get("_unexpanded", self)
        return new

    def _grid(self) -> torch.Tensor:
        like = self.phi_loc
        return (
            torch.arange(_GRID, dtype=like.dtype, device=like.device) * (2 * math.pi / _GRID)
            - math.pi
        )

    def _log_marginal(self, a: torch.Tensor) -> torch.Tensor:
        """Unnormalised log density of ``a = phi - phi_loc``, ``psi`` integrated out (less 2 pi)."""
        k1, k2, rho = (
            self.phi_concentration.unsqueeze(-1),
            self.psi_concentration.unsqueeze(-1),
            self.correlation.unsqueeze(-1),
        )
        r = torch.sqrt(k2.pow(2) + (rho * torch.sin(a)).pow(2))
        return k1 * torch.cos(a) + _log_i0(r)

    @lazy_property
    def norm_const(self) -> torch.Tensor:
        """The log normaliser ``log C``."""
        unexpanded = self.__dict__.get("_unexpanded")
        if unexpanded is not None:
            return unexpanded.norm_const.expand(self.batch_shape)
        log_f = self._log_marginal(self._grid())
        log_step = math.log(2 * math.pi / _GRID)
        return math.log(2 * math.pi) + torch.logsumexp(log_f, dim=-1) + log_step

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        a = value[..., 0] - self.phi_loc
        b = value[..., 1] - self.psi_loc
        unnormalised = (
            self.phi_concentration * torch.cos(a)
            + self.psi_concentration * torch.cos(b)
            + self.correlation * torch.sin(a) * torch.sin(b)
        )
        return unnormalised - self.norm_const

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)[:-1]
            a = self._sample_phi_offset(shape)
            k2 = self.psi_concentration.expand(shape)
            rho_sin = self.correlation.expand(shape) * torch.sin(a)
            # k2 cos b + rho sin a sin b = r cos(b - theta)
            r = torch.sqrt(k2.pow(2) + rho_sin.pow(2))
            theta = torch.atan2(rho_sin, k2)
            b = torch.distributions.VonMises(theta, r, validate_args=False).sample()
            phi = _wrap(a + self.phi_loc)
            psi = _wrap(b + self.psi_loc)
            return torch.stack([phi, psi], dim=-1)

    def _sample_phi_offset(self, shape: torch.Size) -> torch.Tensor:
        """``phi - phi_loc`` from its marginal, by rejection against a von Mises proposal."""
        grid = self._grid()
        log_f = self._log_marginal(grid)  # batch + (GRID,)
        # The marginal is symmetric in a -> -a; its mode is 0 or a pair +-a*.
        mode = grid.expand(log_f.shape).gather(-1, log_f.argmax(-1, keepdim=True))
        mode = mode.abs().squeeze(-1)
        # Proposal: an even mixture of von Mises at +-mode, concentration from the curvature at
        # the mode (a von Mises k cos(a - m) has curvature -k there), floored at 0 (uniform).
        h = 2 * math.pi / _GRID
        idx = log_f.argmax(-1, keepdim=True)
        at = lambda k: log_f.gather(-1, (idx + k) % _GRID).squeeze(-1)  # noqa: E731
        curvature = (at(1) - 2 * at(0) + at(-1)) / h**2
        kappa = (-curvature).clamp(min=0.0)
        log_q = self._log_proposal(grid, mode.unsqueeze(-1), kappa.unsqueeze(-1))
        ratio = log_f - log_q
        # Envelope: the grid maximum plus the largest possible rise between grid points,
        # h^2 / 8 * max|f''| (max|f''| from second differences, with a 2x safety factor).
        second = (ratio.roll(1, -1) - 2 * ratio + ratio.roll(-1, -1)).abs().amax(-1) / h**2
        log_m = ratio.amax(-1) + 2 * second * h**2 / 8

        out = torch.zeros(shape, dtype=grid.dtype, device=grid.device)
        todo = torch.ones(shape, dtype=torch.bool, device=grid.device)
        mode, kappa, log_m = (t.expand(shape) for t in (mode, kappa, log_m))
        k1 = self.phi_concentration.expand(shape)
        k2 = self.psi_concentration.expand(shape)
        rho = self.correlation.expand(shape)
        while todo.any():
            m, k = mode[todo], kappa[todo]
            sign = torch.where(torch.rand_like(m) < 0.5, -1.0, 1.0).to(m.dtype)
            proposal = torch.distributions.VonMises(
                sign * m, k.clamp(min=1e-8), validate_args=False
            )
            a = proposal.sample()
            r = torch.sqrt(k2[todo].pow(2) + (rho[todo] * torch.sin(a)).pow(2))
            log_f_a = k1[todo] * torch.cos(a) + _log_i0(r)
            log_q_a = self._log_proposal(a, m, k)
            accept = torch.rand_like(a).log() < log_f_a - log_q_a - log_m[todo]
            filled = out[todo]
            filled[accept] = a[accept]
            out[todo] = filled
            still = todo.clone()
            still[todo] = ~accept
            todo = still
        return out

    @staticmethod
    def _log_proposal(a: torch.Tensor, mode: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
        """Log density of ``(VM(mode, kappa) + VM(-mode, kappa)) / 2`` at ``a``."""
        log_norm = math.log(2 * math.pi) + _log_i0(kappa)
        plus = kappa * torch.cos(a - mode)
        minus = kappa * torch.cos(a + mode)
        return torch.logaddexp(plus, minus) - math.log(2) - log_norm

    @property
    def mean(self) -> torch.Tensor:
        # The circular mean: the density is symmetric about (phi_loc, psi_loc).
        return torch.stack([self.phi_loc, self.psi_loc], dim=-1)
