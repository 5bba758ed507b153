"""Pyro's public mass-matrix adapters, BlockMassMatrix and ArrowheadMassMatrix: their estimates
against the known covariance of a Gaussian, and the algebra of a Hamiltonian step by site.

Tolerances: a sample (co)variance of n independent draws has standard error of at most
``sqrt((Σ_ii Σ_jj + Σ_ij²) / n)`` per entry (Isserlis); we allow 5 of those (entries are checked
one by one, 5 sd keeps a spurious failure below 1e-5 over a few dozen entries), plus the
estimator's shrinkage towards the identity, ``5 / (n + 5)`` of the value.
"""

import pytest
import torch

from engine.infer.mcmc import ArrowheadMassMatrix, BlockMassMatrix
from engine.infer.mcmc.adaptation import ArrowheadMassMatrix as FromAdaptation
from engine.infer.mcmc.block_mass_matrix import ArrowheadMatrix

COVARIANCE = torch.tensor([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
N = 4000


def gaussian_draws(covariance, n=N, seed=7):
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, covariance.shape[0], generator=generator)
    return noise @ torch.linalg.cholesky(covariance).T


def allowed_error(covariance, n=N):
    variance = covariance.diagonal()
    se = ((variance[:, None] * variance[None, :] + covariance**2) / n).sqrt()
    return 5 * se + 5 / (n + 5) * covariance.abs() + 1e-3


def test_the_adapters_are_importable_where_pyro_has_them():
    assert FromAdaptation is ArrowheadMassMatrix


def test_block_mass_matrix_estimates_each_block_from_the_draws():
    draws = gaussian_draws(COVARIANCE)
    adapter = BlockMassMatrix()
    # "a" and "b" share a dense block; "c" alone is diagonal
    adapter.configure({("a", "b"): (2, 2), ("c",): (1,)})
    assert adapter.mass_matrix_size == {("a", "b"): 2, ("c",): 1}
    for z in draws:
        adapter.update({"a": z[:1], "b": z[1:2], "c": z[2:]}, None)
    adapter.end_adaptation()
    inverse = adapter.inverse_mass_matrix
    error = allowed_error(COVARIANCE)
    assert ((inverse[("a", "b")] - COVARIANCE[:2, :2]).abs() <= error[:2, :2]).all()
    assert inverse[("c",)].shape == (1,)
    assert (inverse[("c",)] - COVARIANCE[2, 2]).abs() <= error[2, 2]


def test_end_adaptation_starts_a_fresh_window():
    adapter = BlockMassMatrix()
    adapter.configure({("x",): (1,)})
    for value in (0.0, 100.0, -100.0):
        adapter.update({"x": torch.tensor([value])}, None)
    adapter.end_adaptation()
    for value in (1.0, 3.0):  # only these two count for the second window: variance 2
        adapter.update({"x": torch.tensor([value])}, None)
    adapter.end_adaptation()
    expected = 2.0 * 2 / 7 + 1e-3 * 5 / 7  # Stan's shrinkage with n = 2
    assert adapter.inverse_mass_matrix[("x",)].item() == pytest.approx(expected)


def test_no_adaptation_keeps_the_initial_matrix():
    adapter = BlockMassMatrix(init_scale=3.0)
    adapter.configure({("x",): (2, 2)}, adapt_mass_matrix=False)
    adapter.update({"x": torch.tensor([5.0, -5.0])}, None)
    adapter.end_adaptation()
    assert torch.equal(adapter.inverse_mass_matrix[("x",)], 3.0 * torch.eye(2))


def test_hamiltonian_algebra_by_site():
    adapter = BlockMassMatrix()
    adapter.configure({("m",): (4, 4), ("s",): (2,)}, options={"dtype": torch.float64})
    inverse = torch.tensor(
        [[2.0, 0.3, 0.0, 0.1], [0.3, 1.0, 0.2, 0.0], [0.0, 0.2, 1.5, 0.4], [0.1, 0.0, 0.4, 3.0]],
        dtype=torch.float64,
    )
    adapter.inverse_mass_matrix = {("m",): inverse, ("s",): torch.tensor([4.0, 0.25]).double()}
    prototype = {"m": torch.zeros(2, 2).double(), "s": torch.zeros(2).double()}
    # scale maps unit noise to a momentum with covariance M: over a basis, R Rᵀ = M = inverse⁻¹
    columns = [
        adapter.scale({("m",): e, ("s",): torch.zeros(2).double()}, prototype)["m"].reshape(-1)
        for e in torch.eye(4, dtype=torch.float64)
    ]
    basis = torch.stack(columns, -1)
    assert torch.allclose(basis @ basis.T, torch.linalg.inv(inverse))
    r = adapter.scale({("m",): torch.ones(4).double(), ("s",): torch.ones(2).double()}, prototype)
    assert r["m"].shape == (2, 2) and r["s"].shape == (2,)
    assert torch.allclose(r["s"], torch.tensor([0.5, 2.0]).double())  # diagonal: r = ε / sqrt(M⁻¹)
    back = adapter.unscale(r)
    assert torch.allclose(back[("m",)], torch.ones(4).double())
    assert torch.allclose(back[("s",)], torch.ones(2).double())
    velocity = adapter.kinetic_grad(r)
    assert torch.allclose(velocity["m"].reshape(-1), inverse @ r["m"].reshape(-1))
    assert torch.allclose(velocity["s"], torch.tensor([4.0, 0.25]).double() * r["s"])


def test_bad_shapes_are_refused_with_the_block_named():
    adapter = BlockMassMatrix()
    with pytest.raises(ValueError, match=r"\('x',\)"):
        adapter.configure({("x",): (2, 3)})
    adapter.configure({("x",): (2,)})
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        adapter.inverse_mass_matrix = {("x",): torch.eye(2)}
    with pytest.raises(KeyError, match="no block"):
        adapter.inverse_mass_matrix = {("y",): torch.ones(2)}


def test_arrowhead_mass_matrix_is_the_covariance_of_the_gradients():
    # U(z) = ½ zᵀ P z has gradient P z; for z ~ N(0, P⁻¹) that gradient has covariance P, the
    # ideal mass matrix. "h" (a dense block) is the head; "d" and "e" are diagonal sites.
    precision = torch.linalg.inv(COVARIANCE)
    draws = gaussian_draws(COVARIANCE)
    grads = draws @ precision
    adapter = ArrowheadMassMatrix()
    adapter.configure({("d",): (1,), ("h",): (1, 1), ("e",): (1,)})
    (key,) = adapter.inverse_mass_matrix
    assert key == ("h", "d", "e")
    order = [1, 0, 2]  # the key's order in COVARIANCE's coordinates
    for z, g in zip(draws, grads, strict=True):
        adapter.update(
            {"d": z[0:1], "h": z[1:2], "e": z[2:]}, {"d": g[0:1], "h": g[1:2], "e": g[2:]}
        )
    adapter.end_adaptation()
    mass = adapter.mass_matrix[key]
    target = precision[order][:, order]
    error = allowed_error(target)
    assert mass.top.shape == (1, 3) and mass.bottom_diag.shape == (2,)
    assert ((mass.top - target[:1]).abs() <= error[:1]).all()
    assert ((mass.bottom_diag - target.diagonal()[1:]).abs() <= error.diagonal()[1:]).all()
    # the inverse is that arrowhead's inverse (dense), so the kinetic step uses M⁻¹ exactly
    product = adapter.inverse_mass_matrix[key] @ mass.to_dense()
    assert torch.allclose(product, torch.eye(3), atol=1e-5)


def test_arrowhead_without_a_head_is_diagonal():
    adapter = ArrowheadMassMatrix(init_scale=4.0)  # the initial *mass*, as in Pyro
    adapter.configure({("x",): (3,)})
    assert torch.equal(adapter.inverse_mass_matrix[("x",)], torch.full((3,), 0.25))
    mass = adapter.mass_matrix[("x",)]
    assert mass.top.shape == (0, 3)
    assert isinstance(mass, ArrowheadMatrix)


def test_arrowhead_needs_the_gradients():
    adapter = ArrowheadMassMatrix()
    adapter.configure({("x",): (1,)})
    with pytest.raises(ValueError, match="z_grad"):
        adapter.update({"x": torch.zeros(1)}, None)
