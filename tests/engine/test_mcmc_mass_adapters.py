"""HMC and NUTS with Pyro's mass-matrix adapters (``kernel.mass_matrix_adapter``) and block
``full_mass`` lists: the draws of a correlated Gaussian, the adapted matrices against its
covariance (precision, for the arrowhead adapter), the algebra of the keyed mass, and the errors.

Tolerances (all derived from Monte Carlo error):
- a posterior mean within 4 ``mcse_mean`` (sd / sqrt(ESS) of split chains);
- a covariance entry Σ_ij is the mean of the products (x_i - μ_i)(x_j - μ_j) about the known
  mean, so it is checked like a mean: within 4 ``mcse_mean`` of those products;
- an adapted matrix comes from the last warm-up window of ``n`` iterations; an entry of a sample
  covariance of ``m`` independent draws has standard error sqrt((Σ_ii Σ_jj + Σ_ij²) / m)
  (Isserlis). The draws are not independent: we take ``m = n · min(1, ESS / N)``, with ESS / N the
  efficiency the same chains show for the products while sampling (the mass matrix of the last
  window is close to the final one), and allow 5 standard errors plus the estimator's shrinkage
  towards the identity (5 / (n + 5) of the value).
"""

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.errors import MCMCError
from engine.infer import HMC, MCMC, NUTS
from engine.infer.mcmc import ArrowheadMassMatrix, BlockMassMatrix
from engine.infer.mcmc.adaptation import adaptation_windows
from engine.infer.mcmc.diagnostics import effective_sample_size, mcse_mean
from engine.infer.mcmc.keyed_mass import KeyedMass
from engine.infer.mcmc.mass_matrix import MassMatrix

# The target: (a0, a1, b) strongly correlated, c apart; flat order a0, a1, b, c.
LOC = torch.tensor([1.0, -1.0, 0.5, 2.0])
COV = torch.tensor(
    [
        [1.0, 0.6, -0.5, 0.0],
        [0.6, 2.0, 0.9, 0.0],
        [-0.5, 0.9, 1.5, 0.0],
        [0.0, 0.0, 0.0, 0.5],
    ]
)
WARMUP, SAMPLES, CHAINS = 500, 1000, 2
LAST_WINDOW = adaptation_windows(WARMUP)[-1][1] - adaptation_windows(WARMUP)[-1][0]


def target_model():
    cov_aa, cov_ba = COV[:2, :2], COV[2, :2]
    weights = torch.linalg.solve(cov_aa, cov_ba)
    b_sd = (COV[2, 2] - cov_ba @ weights).sqrt()
    a = pyro.sample("a", dist.MultivariateNormal(LOC[:2], cov_aa))
    pyro.sample("b", dist.Normal(LOC[2] + ((a - LOC[:2]) * weights).sum(-1), b_sd))
    pyro.sample("c", dist.Normal(LOC[3], COV[3, 3].sqrt()))


def joined_draws(mcmc):
    """(chains, draws, 4): a0, a1, b, c."""
    draws = mcmc.get_samples(group_by_chain=True)
    return torch.cat([draws["a"], draws["b"][..., None], draws["c"][..., None]], -1)


def products(deviations):
    """(chains, draws, k, k): the products of deviations (from a known mean) with each other."""
    return deviations[..., :, None] * deviations[..., None, :]


def assert_recovers_the_target(x):
    mean_error = (x.mean((0, 1)) - LOC).abs()
    assert (mean_error < 4 * mcse_mean(x)).all(), (x.mean((0, 1)), mcse_mean(x))
    p = products(x - LOC)
    cov_error = (p.mean((0, 1)) - COV).abs()
    assert (cov_error < 4 * mcse_mean(p)).all(), (p.mean((0, 1)), mcse_mean(p))


def estimate_tolerance(deviations, cov):
    """The tolerance on an adapted matrix estimating ``cov``, the covariance of ``deviations``
    (chains, draws, k) (draws or gradients about their known mean), from the last warm-up
    window (see the module docstring)."""
    p = products(deviations)
    efficiency = (effective_sample_size(p) / (p.shape[0] * p.shape[1])).min().clamp(max=1.0)
    m = LAST_WINDOW * efficiency
    variance = cov.diagonal()
    se = ((variance[:, None] * variance[None, :] + cov**2) / m).sqrt()
    return 5 * se + 5 / (LAST_WINDOW + 5) * cov.abs() + 1e-3


