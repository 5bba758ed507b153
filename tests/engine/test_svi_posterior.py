"""Pyro's deprecated posterior use of SVI (``SVI(..., num_samples=N, num_steps=M).run(*args)``)
and ``TracePosterior.information_criterion`` (WAIC) against its closed form on a conjugate
normal model."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine.errors import ArgumentError
from engine.infer import SVI, EmpiricalMarginal, Trace_ELBO
from engine.infer.svi_posterior import GuidePosterior
from engine.optim import Adam

# y_i ~ N(mu, 1) for five points, mu ~ N(0, 1): the posterior is N(sum(y) / 6, 1/6).
DATA = torch.tensor([0.3, -0.5, 1.2, 0.8, 0.1])
POST_LOC, POST_VAR = DATA.sum().item() / 6, 1 / 6


def model(data):
    mu = engine.sample("mu", dist.Normal(0.0, 1.0))
    with engine.plate("data", len(data)):
        engine.sample("y", dist.Normal(mu, 1.0), obs=data)


def exact_guide(data):
    engine.sample("mu", dist.Normal(POST_LOC, math.sqrt(POST_VAR)))


def fitted_guide(data):
    loc = engine.param("loc", torch.tensor(0.0))
    engine.sample("mu", dist.Normal(loc, 0.5))


@pytest.fixture(autouse=True)
def fresh_store():
    engine.clear_param_store()
    yield
    engine.clear_param_store()


def test_deprecated_svi_run_takes_its_steps_then_returns_the_guides_traces():
    with pytest.warns(FutureWarning, match="deprecated use of SVI as a posterior"):
        svi = SVI(
            model, fitted_guide, Adam({"lr": 0.05}), Trace_ELBO(), num_steps=7, num_samples=40
        )
    posterior = svi.run(DATA)
    assert svi.step_count == 7 and engine.param("loc").item() != 0.0
    assert isinstance(posterior, GuidePosterior) and len(posterior.exec_traces) == 40
    assert posterior.exec_traces[0].nodes["y"]["is_observed"]
    assert EmpiricalMarginal(posterior, "mu").sample().shape == ()


def test_run_without_a_step_count_is_refused_by_name():
    svi = SVI(model, fitted_guide, Adam({"lr": 0.05}), Trace_ELBO())
    with pytest.raises(ArgumentError, match=r"SVI\.run needs the number of steps"):
        svi.run()
    assert svi.run(num_steps=2, data=DATA) and svi.step_count == 2


def test_waic_matches_its_closed_form():
    # Per point, with the exact posterior draws: lppd_i = log N(y_i; m, 1 + v) (the posterior
    # predictive density) and p_waic_i = Var[(y_i - mu)^2 / 2] = (2 v^2 + 4 (y_i - m)^2 v) / 4.
    gap = DATA - POST_LOC
    lppd = dist.Normal(POST_LOC, math.sqrt(1 + POST_VAR)).log_prob(DATA).sum().item()
    p_waic = ((2 * POST_VAR**2 + 4 * gap**2 * POST_VAR) / 4).sum().item()
    exact = {"waic": -2 * (lppd - p_waic), "p_waic": p_waic}
    engine.set_rng_seed(0)
    replicates = {"waic": [], "p_waic": []}
    for _ in range(10):
        ic = GuidePosterior(model, exact_guide, num_samples=1000).run(DATA).information_criterion()
        for name in replicates:
            replicates[name].append(ic[name].item())
    # Each replicate's estimate carries Monte Carlo error from its 1000 draws (and log-mean-exp
    # a bias of order 1/1000, far below it): the mean of 10 is within 4 standard errors
    # estimated from their spread.
    for name, values in replicates.items():
        values = torch.tensor(values)
        standard_error = values.std().item() / math.sqrt(len(values))
        assert standard_error < 0.05
        assert values.mean().item() == pytest.approx(exact[name], abs=4 * standard_error)


def test_pointwise_waic_has_the_data_shape_and_sums_to_the_total():
    engine.set_rng_seed(1)
    posterior = GuidePosterior(model, exact_guide, num_samples=50).run(DATA)
    pointwise = posterior.information_criterion(pointwise=True)
    total = posterior.information_criterion()
    assert pointwise["waic"].shape == DATA.shape
    assert pointwise["waic"].sum().item() == pytest.approx(total["waic"].item(), rel=1e-5)


def test_waic_of_traces_without_observations_is_refused():
    def prior_only(data):
        engine.sample("mu", dist.Normal(0.0, 1.0))

    posterior = GuidePosterior(prior_only, exact_guide, num_samples=3).run(DATA)
    with pytest.raises(ValueError, match="the traces observe no site"):
        posterior.information_criterion()
