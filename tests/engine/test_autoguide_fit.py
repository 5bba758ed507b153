"""Autoguides fitted by a hand-written ELBO loop, and the Laplace approximation, against closed
forms."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.infer.autoguide import (
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoMultivariateNormal,
    AutoNormal,
)

DATA = torch.tensor([0.8, 1.9, 1.2, 0.3, 1.6, 2.2, 0.9, 1.4, 1.1, 1.7])
N = len(DATA)
# mu ~ Normal(0, 1), x_i ~ Normal(mu, 1): the posterior is Normal(sum(x) / (n + 1), 1 / (n + 1)).
POSTERIOR_MEAN = DATA.sum().item() / (N + 1)
POSTERIOR_VAR = 1 / (N + 1)


def normal_normal(data):
    mu = engine.sample("mu", dist.Normal(0.0, 1.0))
    with engine.plate("data", len(data)):
        engine.sample("obs", dist.Normal(mu, 1.0), obs=data)


def negative_elbo(model, guide, *args):
    guide_trace = poutine.trace(guide).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
    return guide_trace.log_prob_sum() - model_trace.log_prob_sum()


@pytest.mark.parametrize(
    "guide_cls, loc_of_mu",
    [
        (AutoNormal, lambda: engine.param("AutoNormal.locs.mu")),
        (AutoMultivariateNormal, lambda: engine.param("AutoMultivariateNormal.loc")[0]),
    ],
)
def test_fit_recovers_the_normal_normal_posterior_mean(guide_cls, loc_of_mu):
    guide = guide_cls(normal_normal, model_args=(DATA,))
    leaves = [leaf for _, leaf in engine.get_param_store().named_parameters()]
    adam = torch.optim.Adam(leaves, lr=0.05)
    for _ in range(400):
        adam.zero_grad()
        negative_elbo(normal_normal, guide, DATA).backward()
        adam.step()
    # Then plain SGD, averaging loc over K steps. Near the optimum the loc update is an AR(1)
    # process, loc' = loc - lr (loc - m + s eps) / v, whose K-step average has standard deviation
    # sqrt(s^2 / K) = sqrt(v / K): the Monte Carlo error of K posterior draws.
    sgd = torch.optim.SGD(leaves, lr=0.005)
    burn_in, steps = 300, 2000
    total = 0.0
    for step in range(burn_in + steps):
        sgd.zero_grad()
        negative_elbo(normal_normal, guide, DATA).backward()
        sgd.step()
        if step >= burn_in:
            total += loc_of_mu().item()
    monte_carlo_error = math.sqrt(POSTERIOR_VAR / steps)
    assert abs(total / steps - POSTERIOR_MEAN) < 4 * monte_carlo_error


def test_laplace_approximation_of_a_gaussian_posterior_is_exact():
    guide = AutoLaplaceApproximation(normal_normal, model_args=(DATA,))
    engine.get_param_store()["AutoLaplaceApproximation.loc"] = torch.tensor([POSTERIOR_MEAN])
    gaussian = guide.laplace_approximation(DATA)
    assert isinstance(gaussian, AutoMultivariateNormal)
    posterior = gaussian.get_posterior()
    assert torch.allclose(posterior.mean, torch.tensor([POSTERIOR_MEAN]), atol=1e-6)
    assert torch.allclose(posterior.covariance_matrix, torch.tensor([[POSTERIOR_VAR]]), atol=1e-6)
    assert math.isclose(gaussian.median()["mu"].item(), POSTERIOR_MEAN, rel_tol=1e-6)


def test_laplace_approximation_works_in_unconstrained_space():
    # rate ~ Gamma(a, b), x_i ~ Poisson(rate). In u = log(rate), Jacobian included, the log
    # density is (a + sum x) u - (b + n) exp(u): mode exp(u) = (a + sum x) / (b + n) and
    # curvature a + sum x.
    a, b = 2.0, 1.0
    counts = torch.tensor([3.0, 1.0, 4.0, 2.0, 2.0])

    def gamma_poisson(counts):
        rate = engine.sample("rate", dist.Gamma(a, b))
        with engine.plate("data", len(counts)):
            engine.sample("obs", dist.Poisson(rate), obs=counts)

    mode = (a + counts.sum().item()) / (b + len(counts))
    guide = AutoLaplaceApproximation(gamma_poisson, model_args=(counts,))
    engine.get_param_store()["AutoLaplaceApproximation.loc"] = torch.tensor([math.log(mode)])
    assert math.isclose(guide.median()["rate"].item(), mode, rel_tol=1e-6)
    gaussian = guide.laplace_approximation(counts)
    variance = gaussian.get_posterior().covariance_matrix
    assert torch.allclose(variance, torch.tensor([[1 / (a + counts.sum().item())]]), atol=1e-6)


def test_diagonal_guide_fits_a_map_like_quadratic_quickly():
    # Not statistical: with the noise switched off (scale fixed tiny), gradient descent on the
    # ELBO moves loc to the posterior mode, which here is the posterior mean.
    guide = AutoDiagonalNormal(normal_normal, init_scale=1e-4, model_args=(DATA,))
    loc = engine.get_param_store()["AutoDiagonalNormal.loc"].unconstrained()
    sgd = torch.optim.SGD([loc], lr=0.02)
    for _ in range(300):
        sgd.zero_grad()
        negative_elbo(normal_normal, guide, DATA).backward()
        sgd.step()
    assert abs(loc.item() - POSTERIOR_MEAN) < 1e-3