def test_block_full_mass_recovers_the_target_and_adapts_each_block():
    pyro.set_rng_seed(11)
    kernel = NUTS(target_model, full_mass=[("a", "b")])
    mcmc = MCMC(kernel, num_samples=SAMPLES, warmup_steps=WARMUP, num_chains=CHAINS)
    mcmc.run()
    x = joined_draws(mcmc)
    assert_recovers_the_target(x)
    # The default adapter of a block list is a BlockMassMatrix: a dense block, then the rest.
    assert isinstance(kernel.mass_matrix_adapter, BlockMassMatrix)
    blocks = kernel.inverse_mass_matrix
    assert list(blocks) == [("a", "b"), ("c",)]
    assert blocks[("a", "b")].shape == (CHAINS, 3, 3) and blocks[("c",)].shape == (CHAINS, 1)
    error = estimate_tolerance(x - LOC, COV)
    for chain in range(CHAINS):
        assert ((blocks[("a", "b")][chain] - COV[:3, :3]).abs() <= error[:3, :3]).all()
        assert ((blocks[("c",)][chain] - COV[3, 3]).abs() <= error[3, 3]).all()
    # The first chain's matrices are the kernel's adapter's own.
    own = kernel.mass_matrix_adapter.inverse_mass_matrix
    assert torch.equal(own[("a", "b")], blocks[("a", "b")][0])


def test_arrowhead_adapter_recovers_the_target_and_adapts_to_its_precision():
    pyro.set_rng_seed(12)
    kernel = NUTS(target_model, full_mass=[("b", "a")])
    kernel.mass_matrix_adapter = ArrowheadMassMatrix()
    mcmc = MCMC(kernel, num_samples=SAMPLES, warmup_steps=WARMUP, num_chains=CHAINS)
    mcmc.run()
    x = joined_draws(mcmc)
    assert_recovers_the_target(x)
    # One key, the head's sites first: b, a0, a1, then c.
    key = ("b", "a", "c")
    assert list(kernel.inverse_mass_matrix) == [key]
    order = torch.tensor([2, 0, 1, 3])
    cov = COV[order][:, order]
    precision = torch.linalg.inv(cov)
    # The potential's gradient at a draw z is precision @ (z - loc): its covariance is the
    # precision, which the adapter estimates (in arrowhead form).
    gradients = (x[..., order] - LOC[order]) @ precision
    error = estimate_tolerance(gradients, precision)
    mass = kernel.mass_matrix_adapter.mass_matrix[key]
    assert mass.top.shape == (3, 4) and mass.bottom_diag.shape == (1,)
    assert ((mass.top - precision[:3]).abs() <= error[:3]).all(), (mass.top, precision)
    assert (mass.bottom_diag - precision[3, 3]).abs() <= error[3, 3]
    # Its inverse, what the kinetic energy uses, is then close to the covariance: to first
    # order an error E of the precision moves the inverse by cov E cov, at most |cov| E |cov|
    # entry by entry.
    inverse = kernel.inverse_mass_matrix[key]
    assert inverse.shape == (CHAINS, 4, 4)
    bound = cov.abs() @ error @ cov.abs()
    assert ((inverse[0] - cov).abs() <= bound).all(), (inverse[0], cov)


