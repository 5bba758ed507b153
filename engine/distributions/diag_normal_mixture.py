"""Mixtures of diagonal normals with reparameterized draws.

A draw from a mixture picks a component (a discrete choice) and then a point from it, so the usual
reparameterization trick gives no gradient for the mixture weights. These classes give draws whose
gradient with respect to every parameter (means, scales and the component logits) is the pathwise
gradient of the mixture itself: ``d/dtheta E[f(z)] = E[grad f(z) . v_theta(z)]``, where the velocity
field ``v_theta`` satisfies the continuity equation ``d/dtheta q + div(q v_theta) = 0``.

The velocities used (derived for this module):

* A mean or scale of component ``k`` moves a point as the ordinary reparameterization of that
  component would, weighted by the component's responsibility ``r_k(z) = pi_k N_k(z) / q(z)``.
* The logit of component ``j`` changes ``q`` by ``pi_j (N_j - q) = pi_j sum_k pi_k (N_j - N_k)``.
  Because each component factorises over coordinates, ``N_k - N_j`` telescopes into one term per
  coordinate ``d``: ``prod_{e<d} N_j^e * (N_k^d - N_j^d) * prod_{e>d} N_k^e``. The flux
  ``prod_{e<d} N_j^e * (F_k^d - F_j^d) * prod_{e>d} N_k^e`` along coordinate ``d`` (``F`` the
  one-dimensional normal CDF) has exactly that divergence and vanishes at infinity, so
  ``q v_j = pi_j sum_k pi_k w_kj`` with ``w_kj`` those fluxes.

The draw itself is exact; the velocities enter only the backward pass, by adding
``v * (theta - theta.detach())`` (zero in value) to the draw.

>>> import torch
>>> d = MixtureOfDiagNormals(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2))
>>> d.batch_shape, d.event_shape, d.rsample((4,)).shape
(torch.Size([]), torch.Size([3]), torch.Size([4, 3]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.errors import ShapeError, fmt_shape

_LOG_SQRT_TWO_PI = 0.5 * math.log(2 * math.pi)


class _DiagNormalMixture(TorchDistribution):
    """Shared machinery: subclasses say how their parameters give per-component ``locs`` and
    ``scales`` of shape ``batch + (K, D)`` and ``logits`` of shape ``batch + (K,)``."""

    support = constraints.real_vector
    has_rsample = True

    def _components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        locs, scales, logits = self._components()
        per_component = _log_normal(value.unsqueeze(-2), locs, scales).sum(-1)
        return torch.logsumexp(per_component + logits.log_softmax(-1), dim=-1)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        locs, scales, logits = self._components()
        shape = torch.Size(sample_shape) + self.batch_shape
        k, d = locs.shape[-2:]
        locs, scales = locs.expand((*shape, k, d)), scales.expand((*shape, k, d))
        logits = logits.expand((*shape, k))
        with torch.no_grad():
            which = torch.distributions.Categorical(logits=logits).sample()
            index = which[..., None, None].expand((*shape, 1, d))
            chosen_loc = locs.gather(-2, index).squeeze(-2)
            chosen_scale = scales.gather(-2, index).squeeze(-2)
            z = chosen_loc + chosen_scale * torch.randn_like(chosen_loc)
            v_locs, v_scales, v_logits = _velocities(z, locs, scales, logits)
        # Zero in value; its gradient with respect to each parameter is that parameter's
        # velocity (summed over the coordinates it moves).
        moved = (
            (v_locs * (locs - locs.detach())).sum(-2)
            + (v_scales * (scales - scales.detach())).sum(-2)
            + (v_logits * (logits - logits.detach()).unsqueeze(-1)).sum(-2)
        )
        return z + moved

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def mean(self) -> torch.Tensor:
        locs, _, logits = self._components()
        weights = logits.softmax(-1).unsqueeze(-1)
        return (weights * locs).sum(-2).expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        locs, scales, logits = self._components()
        weights = logits.softmax(-1).unsqueeze(-1)
        second_moment = (weights * (scales.pow(2) + locs.pow(2))).sum(-2)
        return (second_moment - self.mean.pow(2)).expand(self.batch_shape + self.event_shape)


def _log_normal(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - loc) / scale).pow(2) - scale.log() - _LOG_SQRT_TWO_PI


def _velocities(
    z: torch.Tensor, locs: torch.Tensor, scales: torch.Tensor, logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How a draw ``z`` (``... x D``) moves per unit change of each parameter (module docstring):
    ``(... x K x D)`` for the means and the scales, ``(... x K x D)`` for the logits (component j,
    coordinate d)."""
    standardized = (z.unsqueeze(-2) - locs) / scales  # ... x K x D
    log_coord = _log_normal(z.unsqueeze(-2), locs, scales)  # log N_k^d(z_d)
    log_weights = logits.log_softmax(-1)  # ... x K
    log_joint = log_weights + log_coord.sum(-1)  # log pi_k N_k(z)
    log_q = torch.logsumexp(log_joint, dim=-1, keepdim=True)
    responsibility = (log_joint - log_q).exp().unsqueeze(-1)  # ... x K x 1
    v_locs = responsibility.expand_as(locs)
    v_scales = responsibility * standardized

    cdf = torch.special.ndtr(standardized)  # F_k^d(z_d)
    # Sum of log N^e over e < d (for component j) and over e > d (for component k).
    before = log_coord.cumsum(-1) - log_coord
    after = log_coord.sum(-1, keepdim=True) - log_coord.cumsum(-1)
    # flux[k, j, d] = exp(before[j, d] + after[k, d]) * (F_k^d - F_j^d), divided by q(z).
    log_scale = before.unsqueeze(-3) + after.unsqueeze(-2) - log_q[..., None, None]
    flux = log_scale.exp() * (cdf.unsqueeze(-2) - cdf.unsqueeze(-3))
    weights = log_weights.exp()
    # v_j = pi_j sum_k pi_k flux[k, j] / q
    v_logits = weights.unsqueeze(-1) * (weights[..., :, None, None] * flux).sum(-3)
    return v_locs, v_scales, v_logits


