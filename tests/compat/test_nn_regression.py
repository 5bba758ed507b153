"""Pyro's Bayesian regression tutorial, with ``PyroModule[nn.Linear]`` and ``PyroSample`` priors,
fitted by SVI (each autoguide) and by NUTS, against the exact posterior of the conjugate model.

y = x w^T + b + noise with the noise scale SIGMA known, w ~ N(0, I), b ~ N(0, 1): the posterior
of theta = (w_1, w_2, b) (the order the module reads them: ``linear.weight`` then
``linear.bias``) is Gaussian with precision P = I + A^T A / SIGMA^2 and mean P^-1 A^T y / SIGMA^2,
where A = [x, 1]. A Gaussian's mean is its mode (AutoDelta's optimum). The optimal full-rank
Gaussian guide is the posterior itself; the optimal mean-field one has the exact mean and the
standard deviations 1 / sqrt(P_ii).
"""

import math

import pytest
import torch
from torch import nn

import engine as pyro
import engine.distributions as dist
from engine.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
from engine.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from engine.infer.mcmc.diagnostics import ess_bulk, mcse_mean
from engine.nn import PyroModule, PyroSample
from engine.optim import Adam

SIGMA = 0.5


class BayesianRegression(PyroModule):
    """The tutorial's model, with the noise scale known so the posterior is conjugate."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = PyroModule[nn.Linear](in_features, out_features)
        self.linear.weight = PyroSample(
            dist.Normal(0.0, 1.0).expand([out_features, in_features]).to_event(2)
        )
        self.linear.bias = PyroSample(dist.Normal(0.0, 1.0).expand([out_features]).to_event(1))

    def forward(self, x, y=None):
        mean = self.linear(x).squeeze(-1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(mean, SIGMA), obs=y)
        return mean


def make_data():
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(40, 2, generator=generator)
    y = x @ torch.tensor([1.5, -0.7]) + 0.3 + SIGMA * torch.randn(40, generator=generator)
    return x, y


def exact_posterior(x, y):
    """Mean and covariance of theta = (w_1, w_2, b)."""
    design = torch.cat([x, torch.ones(len(y), 1)], dim=1).double()
    precision = torch.eye(3, dtype=torch.float64) + design.T @ design / SIGMA**2
    covariance = torch.linalg.inv(precision)
    return (covariance @ design.T @ y.double() / SIGMA**2).float(), covariance.float()


def guide_moments(guide, name):
    """The guide's mean and standard deviations of theta, read from its params."""
    store = pyro.get_param_store()
    if isinstance(guide, AutoNormal):
        loc = torch.cat(
            [store[f"{name}.locs.linear.weight"].reshape(2), store[f"{name}.locs.linear.bias"]]
        )
        sd = torch.cat(
            [store[f"{name}.scales.linear.weight"].reshape(2), store[f"{name}.scales.linear.bias"]]
        )
        return loc.detach(), sd.detach()
    if isinstance(guide, AutoDelta):
        loc = torch.cat([store[f"{name}.linear.weight"].reshape(2), store[f"{name}.linear.bias"]])
        return loc.detach(), None
    # Copies: a real-valued param reads as the store's own tensor, which later steps change.
    loc = store[f"{name}.loc"].detach().clone()
    sd = store[f"{name}.scale"]
    if isinstance(guide, AutoMultivariateNormal):
        # As in Pyro 1.9: the Cholesky factor is scale[:, None] * (a unit lower triangular).
        tril = sd[:, None] * store[f"{name}.scale_tril"]
        sd = (tril @ tril.T).diagonal().sqrt()
    return loc, sd.detach().clone()


