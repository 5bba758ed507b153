"""``ProjectedNormal``: the direction of a Gaussian vector, a distribution on the unit sphere.

Draw ``y ~ Normal(concentration, I)`` in ``R^d`` and keep ``x = y / |y|``. The concentration's
direction is the mode and its length the strength of concentration (zero is the uniform
distribution on the sphere). Its density with respect to the sphere's surface measure follows by
integrating the Gaussian along the ray through ``x`` (polar coordinates, ``dy = r^(d-1) dr dx``):

    p(x) = (2 pi)^(-d/2) exp(-|c|^2 / 2) J_(d-1)(t),   t = <c, x>,
    J_k(t) = exp(t^2 / 2) * integral_0^inf r^k exp(-(r - t)^2 / 2) dr,

and ``J`` obeys ``J_0 = sqrt(pi/2) erfcx(-t / sqrt 2)``, ``J_1 = 1 + t J_0`` and
``J_k = t J_(k-1) + (k-1) J_(k-2)`` (integration by parts), so every dimension ``d >= 2`` is
exact. Strong concentrations need care, as ``exp(-|c|^2 / 2)`` and ``J`` under- and overflow:
with ``I_k = exp(-t^2 / 2) J_k`` the density is ``(2 pi)^(-d/2) exp(-|c - t x|^2 / 2) I_(d-1)(t)``,
all factors of moderate size. For ``t >= 0``, ``I`` follows the same recurrence from
``I_0 = sqrt(pi/2) erfc(-t / sqrt 2)``, ``I_1 = exp(-t^2 / 2) + t I_0`` (positive terms). For
``t < 0`` the forward recurrence cancels (``J_k`` shrinks like ``k! / |t|^(k+1)``): below
``t = -2.5`` the ratios ``J_n / J_(n-1) = n / (|t| + J_(n+1) / J_n)`` are run downwards instead,
a continued fraction of positive terms (Miller's backward recurrence). All in double precision.
Draws are reparameterised. For inference on a latent ``ProjectedNormal`` site use
``ProjectedNormalReparam`` (HMC and Gaussian guides cannot move on a sphere).

>>> import torch
>>> d = ProjectedNormal(torch.zeros(3))  # uniform on the 2-sphere: density 1 / (4 pi)
>>> round(float(d.log_prob(torch.tensor([0.0, 0.0, 1.0]))), 4) == round(-math.log(4 * math.pi), 4)
True
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.errors import ShapeError, fmt_shape


class _UnitSphere(constraints.Constraint):
    """Vectors of unit Euclidean length along the last dim."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        tolerance = 1e3 * torch.finfo(value.dtype).eps if value.is_floating_point() else 1e-6
        return (value.norm(dim=-1) - 1).abs() < tolerance

    def __repr__(self) -> str:
        return "Sphere()"


unit_sphere = _UnitSphere()


# Where the forward recurrence hands over to the backward one, and how far above k the backward
# one starts. Checked against 60-digit quadrature for k <= 30 and -1000 <= t <= 1000: relative
# error below 1e-12 everywhere except just above the hand-over for large k (1.5e-8 at k = 30).
_BACKWARD_FROM = 2.5
_BACKWARD_EXTRA = 80


def _log_ray_integral_far(depth: torch.Tensor, k: int) -> torch.Tensor:
    """``log J_k(-depth)`` for ``depth >= _BACKWARD_FROM``, by the backward recurrence."""
    log_j = torch.log(math.sqrt(math.pi / 2) * torch.special.erfcx(depth / math.sqrt(2)))
    ratio = torch.zeros_like(depth)
    for order in range(k + _BACKWARD_EXTRA, 0, -1):
        ratio = order / (depth + ratio)  # J_order / J_(order-1)
        if order <= k:
            log_j = log_j + ratio.log()
    return log_j