class _LocsMixture(_DiagNormalMixture):
    """The two mixtures parameterised by ``locs`` ``batch + (K, D)``, ``coord_scale`` and
    ``component_logits`` ``batch + (K,)``; ``_same_scale`` says whether ``coord_scale`` is one per
    component (``batch + (K, D)``) or shared (``batch + (D,)``)."""

    arg_constraints = {
        "locs": constraints.real,
        "coord_scale": constraints.positive,
        "component_logits": constraints.real,
    }
    _same_scale: bool

    def __init__(
        self,
        locs: torch.Tensor,
        coord_scale: torch.Tensor,
        component_logits: torch.Tensor,
        validate_args: bool | None = None,
    ):
        _check_shapes(
            type(self).__name__, locs, coord_scale, component_logits, same_scale=self._same_scale
        )
        self.locs, self.coord_scale, self.component_logits = locs, coord_scale, component_logits
        super().__init__(locs.shape[:-2], locs.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> _LocsMixture:
        batch_shape = torch.Size(batch_shape)
        k, d = self.locs.shape[-2:]
        scale_tail = (k, d) if self._same_scale else (d,)
        return type(self)(
            self.locs.expand((*batch_shape, k, d)),
            self.coord_scale.expand((*batch_shape, *scale_tail)),
            self.component_logits.expand((*batch_shape, k)),
            validate_args=False,
        )


class MixtureOfDiagNormals(_LocsMixture):
    """A mixture of ``K`` normals in ``D`` dims, each with its own mean and diagonal scales.

    ``locs`` and ``coord_scale`` have shape ``batch + (K, D)``, ``component_logits`` shape
    ``batch + (K,)``; draws have shape ``batch + (D,)``. ``rsample`` is reparameterized in all
    three (see the module docstring).

    >>> import torch
    >>> d = MixtureOfDiagNormals(
    ...     torch.tensor([[0.0, 0.0], [3.0, 3.0]]), torch.ones(2, 2), torch.zeros(2)
    ... )
    >>> d.mean
    tensor([1.5000, 1.5000])
    """

    _same_scale = True

    def _components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.locs, self.coord_scale, self.component_logits


class MixtureOfDiagNormalsSharedCovariance(_LocsMixture):
    """A mixture of ``K`` normals in ``D`` dims with their own means and one shared diagonal
    scale: ``locs`` ``batch + (K, D)``, ``coord_scale`` ``batch + (D,)``, ``component_logits``
    ``batch + (K,)``. ``rsample`` is reparameterized in all three.

    >>> import torch
    >>> d = MixtureOfDiagNormalsSharedCovariance(torch.zeros(3, 2), torch.ones(2), torch.zeros(3))
    >>> d.log_prob(torch.zeros(2))
    tensor(-1.8379)
    """

    _same_scale = False

    def _components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scales = self.coord_scale.unsqueeze(-2).expand(self.locs.shape)
        return self.locs, scales, self.component_logits


class GaussianScaleMixture(_DiagNormalMixture):
    """A zero-mean mixture of ``K`` scaled copies of one diagonal normal in ``D`` dims: component
    ``k`` is ``Normal(0, component_scale[k] * coord_scale)``. ``coord_scale`` has shape ``(D,)``,
    ``component_logits`` and ``component_scale`` shape ``(K,)`` (no batch dims).
    ``rsample`` is reparameterized in all three.

    >>> import torch
    >>> d = GaussianScaleMixture(torch.ones(2), torch.zeros(2), torch.tensor([1.0, 3.0]))
    >>> d.variance  # (1 + 9) / 2 per coordinate
    tensor([5., 5.])
    """

    arg_constraints = {
        "coord_scale": constraints.positive,
        "component_logits": constraints.real,
        "component_scale": constraints.positive,
    }

    def __init__(
        self,
        coord_scale: torch.Tensor,
        component_logits: torch.Tensor,
        component_scale: torch.Tensor,
        validate_args: bool | None = None,
    ):
        if not (
            coord_scale.dim() == component_logits.dim() == component_scale.dim() == 1
            and component_logits.shape == component_scale.shape
        ):
            raise ShapeError(
                "GaussianScaleMixture(coord_scale, component_logits, component_scale) takes "
                "coord_scale of shape (D,) and component_logits and component_scale of one "
                f"shape (K,), got {fmt_shape(coord_scale.shape)}, "
                f"{fmt_shape(component_logits.shape)} and {fmt_shape(component_scale.shape)}. "
                "It has no batch dims: for batches use MixtureOfDiagNormals."
            )
        self.coord_scale = coord_scale
        self.component_logits = component_logits
        self.component_scale = component_scale
        super().__init__(torch.Size(), coord_scale.shape, validate_args=validate_args)

    def _components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scales = self.component_scale.unsqueeze(-1) * self.coord_scale
        return torch.zeros_like(scales), scales, self.component_logits


def _check_shapes(
    name: str,
    locs: torch.Tensor,
    coord_scale: torch.Tensor,
    component_logits: torch.Tensor,
    same_scale: bool,
) -> None:
    scale_shape = locs.shape if same_scale else locs.shape[:-2] + locs.shape[-1:]
    if locs.dim() < 2 or coord_scale.shape != scale_shape:
        wanted = "batch + (K, D)" if same_scale else "batch + (D,)"
        raise ShapeError(
            f"{name}(locs, coord_scale, component_logits): locs needs shape batch + (K, D) and "
            f"coord_scale shape {wanted}; got {fmt_shape(locs.shape)} and "
            f"{fmt_shape(coord_scale.shape)}."
        )
    if component_logits.shape != locs.shape[:-1]:
        raise ShapeError(
            f"{name}(locs, coord_scale, component_logits): component_logits needs shape batch + "
            f"(K,) = {fmt_shape(locs.shape[:-1])} to match locs {fmt_shape(locs.shape)}, got "
            f"{fmt_shape(component_logits.shape)}."
        )
