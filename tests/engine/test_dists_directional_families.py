"""Directional and matrix families added for Pyro parity: VonMises3D, SineBivariateVonMises,
SineSkewed and LKJ (with the corr_matrix/sphere constraints).

Normalisers are checked by integrating the density numerically (a fine grid on the torus,
Fibonacci-free spherical coordinates on the sphere), draws by their moments against the same
integrals: sample means within Z standard errors, the standard error taken as (a bound on the
statistic's sd) / sqrt(n).
"""

import math

import pytest
import torch

import engine.distributions as dist
from engine.distributions import constraints
from engine.errors import ShapeError

Z = 5.0
T = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731


def _torus_grid(n: int = 400) -> tuple[torch.Tensor, float]:
    g = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n) - math.pi
    a, b = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([a, b], -1), (2 * math.pi / n) ** 2


# ------------------------------------------------------------------ VonMises3D


def test_von_mises_3d_normalises_and_draws_have_the_mean_resultant():
    conc = T([0.3, -1.2, 2.0])
    d = dist.VonMises3D(conc)
    # Integrate over the sphere in spherical coordinates.
    n = 400
    theta = (torch.arange(n, dtype=torch.float64) + 0.5) * math.pi / n
    phi = (torch.arange(2 * n, dtype=torch.float64) + 0.5) * math.pi / n
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    x = torch.stack([th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()], -1)
    total = (d.log_prob(x).exp() * th.sin()).sum() * (math.pi / n) ** 2
    assert math.isclose(float(total), 1.0, rel_tol=1e-4)

    draws = d.sample((20000,))
    assert torch.allclose(draws.norm(dim=-1), torch.ones(20000, dtype=torch.float64))
    assert bool(constraints.sphere.check(draws).all())
    kappa = float(conc.norm())
    mu = conc / kappa
    cos = draws @ mu  # E[mu . x] = coth(kappa) - 1 / kappa; |mu . x| <= 1 bounds its sd
    expected = 1 / math.tanh(kappa) - 1 / kappa
    assert abs(float(cos.mean()) - expected) < Z / math.sqrt(20000)
    # Orthogonal directions average to zero.
    other = torch.linalg.svd(mu.unsqueeze(0)).Vh[1:]
    assert (draws @ other.T).mean(0).abs().max() < Z / math.sqrt(20000)


def test_von_mises_3d_zero_concentration_is_uniform_and_shapes_are_checked():
    d = dist.VonMises3D(torch.zeros(2, 3, dtype=torch.float64))
    assert torch.allclose(d.log_prob(T([0.0, 0.0, 1.0])), T(-math.log(4 * math.pi)))
    assert d.sample((5,)).shape == (5, 2, 3)
    assert d.expand([4, 2]).batch_shape == (4, 2)
    with pytest.raises(ShapeError, match=r"\(\.\.\., 3\)"):
        dist.VonMises3D(T([1.0, 2.0]))


# ------------------------------------------------------------------ SineBivariateVonMises


@pytest.mark.parametrize(
    "params",
    [(0.3, -1.0, 1.0, 1.0, 3.0), (1.0, 2.0, 8.0, 5.0, -4.0), (0.0, 0.0, 0.5, 10.0, 0.9)],
    ids=["bimodal", "concentrated", "mixed"],
)
def test_sine_bivariate_von_mises_normaliser_and_draws(params):
    d = dist.SineBivariateVonMises(*map(T, params))
    grid, cell = _torus_grid()
    density = d.log_prob(grid).exp() * cell
    assert math.isclose(float(density.sum()), 1.0, rel_tol=1e-8)
    a = grid[..., 0] - d.phi_loc
    b = grid[..., 1] - d.psi_loc
    stats = [a.cos(), b.cos(), a.sin() * b.sin()]
    exact = [float((density * s).sum()) for s in stats]

    draws = d.sample((20000,))
    assert draws.shape == (20000, 2)
    assert bool(((draws >= -math.pi) & (draws < math.pi)).all())
    da, db = draws[:, 0] - d.phi_loc, draws[:, 1] - d.psi_loc
    for sample_stat, value in zip([da.cos(), db.cos(), da.sin() * db.sin()], exact, strict=True):
        assert abs(float(sample_stat.mean()) - value) < Z / math.sqrt(20000)  # |stat| <= 1


