"""Bayesian linear regression fitted by SVI with each autoguide, against the exact posterior.

y = X w + b + noise, noise ~ N(0, 0.5^2) with the scale known, w ~ N(0, I), b ~ N(0, 1): the
posterior of theta = (w, b) is Gaussian with precision I + A^T A / 0.25 and mean
Sigma A^T y / 0.25 (A = [X, 1]). A Gaussian posterior's mean is also its mode, and the optimal
mean-field Gaussian has the exact mean, so every guide's median must land on it. The tolerance is
the Monte Carlo error of the averaged last iterates, estimated by batch means (they are
autocorrelated).
"""

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from engine.optim import Adam

SIGMA = 0.5


def make_data():
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(40, 2, generator=generator)
    y = x @ torch.tensor([1.5, -0.7]) + 0.3 + SIGMA * torch.randn(40, generator=generator)
    return x, y


def model(x, y):
    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(x @ w + b, SIGMA), obs=y)


def exact_posterior_mean(x, y):
    design = torch.cat([x, torch.ones(len(y), 1)], dim=1).double()
    precision = torch.eye(3, dtype=torch.float64) + design.T @ design / SIGMA**2
    return torch.linalg.solve(precision, design.T @ y.double() / SIGMA**2).float()


@pytest.mark.parametrize(
    "guide_class",
    [
        AutoNormal,
        AutoDelta,
        AutoDiagonalNormal,
        AutoMultivariateNormal,
        AutoLowRankMultivariateNormal,
        AutoLaplaceApproximation,
    ],
)
def test_each_autoguide_recovers_the_posterior_mean(guide_class):
    x, y = make_data()
    pyro.set_rng_seed(0)
    guide = guide_class(model, model_args=(x, y))
    elbo = Trace_ELBO()
    svi = SVI(model, guide, Adam({"lr": 0.03}), elbo)
    medians = []
    for step in range(1200):
        svi.step(x, y)
        if step >= 900:
            median = guide.median(x, y)
            medians.append(torch.cat([median["w"], median["b"].reshape(1)]).detach())
    medians = torch.stack(medians)
    exact = exact_posterior_mean(x, y)
    batch_means = medians[:300].reshape(10, 30, 3).mean(1)
    standard_error = batch_means.std(0) / 10**0.5
    error = (medians.mean(0) - exact).abs()
    # MAP guides (AutoDelta, Laplace) have no noise at all: float32 resolution is the floor.
    assert torch.all(error < 4.5 * standard_error + 1e-5), (medians.mean(0), exact, standard_error)
    if guide_class is AutoLaplaceApproximation:
        laplace = guide.laplace_approximation(x, y)
        assert torch.allclose(laplace.median(x, y)["b"], guide.median(x, y)["b"])
