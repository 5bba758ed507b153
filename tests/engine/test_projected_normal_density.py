"""``ProjectedNormal.log_prob`` stays exact and finite from weak to very strong concentrations
(issue 17): the density integrates to one, matches the asymptotic form far from the mode, and
its gradients are finite."""

import math

import pytest
import torch

import engine.distributions as dist

F64 = torch.float64


def _sphere_points(dim, theta):
    """Unit vectors at angle ``theta`` from the last axis (the concentration's direction)."""
    x = torch.zeros((*theta.shape, dim), dtype=F64)
    x[..., 0], x[..., -1] = theta.sin(), theta.cos()
    return x


@pytest.mark.parametrize("dim", [2, 3, 4])
@pytest.mark.parametrize("strength", [0.0, 1.0, 3.0, 50.0, 1000.0])
def test_density_integrates_to_one(dim, strength):
    # By symmetry about the concentration's axis the sphere integral is one-dimensional in the
    # angle theta from it: the slice at theta has measure |S^(dim-2)| sin(theta)^(dim-2), with
    # |S^0| = 2 (two points), |S^1| = 2 pi, |S^2| = 4 pi. For dim = 2 the integral runs over
    # [0, pi] on both sides, hence the factor 2 of |S^0|. The peak has width ~1 / strength and
    # beyond 12 widths the density is below exp(-70) of its top: a fine grid there, a coarse one
    # after; the trapezoid error (h^2 / 12 times the curvature, ~strength^2) stays below 1e-7.
    concentration = torch.zeros(dim, dtype=F64)
    concentration[-1] = strength
    peak = min(math.pi, 12 / max(strength, 1e-9))
    theta = torch.cat(
        [
            torch.linspace(0, peak, 20001, dtype=F64),
            torch.linspace(peak, math.pi, 2001, dtype=F64)[1:],
        ]
    )
    density = dist.ProjectedNormal(concentration).log_prob(_sphere_points(dim, theta)).exp()
    slice_measure = {2: 2.0, 3: 2 * math.pi, 4: 4 * math.pi}[dim] * theta.sin() ** (dim - 2)
    total = torch.trapezoid(density * slice_measure, theta)
    assert abs(total.item() - 1) < 1e-6


@pytest.mark.parametrize("dim", [2, 3, 4, 6])
@pytest.mark.parametrize("strength", [30.0, 1000.0])
def test_density_opposite_the_mode_has_its_asymptotic_value(dim, strength):
    # At x = -c / |c|, t = -s with s = |c|, and for large s
    # J_k(-s) = integral r^k exp(-r^2/2 - s r) dr
    #         = k! / s^(k+1) sum_m (-1)^m (k+2m)! / (k! 2^m m! s^(2m))    (expand exp(-r^2/2)),
    # an asymptotic series: five terms leave an error below 1e-8 for k <= 5 at s >= 30.
    concentration = torch.zeros(dim, dtype=F64)
    concentration[0] = strength
    k, s = dim - 1, strength
    series = sum(
        (-1) ** m
        * math.exp(math.lgamma(k + 2 * m + 1) - math.lgamma(k + 1))
        / (2**m * math.factorial(m) * s ** (2 * m))
        for m in range(5)
    )
    expected = (
        -0.5 * dim * math.log(2 * math.pi)
        - 0.5 * s**2
        + math.lgamma(k + 1)
        - (k + 1) * math.log(s)
        + math.log(series)
    )
    value = -concentration / strength
    assert dist.ProjectedNormal(concentration).log_prob(value).item() == pytest.approx(
        expected, rel=1e-12, abs=1e-6
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_strong_concentration_log_prob_and_gradients_are_finite(dtype):
    torch.manual_seed(0)
    concentration = torch.full((4,), 1000.0, dtype=dtype, requires_grad=True)
    # Directions all over the sphere, and one exactly at the mode.
    value = dist.ProjectedNormal(torch.zeros(4, dtype=dtype)).sample((2000,))
    value = torch.cat([value, torch.full((1, 4), 0.5, dtype=dtype)])
    log_prob = dist.ProjectedNormal(concentration).log_prob(value)
    assert log_prob.dtype == dtype and log_prob.isfinite().all()
    # At the mode the density is (2 pi)^(-2) I_3(2000) with I_3(t) ~ sqrt(2 pi) (t^3 + 3 t).
    at_mode = -2 * math.log(2 * math.pi) + 0.5 * math.log(2 * math.pi) + math.log(2000.0**3 + 6000)
    assert log_prob[-1].item() == pytest.approx(at_mode, rel=1e-5)
    (grad,) = torch.autograd.grad(log_prob.sum(), concentration)
    assert grad.isfinite().all()