def test_sine_bivariate_von_mises_weighted_correlation():
    d = dist.SineBivariateVonMises(T(0.0), T(0.0), T(4.0), T(9.0), weighted_correlation=T(0.5))
    assert math.isclose(float(d.correlation), 0.5 * 6.0)
    with pytest.raises(ValueError, match="exactly one"):
        dist.SineBivariateVonMises(T(0.0), T(0.0), T(4.0), T(9.0))


# ------------------------------------------------------------------ SineSkewed


def test_sine_skewed_normalises_and_draws_follow_it():
    base = dist.SineBivariateVonMises(T(0.3), T(-1.0), T(2.0), T(3.0), T(1.0))
    skewness = T([0.4, -0.3])
    d = dist.SineSkewed(base, skewness)
    grid, cell = _torus_grid()
    density = d.log_prob(grid).exp() * cell
    assert math.isclose(float(density.sum()), 1.0, rel_tol=1e-8)
    exact = [float((density * grid[..., i].sin()).sum()) for i in range(2)]
    draws = d.sample((20000,))
    for i in range(2):
        assert abs(float(draws[:, i].sin().mean()) - exact[i]) < Z / math.sqrt(20000)


def test_sine_skewed_checks_shapes():
    vm = dist.VonMises(T([0.0, 1.0]), T([1.0, 2.0]))
    with pytest.raises(ShapeError, match="event_shape"):
        dist.SineSkewed(vm, T([0.1, 0.2]))
    with pytest.raises(ShapeError, match="skewness"):
        dist.SineSkewed(vm.to_event(1), T([0.1, 0.2, 0.3]))
    d = dist.SineSkewed(vm.to_event(1), T([[0.1, 0.2], [0.3, -0.2], [0.0, 0.5]]))
    assert d.batch_shape == (3,) and d.expand([4, 3]).sample().shape == (4, 3, 2)


# ------------------------------------------------------------------ LKJ


def test_lkj_matches_lkj_cholesky_through_the_change_of_variables():
    d = dist.LKJ(4, T(1.7))
    chol = dist.LKJCholesky(4, T(1.7))
    L = chol.sample((6,))
    C = L @ L.mT
    jac = dist.transforms.CorrMatrixCholeskyTransform().log_abs_det_jacobian(C, L)
    assert torch.allclose(d.log_prob(C), chol.log_prob(L) + jac, atol=1e-10)
    assert bool(constraints.corr_matrix.check(d.sample((3,))).all())
    assert d.expand([2, 3]).sample().shape == (2, 3, 4, 4)


def test_lkj_2x2_correlation_is_a_stretched_beta():
    # For dim 2 the density of r = C[0, 1] is proportional to (1 - r^2)^(eta - 1): a
    # Beta(eta, eta) on [-1, 1]; its variance is 1 / (2 eta + 1).
    eta = 2.5
    r = dist.LKJ(2, T(eta)).sample((20000,))[:, 0, 1]
    var = 1 / (2 * eta + 1)
    assert abs(float(r.mean())) < Z * math.sqrt(var / 20000)
    assert abs(float(r.pow(2).mean()) - var) < Z * math.sqrt(1 / 20000)  # r^2 <= 1


def test_corr_matrix_transform_round_trip_and_biject_to():
    t = dist.biject_to(constraints.corr_matrix)
    y = torch.randn(5, 6, dtype=torch.float64)
    C = t(y)
    assert bool(constraints.corr_matrix.check(C).all())
    assert torch.allclose(t(t.inv(C)), C, atol=1e-10)
    assert not bool(constraints.corr_matrix.check(T([[1.0, 2.0], [2.0, 1.0]])))