def test_keyed_mass_is_the_flat_mass_matrix_it_stands_for():
    torch.manual_seed(0)
    # Key ("u", "v") over coordinates 3, 0 (dense), key ("w",) over 1, 2 (diagonal).
    index = {("u", "v"): torch.tensor([3, 0]), ("w",): torch.tensor([1, 2])}
    mass = KeyedMass(index, 2, {("u", "v"): True, ("w",): False})
    dense = torch.tensor([[2.0, 0.8], [0.8, 1.0]])
    mass.set_inverse_by_key(
        {("u", "v"): dense.expand(2, 2, 2), ("w",): torch.tensor([[3.0, 0.5], [3.0, 0.5]])}
    )
    flat = torch.zeros(4, 4)
    flat[3, 3], flat[3, 0], flat[0, 3], flat[0, 0] = 2.0, 0.8, 0.8, 1.0
    flat[1, 1], flat[2, 2] = 3.0, 0.5
    reference = MassMatrix(2, 4, dense=True)
    reference.set_inverse(flat.expand(2, 4, 4))
    assert torch.equal(mass.inverse, flat.expand(2, 4, 4))
    r = torch.randn(2, 4)
    assert torch.allclose(mass.velocity(r), reference.velocity(r))
    assert torch.allclose(mass.kinetic_energy(r), reference.kinetic_energy(r))
    # Momentum draws r ~ N(0, M) with M = flat⁻¹: 20000 draws give each entry of the sample
    # covariance a standard error of at most sqrt((M_ii M_jj + M_ij²) / 20000); allow 5.
    draws = torch.cat([mass.sample_momentum() for _ in range(10000)])
    m = torch.linalg.inv(flat)
    se = ((m.diagonal()[:, None] * m.diagonal()[None, :] + m**2) / draws.shape[0]).sqrt()
    assert ((draws.T @ draws / draws.shape[0] - m).abs() <= 5 * se).all()


def test_a_fixed_adapter_sets_the_kinetic_energy_of_hmc():
    pyro.set_rng_seed(13)
    kernel = HMC(target_model, num_steps=4, adapt_mass_matrix=False)
    kernel.mass_matrix_adapter = BlockMassMatrix(init_scale=0.25)
    MCMC(kernel, num_samples=5, warmup_steps=30).run()
    # Not adapted: the initial inverse mass, 0.25 I, over all sites in sorted order.
    (key,) = kernel.inverse_mass_matrix
    assert key == ("a", "b", "c")
    assert torch.equal(kernel.inverse_mass_matrix[key], torch.full((4,), 0.25))
    r = torch.ones(1, 4)
    assert kernel.mass.kinetic_energy(r).item() == pytest.approx(0.5 * 0.25 * 4)


def test_the_adapter_estimates_in_the_windows_of_warm_up():
    class Counting(BlockMassMatrix):
        def __init__(self):
            super().__init__()
            self.updates, self.closed = 0, []

        def update(self, z, z_grad):
            assert set(z) == set(z_grad) == {"a", "b", "c"} and z["a"].shape == (2,)
            self.updates += 1
            super().update(z, z_grad)

        def end_adaptation(self):
            self.closed.append(self.updates)
            super().end_adaptation()

    pyro.set_rng_seed(14)
    kernel = NUTS(target_model, mass_matrix_adapter=Counting())
    MCMC(kernel, num_samples=2, warmup_steps=200).run()
    ends = [end for _, end in adaptation_windows(200)]
    starts = [start for start, _ in adaptation_windows(200)]
    # After each window closes, the adapter has seen every iteration of the windows so far.
    assert kernel.mass_matrix_adapter.closed == [end - starts[0] for end in ends]


def test_the_default_keys_are_pyros_sorted_names():
    pyro.set_rng_seed(15)
    for full_mass, dim in ((False, 1), (True, 2)):
        kernel = NUTS(target_model, full_mass=full_mass)
        MCMC(kernel, num_samples=2, warmup_steps=2).run()
        ((key, value),) = kernel.inverse_mass_matrix.items()
        assert key == ("a", "b", "c") and value.dim() == dim
        assert kernel.mass_matrix_adapter is None


@pytest.mark.parametrize(
    "full_mass, match",
    [([("a", "x")], "'x'"), ([("a",), ("a", "b")], "'a'"), ([()], "empty")],
    ids=["unknown", "twice", "empty"],
)
def test_bad_blocks_are_refused_by_name(full_mass, match):
    with pytest.raises(MCMCError, match=match):
        MCMC(NUTS(target_model, full_mass=full_mass), num_samples=1, warmup_steps=1).run()


def test_a_non_adapter_is_refused():
    kernel = NUTS(target_model)
    with pytest.raises(MCMCError, match="end_adaptation"):
        kernel.mass_matrix_adapter = object()