@pytest.mark.parametrize(
    "guide_class",
    [
        AutoNormal,
        AutoDiagonalNormal,
        # Slow only because each step of this guide costs about ten times AutoNormal's.
        pytest.param(AutoMultivariateNormal, marks=pytest.mark.slow),
        AutoDelta,
    ],
)
def test_svi_with_each_autoguide_recovers_the_exact_posterior(guide_class):
    x, y = make_data()
    pyro.set_rng_seed(0)
    model = BayesianRegression(2, 1)
    guide = guide_class(model)
    svi = SVI(model, guide, Adam({"lr": 0.03}), Trace_ELBO())
    locs, sds = [], []
    for step in range(1500):
        svi.step(x, y)
        if step >= 1200:
            loc, sd = guide_moments(guide, guide_class.__name__)
            locs.append(loc)
            sds.append(loc if sd is None else sd)
    mean, covariance = exact_posterior(x, y)
    if guide_class is AutoMultivariateNormal:
        exact_sd = covariance.diagonal().sqrt()
    else:  # the optimal mean-field Gaussian: 1 / sqrt(diag(precision))
        exact_sd = torch.linalg.inv(covariance.double()).diagonal().rsqrt().float()
    for iterates, exact in [(locs, mean), (sds, exact_sd)]:
        if guide_class is AutoDelta and iterates is sds:
            continue
        iterates = torch.stack(iterates)
        # SVI's gradients are Monte Carlo estimates, so the last iterates scatter around the
        # optimum; their average is compared with a tolerance of 4.5 of its standard errors,
        # estimated by batch means (10 batches of 30: the iterates are autocorrelated). A MAP
        # guide's gradient is exact, so only float32 resolution (the 1e-5) remains for it.
        batch_means = iterates.reshape(10, 30, 3).mean(1)
        standard_error = batch_means.std(0) / math.sqrt(10)
        error = (iterates.mean(0) - exact).abs()
        assert torch.all(error < 4.5 * standard_error + 1e-5), (iterates.mean(0), exact)


def test_svi_fit_predicts_like_the_tutorial():
    """Predictive with the fitted AutoDiagonalNormal returns the tutorial's sites, and its draws
    of ``linear.weight`` follow the guide."""
    x, y = make_data()
    pyro.set_rng_seed(0)
    model = BayesianRegression(2, 1)
    guide = AutoDiagonalNormal(model)
    svi = SVI(model, guide, Adam({"lr": 0.03}), Trace_ELBO())
    for _ in range(1500):
        svi.step(x, y)
    num_samples = 4000
    predictive = Predictive(
        model,
        guide=guide,
        num_samples=num_samples,
        return_sites=("linear.weight", "obs", "_RETURN"),
    )
    samples = predictive(x)
    # The tutorial then freezes the guide and reads its params and quantiles.
    guide.requires_grad_(False)
    assert sorted(pyro.get_param_store().keys()) == [
        "AutoDiagonalNormal.loc",
        "AutoDiagonalNormal.scale",
    ]
    quantiles = guide.quantiles([0.25, 0.5, 0.75])
    assert quantiles["linear.weight"].shape == (3, 1, 2)
    assert torch.allclose(quantiles["linear.bias"][1], pyro.param("AutoDiagonalNormal.loc")[2:])
    assert set(samples) == {"linear.weight", "obs", "_RETURN"}
    assert samples["linear.weight"].shape == (num_samples, 1, 1, 2)
    assert samples["obs"].shape == samples["_RETURN"].shape == (num_samples, 40)
    # Draws of obs scatter around the returned mean with the known noise scale.
    residual_sd = (samples["obs"] - samples["_RETURN"]).std()
    # 160,000 independent residuals: the sd estimate's standard error is SIGMA / sqrt(2 * 160000).
    assert abs(residual_sd - SIGMA) < 4 * SIGMA / math.sqrt(2 * num_samples * 40)
    weight = samples["linear.weight"].reshape(num_samples, 2)
    loc, sd = guide_moments(guide, "AutoDiagonalNormal")
    # Independent draws from the guide: the sample mean's standard error is sd / sqrt(4000).
    assert torch.all((weight.mean(0) - loc[:2]).abs() < 4 * sd[:2] / math.sqrt(num_samples))


