"""``VonMises3D``: the von Mises-Fisher distribution on the unit sphere in three dimensions.

Directions (a molecule's orientation, a point on the globe) concentrate around a mean direction
with density ``kappa / (4 pi sinh(kappa)) * exp(kappa * mu . x)``. The engine takes, as Pyro
does, one unnormalised vector ``concentration = kappa * mu``. In three dimensions the cosine
``w = mu . x`` has the closed-form inverse CDF ``1 + log(u + (1 - u) exp(-2 kappa)) / kappa``,
so draws need no rejection loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.corr_matrix import sphere
from engine.distributions.param_expand import expand_params
from engine.distributions.torch_distribution import TorchDistribution
from engine.errors import ShapeError, fmt_shape


class VonMises3D(TorchDistribution):
    """Unit vectors in 3-D with density ``∝ exp(concentration . x)``.

    ``concentration`` has shape ``(..., 3)``: its direction is the mean direction, its length the
    concentration ``kappa``.

    >>> d = VonMises3D(torch.tensor([0.0, 0.0, 2.0]))
    >>> x = d.sample((4,))
    >>> x.shape, bool(torch.allclose(x.norm(dim=-1), torch.ones(4)))
    (torch.Size([4, 3]), True)
    """

    arg_constraints = {"concentration": constraints.real_vector}
    support = sphere

    def __init__(self, concentration: torch.Tensor, validate_args: bool | None = None):
        concentration = torch.as_tensor(concentration)
        if concentration.dim() < 1 or concentration.shape[-1] != 3:
            raise ShapeError(
                "VonMises3D: concentration must have shape (..., 3); got "
                f"{fmt_shape(concentration.shape)}."
            )
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], (3,), validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> VonMises3D:
        return expand_params(
            self, VonMises3D, batch_shape, _instance, event_dims={"concentration": 1}
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        kappa = self.concentration.norm(dim=-1)
        # log(kappa / (4 pi sinh kappa)) = log kappa - log(2 pi) - kappa - log1p(-exp(-2 kappa)),
        # whose kappa -> 0 limit is -log(4 pi).
        safe = kappa.clamp(min=1e-6)
        log_norm = torch.where(
            kappa > 1e-6,
            safe.log() - math.log(2 * math.pi) - safe - torch.log(-torch.expm1(-2 * safe)),
            torch.full_like(kappa, -math.log(4 * math.pi)),
        )
        return (self.concentration * value).sum(-1) + log_norm

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)[:-1]
            conc = self.concentration.expand((*shape, 3))
            kappa = conc.norm(dim=-1)
            mu = conc / kappa.clamp(min=torch.finfo(conc.dtype).tiny).unsqueeze(-1)
            u = torch.rand(shape, dtype=conc.dtype, device=conc.device)
            safe = kappa.clamp(min=1e-6)
            w = 1 + torch.log(u + (1 - u) * torch.exp(-2 * safe)) / safe
            w = torch.where(kappa > 1e-6, w, 2 * u - 1).clamp(-1, 1)
            # A uniform direction orthogonal to mu: a random normal with its mu part removed.
            v = torch.randn((*shape, 3), dtype=conc.dtype, device=conc.device)
            mu = torch.where(kappa.unsqueeze(-1) > 0, mu, torch.zeros_like(mu))
            mu = mu + (kappa.unsqueeze(-1) == 0) * torch.tensor(
                [0.0, 0.0, 1.0], dtype=conc.dtype, device=conc.device
            )
            v = v - (v * mu).sum(-1, keepdim=True) * mu
            v = v / v.norm(dim=-1, keepdim=True)
            x = w.unsqueeze(-1) * mu + torch.sqrt(1 - w.pow(2)).unsqueeze(-1) * v
            return x / x.norm(dim=-1, keepdim=True)
