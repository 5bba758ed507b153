"""The log density of a stable law, by Nolan's one-dimensional integral.

Stable laws have no closed-form density except in three cases, but Nolan (1997) writes the
standardised density (S0 coordinates, scale 1, location 0) as an integral over a finite
interval of ``exp(h - exp(h))``, where ``h(theta)`` is a monotone function of the angle. The
integrand peaks where ``h = 0``; the interval is split there (found by bisection) and each half
is integrated by Gauss-Legendre quadrature, in log space so tails far out stay finite. Values
left of the mode's reference point ``zeta`` use the reflection ``f(x; a, b) = f(-x; a, -b)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Tanh-sinh (double-exponential) rule per half interval: its nodes crowd towards both ends,
# where the integrand's peak sits after the split, so sharp peaks far out in the tails are
# resolved. _STEPS nodes on each side of the centre, out to |t| = _REACH.
_STEPS = 48
_REACH = 3.2
_BISECTIONS = 60
# Close to zeta the density is taken at zeta (closed form): it is smooth there, while the
# integral's two factors under- and overflow. How close depends on the stability: the density's
# width there is about sqrt(Gamma(1/alpha) / Gamma(3/alpha)) (its curvature at the centre of the
# symmetric law), 0.5 at stability 1.5 but 2e-13 at 0.1, so "close" is this fraction of it.
_AT_ZETA = 1e-6


def _tanh_sinh(lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (..., 2 * _STEPS + 1) in (lower, upper) and their log weights."""
    like = lower
    t = torch.linspace(-_REACH, _REACH, 2 * _STEPS + 1, dtype=like.dtype, device=like.device)
    step = _REACH / _STEPS
    y = math.pi / 2 * torch.sinh(t)
    width = (upper - lower).unsqueeze(-1)
    # Distances to the nearer end, computed without cancellation: (b - a) / (1 + e^{2|y|}).
    near = width * torch.sigmoid(-2 * y.abs())
    theta = torch.where(y < 0, lower.unsqueeze(-1) + near, upper.unsqueeze(-1) - near)
    # dtheta/dt = (b - a) * (pi/2) cosh t * sigmoid(2y) * sigmoid(-2y) * 2
    log_w = (
        width.clamp(min=torch.finfo(like.dtype).tiny).log()
        + math.log(math.pi)
        + torch.log(torch.cosh(t))
        + F.logsigmoid(2 * y)
        + F.logsigmoid(-2 * y)
        + math.log(step)
    )
    return theta, log_w