@pytest.mark.slow
def test_nuts_draws_match_the_exact_posterior():
    x, y = make_data()
    pyro.set_rng_seed(0)
    mcmc = MCMC(NUTS(BayesianRegression(2, 1)), num_samples=500, warmup_steps=300, num_chains=2)
    mcmc.run(x, y)
    draws = mcmc.get_samples(group_by_chain=True)
    assert draws["linear.weight"].shape == (2, 500, 1, 2)
    theta = torch.cat([draws["linear.weight"].reshape(2, 500, 2), draws["linear.bias"]], dim=-1)
    mean, covariance = exact_posterior(x, y)
    for i in range(3):
        chains = theta[..., i]
        # The chains' mean is within 4 Monte Carlo standard errors (from their ESS) of the exact
        # mean; their sd within 4 standard errors of an sd estimate, sd / sqrt(2 ESS).
        assert abs(chains.mean() - mean[i]) < 4 * mcse_mean(chains), (i, chains.mean(), mean[i])
        sd = covariance[i, i].sqrt()
        sd_error = sd / math.sqrt(2 * ess_bulk(chains).item())
        assert abs(chains.std() - sd) < 4 * sd_error, (i, chains.std(), sd)


@pytest.mark.slow
def test_nuts_over_a_bayesian_neural_network_and_its_posterior_predictive():
    """A small Bayesian neural network (every weight a PyroSample prior) sampled by NUTS; the
    posterior predictive replays each draw through the network."""

    class BNN(PyroModule):
        def __init__(self, hidden=3):
            super().__init__()
            self.hidden = PyroModule[nn.Linear](1, hidden)
            self.hidden.weight = PyroSample(dist.Normal(0.0, 1.0).expand([hidden, 1]).to_event(2))
            self.hidden.bias = PyroSample(dist.Normal(0.0, 1.0).expand([hidden]).to_event(1))
            self.out = PyroModule[nn.Linear](hidden, 1)
            self.out.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, hidden]).to_event(2))
            self.out.bias = PyroSample(dist.Normal(0.0, 1.0).expand([1]).to_event(1))

        def forward(self, x, y=None):
            mean = self.out(torch.tanh(self.hidden(x))).squeeze(-1)
            with pyro.plate("data", x.shape[0]):
                pyro.sample("obs", dist.Normal(mean, 0.3), obs=y)
            return mean

    NUM_DRAWS = 60
    generator = torch.Generator().manual_seed(3)
    x = torch.linspace(-2, 2, 20).unsqueeze(-1)
    y = torch.sin(x.squeeze(-1)) + 0.3 * torch.randn(20, generator=generator)
    pyro.set_rng_seed(0)
    model = BNN()
    mcmc = MCMC(NUTS(model, max_tree_depth=6), num_samples=NUM_DRAWS, warmup_steps=60)
    mcmc.run(x, y)
    samples = mcmc.get_samples()
    assert {k: v.shape for k, v in samples.items()} == {
        "hidden.weight": (NUM_DRAWS, 3, 1),
        "hidden.bias": (NUM_DRAWS, 3),
        "out.weight": (NUM_DRAWS, 1, 3),
        "out.bias": (NUM_DRAWS, 1),
    }
    predictive = Predictive(model, samples, return_sites=("_RETURN", "obs"))(x)
    by_hand = (
        torch.tanh(x @ samples["hidden.weight"].transpose(-1, -2) + samples["hidden.bias"][:, None])
        @ samples["out.weight"].transpose(-1, -2)
        + samples["out.bias"][:, None]
    ).squeeze(-1)
    assert torch.allclose(predictive["_RETURN"], by_hand, atol=1e-5)
    # NUTS moved from the prior (mean curve 0, up to 0.91 from sin(x) on [-2, 2]) to curves that
    # follow the data: a check that the draws are the network's posterior, not its prior.
    assert (predictive["_RETURN"].mean(0) - torch.sin(x.squeeze(-1))).abs().max() < 0.4