def _log_shifted_ray_integral(t: torch.Tensor, k: int) -> torch.Tensor:
    """``log I_k(t) = log J_k(t) - t^2 / 2`` (see the module docstring), in double precision."""
    t = t.double()
    # Each branch sees its inputs clamped to where it is exact, so that torch.where never meets
    # (nor backpropagates) an overflow from the branch it discards.
    positive = t.clamp(min=0)
    previous = math.sqrt(math.pi / 2) * torch.special.erfc(-positive / math.sqrt(2))
    current = torch.exp(-0.5 * positive.square()) + positive * previous
    middle = t.clamp(-_BACKWARD_FROM, 0)
    j_previous = math.sqrt(math.pi / 2) * torch.special.erfcx(-middle / math.sqrt(2))
    j_current = 1 + middle * j_previous
    if k == 0:
        current, j_current = previous, j_previous
    for order in range(2, k + 1):
        previous, current = current, positive * current + (order - 1) * previous
        j_previous, j_current = j_current, middle * j_current + (order - 1) * j_previous
    # The backward recurrence costs ~80 steps: run it only on the entries that need it.
    far = t <= -_BACKWARD_FROM
    log_j = torch.zeros_like(t)
    if bool(far.any()):
        log_j = log_j.masked_scatter(far, _log_ray_integral_far(t[far].neg(), k))
    return torch.where(
        t >= 0,
        current.log(),
        torch.where(t > -_BACKWARD_FROM, j_current.log(), log_j) - 0.5 * t.square(),
    )


class ProjectedNormal(TorchDistribution):
    """The unit vector ``y / |y|`` with ``y ~ Normal(concentration, I)``; event shape ``(d,)``.

    >>> import torch
    >>> d = ProjectedNormal(torch.tensor([0.0, 4.0]))
    >>> x = d.sample((1000,))
    >>> bool(torch.allclose(x.norm(dim=-1), torch.ones(1000))), bool(x[:, 1].mean() > 0.8)
    (True, True)
    """

    arg_constraints = {"concentration": constraints.real_vector}
    support = unit_sphere
    has_rsample = True

    def __init__(self, concentration: torch.Tensor, validate_args: bool | None = None):
        if not isinstance(concentration, torch.Tensor) or concentration.dim() < 1:
            raise ShapeError(
                "ProjectedNormal(concentration): concentration must be a tensor with at least one "
                f"dim (the vector's), got {concentration!r}."
            )
        if concentration.size(-1) < 2:
            raise ShapeError(
                "ProjectedNormal needs vectors of at least 2 entries (a sphere in R^1 is two "
                f"points); got concentration of shape {fmt_shape(concentration.shape)}."
            )
        self.concentration = concentration
        super().__init__(
            concentration.shape[:-1], concentration.shape[-1:], validate_args=validate_args
        )

    def expand(self, batch_shape: Any, _instance: Any = None) -> ProjectedNormal:
        new = self._get_checked_instance(ProjectedNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.concentration = self.concentration.expand(batch_shape + self.event_shape)
        super(ProjectedNormal, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        """Not the mean (which lies inside the ball), but the mode direction, as Pyro has it."""
        return _normalize(self.concentration)

    @property
    def mode(self) -> torch.Tensor:
        return _normalize(self.concentration)

    def rsample(self, sample_shape: Any = ()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        noise = torch.randn(shape, dtype=self.concentration.dtype, device=self.concentration.device)
        return _normalize(self.concentration + noise)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        dim = self.event_shape[0]
        concentration, value = torch.broadcast_tensors(self.concentration, value)
        t = (concentration * value).sum(-1)
        # |c|^2 - t^2 written as |c - t x|^2: no cancellation when x points along c.
        off_ray = (concentration - t.unsqueeze(-1) * value).double().square().sum(-1)
        log_density = (
            -0.5 * dim * math.log(2 * math.pi)
            - 0.5 * off_ray
            + _log_shifted_ray_integral(t, dim - 1)
        )
        return log_density.to(t.dtype)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """``x / |x|``, with the zero vector sent to a fixed unit vector instead of NaN."""
    norm = x.norm(dim=-1, keepdim=True)
    unit = torch.zeros_like(x)
    unit[..., 0] = 1
    return torch.where(norm > 0, x / norm.clamp(min=torch.finfo(x.dtype).tiny), unit)