def _log_integral(h_fn, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``log int_lower^upper exp(h - exp(h)) dtheta`` for increasing or decreasing ``h``."""
    # The peak of exp(h - e^h) is at h = 0; h is monotone, so bisect on its sign.
    with torch.no_grad():
        a, b = lower.detach().clone(), upper.detach().clone()
        span = b - a
        probe_lo, probe_hi = a + 1e-9 * span, b - 1e-9 * span
        increasing = h_fn(probe_hi) > h_fn(probe_lo)
        for _ in range(_BISECTIONS):
            mid = (a + b) / 2
            above = h_fn(mid) > 0
            go_left = above == increasing
            b = torch.where(go_left, mid, b)
            a = torch.where(go_left, a, mid)
        peak = (a + b) / 2
    pieces = []
    for left, right in ((lower, peak), (peak, upper)):
        theta, log_w = _tanh_sinh(left, right)
        h = h_fn(theta)
        terms = h - torch.exp(h) + log_w
        pieces.append(torch.logsumexp(torch.nan_to_num(terms, nan=-math.inf), dim=-1))
    return torch.logaddexp(*pieces)


def _standard_alpha_not_one(z: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor):
    """log f(z) for z on the right of zeta (the caller reflects the left side)."""
    t = torch.tan(math.pi * alpha / 2)
    zeta = -beta * t
    theta0 = torch.atan(beta * t) / alpha
    u = (z - zeta).clamp(min=torch.finfo(z.dtype).tiny)
    am1 = alpha - 1
    log_cos_a0 = torch.log(torch.cos(alpha * theta0))

    def h_fn(theta: torch.Tensor) -> torch.Tensor:
        ex = lambda v: v.unsqueeze(-1) if theta.dim() > v.dim() else v  # noqa: E731
        a, m1, th0, lc = ex(alpha), ex(am1), ex(theta0), ex(log_cos_a0)
        # (lc + a log cos t - a log sin(a (t0 + t))) / m1 + log cos(a t0 + m1 t) - log cos t,
        # with the two log cos t terms merged: (a / m1 - 1) = 1 / m1.
        log_v = (
            (lc + torch.log(torch.cos(theta))) / m1
            - (a / m1) * torch.log(torch.sin(a * (th0 + theta)))
            + torch.log(torch.cos(a * th0 + m1 * theta))
        )
        return log_v + (a / m1) * ex(u).log()

    log_int = _log_integral(h_fn, -theta0, torch.full_like(theta0, math.pi / 2))
    away = alpha.log() - math.log(math.pi) - am1.abs().log() - u.log() + log_int
    # f(zeta) = Gamma(1 + 1/alpha) cos(theta0) / (pi (1 + zeta^2)^(1 / (2 alpha)))
    at_zeta = (
        torch.lgamma(1 + 1 / alpha)
        + torch.log(torch.cos(theta0))
        - math.log(math.pi)
        - torch.log1p(zeta.pow(2)) / (2 * alpha)
    )
    width = torch.exp((torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)) / 2)
    return torch.where(u < _AT_ZETA * width, at_zeta, away)


def _standard_alpha_one(z: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """log f(z) at stability 1 with skew beta > 0 (the caller reflects negative skews)."""
    half_pi = math.pi / 2

    def h_fn(theta: torch.Tensor) -> torch.Tensor:
        ex = lambda v: v.unsqueeze(-1) if theta.dim() > v.dim() else v  # noqa: E731
        b, x = ex(beta), ex(z)
        core = half_pi + b * theta
        log_v = (
            math.log(2 / math.pi)
            + torch.log(core)
            - torch.log(torch.cos(theta))
            + core * torch.tan(theta) / b
        )
        return log_v - half_pi * x / b

    lower = torch.full_like(z, -half_pi)
    log_int = _log_integral(h_fn, lower, -lower)
    return -math.log(2) - beta.log() + log_int


def stable_standard_log_prob(
    z: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """log density of the standard S0 stable law ``S0(alpha, beta, 1, 0)`` at ``z``.

    >>> z = torch.tensor([0.0, 1.0], dtype=torch.float64)
    >>> lp = stable_standard_log_prob(z, torch.tensor(2.0 - 1e-9, dtype=torch.float64),
    ...                               torch.tensor(0.0, dtype=torch.float64))
    >>> torch.allclose(lp, torch.distributions.Normal(0.0, 2**0.5).log_prob(z), atol=1e-6)
    True
    """
    z, alpha, beta = torch.broadcast_tensors(z, alpha, beta)
    # Reflect so that every point lies right of zeta (alpha != 1) or has positive skew (= 1).
    zeta = -beta * torch.tan(math.pi * alpha / 2)
    flip = torch.where(alpha == 1, beta < 0, z < zeta)
    z = torch.where(flip, -z, z)
    beta = torch.where(flip, -beta, beta)

    one = alpha == 1
    if torch._C._get_tracing_state():
        # A traced graph cannot depend on which entries have stability 1: evaluate both.
        return _either_case(z, alpha, beta, one)
    # Each case is an integral per entry: evaluate each only where it applies.
    count = int(one.sum())
    if count == 0:
        return _standard_alpha_not_one(z, alpha, beta)
    if count == one.numel():
        return _at_one(z, beta)
    result = z.new_zeros(z.shape)
    result[one] = _at_one(z[one], beta[one])
    other = ~one
    result[other] = _standard_alpha_not_one(z[other], alpha[other], beta[other])
    return result


def _at_one(z: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """log f(z) at stability 1 (z reflected to skew >= 0): the Cauchy law when the skew is 0."""
    cauchy = beta == 0
    safe_beta = torch.where(cauchy, torch.ones_like(beta), beta)
    cauchy_lp = -math.log(math.pi) - torch.log1p(z.pow(2))
    return torch.where(cauchy, cauchy_lp, _standard_alpha_one(z, safe_beta))


def _either_case(
    z: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, one: torch.Tensor
) -> torch.Tensor:
    safe_alpha = torch.where(one, torch.full_like(alpha, 0.5), alpha)
    general = _standard_alpha_not_one(z, safe_alpha, beta)
    return torch.where(one, _at_one(z, beta), general)
