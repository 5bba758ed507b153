"""Trace_MMD: its MMD term is an unbiased estimate of the closed-form discrepancy between two
normals, it drives a guide to a known target, its likelihood term is the data's, per-site
settings apply, and arguments it cannot use are refused by name. The kernel is ours: an RBF
module with the call signature of Pyro's gp kernels, ``kernel(X, Z=None)``."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine.distributions.testing.fakes import NonreparameterizedNormal
from engine.errors import ArgumentError, ReparamError
from engine.infer import SVI, Trace_MMD
from engine.optim import SGD


class RBF(torch.nn.Module):
    """exp(-|x - z|^2 / (2 lengthscale^2)), Gram matrix of two point sets."""

    def __init__(self, lengthscale: float = 1.0):
        super().__init__()
        self.lengthscale = torch.nn.Parameter(torch.tensor(lengthscale))

    def forward(self, X, Z=None):
        Z = X if Z is None else Z
        squared = (X[:, None, :] - Z[None, :, :]).pow(2).sum(-1)
        return torch.exp(-0.5 * squared / self.lengthscale**2)


def expected_rbf(mean_gap, variance_sum, lengthscale=1.0):
    """E k(x, y) for independent normal x, y: x - y ~ N(mean_gap, variance_sum)."""
    spread = lengthscale**2 + variance_sum
    return lengthscale / math.sqrt(spread) * math.exp(-(mean_gap**2) / (2 * spread))


def prior_model():
    engine.sample("z", dist.Normal(0.0, 1.0))


def fixed_guide():
    engine.sample("z", dist.Normal(1.0, 0.5))


@pytest.fixture(autouse=True)
def fresh_store():
    engine.clear_param_store()
    yield
    engine.clear_param_store()


def test_the_mmd_term_estimates_the_closed_form_without_bias():
    engine.set_rng_seed(0)
    elbo = Trace_MMD(kernel=RBF(), num_particles=400)
    replicates = torch.tensor([elbo.loss(prior_model, fixed_guide) for _ in range(20)])
    # p = N(0, 1), q = N(1, 1/4): MMD^2 = E k(p, p') + E k(q, q') - 2 E k(p, q).
    exact = expected_rbf(0.0, 2.0) + expected_rbf(0.0, 0.5) - 2 * expected_rbf(1.0, 1.25)
    # The estimator is unbiased: the mean of 20 replicates is within 4 of its standard errors
    # (estimated from the replicates' spread, which must itself be small for a sharp test).
    standard_error = replicates.std().item() / math.sqrt(len(replicates))
    assert standard_error < 0.01
    assert replicates.mean().item() == pytest.approx(exact, abs=4 * standard_error)


def test_unvectorised_particles_give_the_same_estimate():
    engine.set_rng_seed(1)
    elbo = Trace_MMD(kernel=RBF(), num_particles=100, vectorize_particles=False)
    replicates = torch.tensor([elbo.loss(prior_model, fixed_guide) for _ in range(20)])
    exact = expected_rbf(0.0, 2.0) + expected_rbf(0.0, 0.5) - 2 * expected_rbf(1.0, 1.25)
    standard_error = replicates.std().item() / math.sqrt(len(replicates))
    assert standard_error < 0.02
    assert replicates.mean().item() == pytest.approx(exact, abs=4 * standard_error)


def test_drives_a_plated_guide_to_the_target():
    # The target: two independent N(-1, 1/4) coordinates (one point of R^2 per particle).
    def model():
        with engine.plate("pair", 2):
            engine.sample("z", dist.Normal(-1.0, 0.5))

    def guide():
        loc = engine.param("loc", torch.tensor(1.0))
        log_scale = engine.param("log_scale", torch.tensor(0.0))
        with engine.plate("pair", 2):
            engine.sample("z", dist.Normal(loc, log_scale.exp()))

    engine.set_rng_seed(2)
    svi = SVI(model, guide, SGD({"lr": 0.3}), Trace_MMD(kernel=RBF(), num_particles=100))
    burn_in, batches, batch_length = 400, 10, 60
    for _ in range(burn_in):
        svi.step()
    batch_means = {"loc": [], "log_scale": []}
    for _ in range(batches):
        sums = dict.fromkeys(batch_means, 0.0)
        for _ in range(batch_length):
            svi.step()
            for name in sums:
                sums[name] += engine.param(name).item()
        for name, total in sums.items():
            batch_means[name].append(total / batch_length)
    # The MMD is zero only at the target, so SGD's iterates settle in a cloud around it. Their
    # mean's standard error comes from batch means (batches of 60 steps, much longer than the
    # cloud's correlation time of a few steps at this step size); allow 4 of them, after
    # checking the error is small enough for the test to be sharp.
    for name, target in (("loc", -1.0), ("log_scale", math.log(0.5))):
        means = torch.tensor(batch_means[name])
        standard_error = means.std().item() / math.sqrt(batches)
        assert standard_error < 0.03
        assert means.mean().item() == pytest.approx(target, abs=4 * standard_error)


def test_the_likelihood_term_is_the_datas_and_scales_apply_per_site():
    def model():
        z = engine.sample("z", dist.Normal(0.0, 1.0))
        engine.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(1.0))

    def guide():
        engine.sample("z", dist.Normal(0.5, 1e-4))

    engine.set_rng_seed(3)
    elbo = Trace_MMD(kernel={"z": RBF()}, mmd_scale={"z": 0.0}, num_particles=10)
    # Only -E_q log N(1; z, 1) is left, and q pins z to 0.5 (to 1e-4, so to ~1e-4 in the loss).
    expected = 0.5 * math.log(2 * math.pi) + 0.5 * 0.5**2
    assert elbo.loss(model, guide) == pytest.approx(expected, abs=1e-3)


def test_a_module_kernel_is_held_fixed():
    kernel = RBF(2.0)
    Trace_MMD(kernel=kernel)
    assert not kernel.lengthscale.requires_grad


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel": "rbf"}, "a kernel must be a callable"),
        ({"kernel": {"z": 3.0}}, "a kernel must be a callable"),
        ({"kernel": RBF(), "mmd_scale": -1.0}, "must be a finite number >= 0"),
        ({"kernel": RBF(), "mmd_scale": {"z": "big"}}, "must be a finite number >= 0"),
        ({"kernel": RBF(), "num_particles": 1}, "needs num_particles >= 2"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        Trace_MMD(**kwargs)


def test_a_kernel_dict_without_the_site_is_refused_by_name():
    elbo = Trace_MMD(kernel={"w": RBF()}, num_particles=4)
    with pytest.raises(ArgumentError, match="kernel dict has no entry for the latent site 'z'"):
        elbo.loss(prior_model, fixed_guide)


def test_a_kernel_that_returns_no_gram_matrix_is_refused():
    elbo = Trace_MMD(kernel=lambda X, Z: (X - Z).sum(), num_particles=4)
    with pytest.raises(ArgumentError, match=r"must return the Gram matrix of shape \(4, 4\)"):
        elbo.loss(prior_model, fixed_guide)


def test_a_guide_without_reparameterized_draws_is_refused():
    def guide():
        engine.sample("z", NonreparameterizedNormal(0.0, 1.0))

    with pytest.raises(ReparamError, match=r"guide's site 'z'.*without rsample"):
        Trace_MMD(kernel=RBF(), num_particles=4).loss(prior_model, guide)
