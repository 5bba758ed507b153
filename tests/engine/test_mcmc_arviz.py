"""``MCMC.to_arviz()``: the observed_data, log_likelihood and sample_stats groups, checked by hand
on a conjugate model, and ``az.loo`` / ``az.compare`` on them against closed-form answers."""

import math

import numpy as np
import pytest
import torch

import engine
import engine.distributions as dist
from engine.infer import MCMC, NUTS, config_enumerate
from engine.infer.mcmc.diagnostics import ess_bulk

az = pytest.importorskip("arviz")

PRIOR_MEAN, PRIOR_SD, NOISE = 0.5, 2.0, 1.5


def normal_normal(y):
    mu = engine.sample("mu", dist.Normal(PRIOR_MEAN, PRIOR_SD))
    with engine.plate("points", len(y)):
        engine.sample("y", dist.Normal(mu, NOISE), obs=y)


def normal_normal_vmap(y):
    """The same model written so that only torch.func.vmap batches it (``mu[0]``)."""
    mu = engine.sample("mu", dist.Normal(PRIOR_MEAN, PRIOR_SD).expand([1]).to_event(1))
    with engine.plate("points", len(y)):
        engine.sample("y", dist.Normal(mu[0], NOISE), obs=y)


def normal_normal_branching(y):
    """The same model with a branch on a value: run once per draw."""
    mu = engine.sample("mu", dist.Normal(PRIOR_MEAN, PRIOR_SD))
    loc = mu if float(mu.detach()) < 1e6 else mu * 0.0
    with engine.plate("points", len(y)):
        engine.sample("y", dist.Normal(loc, NOISE), obs=y)


def data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 1.2 + NOISE * torch.randn(n, generator=g)


def run(model, y, samples=150, chains=2, seed=0):
    engine.set_rng_seed(seed)
    mcmc = MCMC(NUTS(model), num_samples=samples, warmup_steps=100, num_chains=chains)
    mcmc.run(y)
    return mcmc


@pytest.mark.parametrize(
    "model, batching",
    [(normal_normal, "plate"), (normal_normal_vmap, "vmap"), (normal_normal_branching, "none")],
)
def test_log_likelihood_is_each_observation_density_at_each_draw(model, batching):
    y = data()
    with pytest.warns(RuntimeWarning) if batching == "none" else _no_warning():
        mcmc = run(model, y, samples=20)
    assert mcmc.kernel.potential.batching == batching
    idata = mcmc.to_arviz()
    mu = mcmc.get_samples(group_by_chain=True)["mu"].reshape(2, 20)
    pointwise = idata.log_likelihood["y"]
    assert pointwise.dims == ("chain", "draw", "points") and pointwise.shape == (2, 20, 12)
    for chain, draw in [(0, 0), (0, 19), (1, 7)]:
        by_hand = dist.Normal(mu[chain, draw], NOISE).log_prob(y)
        np.testing.assert_allclose(pointwise.values[chain, draw], by_hand.numpy(), rtol=1e-5)
    np.testing.assert_array_equal(idata.observed_data["y"].values, y.numpy())
    assert idata.observed_data["y"].dims == ("points",)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def exact_loo_elpd(y: torch.Tensor) -> float:
    """sum_i log p(y_i | y_-i) for the Normal-Normal model: leaving y_i out, mu is Normal with
    precision 1/PRIOR_SD^2 + (n-1)/NOISE^2, and y_i's predictive is Normal around that mean with
    variance NOISE^2 + the posterior variance."""
    y = y.double()
    n = len(y)
    precision = 1 / PRIOR_SD**2 + (n - 1) / NOISE**2
    rest = y.sum() - y
    mean = (PRIOR_MEAN / PRIOR_SD**2 + rest / NOISE**2) / precision
    predictive = dist.Normal(mean, math.sqrt(NOISE**2 + 1 / precision))
    return float(predictive.log_prob(y).sum())


def test_loo_matches_the_exact_leave_one_out_density():
    y = data(20, seed=3)
    mcmc = run(normal_normal, y, samples=1000, chains=4, seed=3)
    idata = mcmc.to_arviz()
    loo = az.loo(idata, pointwise=True)
    assert float(loo.pareto_k.max()) < 0.5  # PSIS is reliable for every point
    # Monte Carlo error of the estimate: point i's LOO density is 1 / E_post[w_i] with
    # w_i = 1 / p(y_i | mu); from ESS draws the mean of w_i has relative sd sd(w_i) /
    # (mean(w_i) sqrt(ESS)), which by the delta method is the sd of its log. The points share
    # their draws, so their errors may add up: the sum of the sds bounds the sd of the total.
    # Pareto smoothing changes the raw weights little when every k < 0.5 (its bias is far below
    # this). Four of those sds leave a chance of a false failure below 1e-4.
    mu = mcmc.get_samples(group_by_chain=True)["mu"]
    w = (-dist.Normal(mu.reshape(-1, 1), NOISE).log_prob(y)).double().exp()
    ess = float(ess_bulk(mu))
    sd = float((w.std(0) / w.mean(0) / math.sqrt(ess)).sum())
    assert 0.01 < sd < 0.5  # a test that can still tell a wrong value from a noisy one
    assert abs(loo.elpd_loo - exact_loo_elpd(y)) < 4 * sd


def misspecified(y):
    """Centred at 0 whatever the data say: only its spread can adapt."""
    scale = engine.sample("scale", dist.HalfNormal(5.0))
    with engine.plate("points", len(y)):
        engine.sample("y", dist.Normal(0.0, scale), obs=y)


def test_compare_ranks_the_true_model_above_a_misspecified_one():
    # Data around 3 with sd NOISE: the misspecified model must widen to sd ~3.4 to cover them,
    # which costs about n * log(3.4 / 1.5) = 33 nats over 40 points, far above the difference's
    # standard error (about 5 here; asserted at 2 of them, the usual rule for a clear winner).
    y = 3.0 + NOISE * torch.randn(40, generator=torch.Generator().manual_seed(7))
    good = run(normal_normal, y, samples=300, chains=2, seed=1).to_arviz()
    bad = run(misspecified, y, samples=300, chains=2, seed=2).to_arviz()
    table = az.compare({"misspecified": bad, "normal": good})
    assert list(table.index) == ["normal", "misspecified"]
    assert table.loc["misspecified", "elpd_diff"] > 2 * table.loc["misspecified", "dse"]


def test_sample_stats_and_groups():
    y = data()
    mcmc = run(normal_normal, y, samples=30)
    idata = mcmc.to_arviz()
    assert set(idata.groups()) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    diverging = idata.sample_stats["diverging"]
    assert diverging.dtype == bool and diverging.shape == (2, 30)
    divergences = mcmc.diagnostics()["divergences"]
    assert [int(d) for d in diverging.values.sum(1)] == [
        len(divergences[f"chain {c}"]) for c in (0, 1)
    ]
    assert {"step_size", "tree_depth", "energy", "acceptance_rate", "lp"} <= set(
        idata.sample_stats.data_vars
    )
    without = mcmc.to_arviz(log_likelihood=False)
    assert "log_likelihood" not in without.groups() and "observed_data" in without.groups()


def two_data_sites(y, counts):
    mu = engine.sample("mu", dist.Normal(0.0, 2.0))
    rate = engine.sample("rate", dist.Gamma(2.0, 1.0))
    engine.deterministic("twice", 2 * mu)
    engine.factor("soft", -0.5 * mu**2)
    with engine.plate("rows", y.shape[0]):
        # One observation is a row of two numbers (to_event): its two densities are one entry.
        engine.sample("y", dist.Normal(mu, 1.0).expand([y.shape[0], 2]).to_event(1), obs=y)
    with engine.plate("days", len(counts)):
        engine.sample("counts", dist.Poisson(rate), obs=counts)


def test_several_data_sites_event_dims_and_sites_that_hold_no_data():
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    counts = torch.tensor([1.0, 3.0, 2.0])
    engine.set_rng_seed(0)
    mcmc = MCMC(NUTS(two_data_sites), num_samples=25, warmup_steps=30, num_chains=2)
    mcmc.run(y, counts)
    idata = mcmc.to_arviz()
    assert set(idata.log_likelihood.data_vars) == {"y", "counts"}  # not twice, not soft
    assert set(idata.observed_data.data_vars) == {"y", "counts"}
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "rows")
    assert idata.observed_data["y"].dims == ("rows", "y_dim_1")
    assert idata.log_likelihood["counts"].dims == ("chain", "draw", "days")
    samples = mcmc.get_samples(group_by_chain=True)
    by_hand = dist.Normal(samples["mu"][1, 4], 1.0).log_prob(y).sum(-1)
    np.testing.assert_allclose(idata.log_likelihood["y"].values[1, 4], by_hand.numpy(), rtol=1e-5)
    by_hand = dist.Poisson(samples["rate"][0, 2]).log_prob(counts)
    np.testing.assert_allclose(idata.log_likelihood["counts"].values[0, 2], by_hand, rtol=1e-5)
    assert az.loo(idata, var_name="counts").n_data_points == 3


def test_a_data_site_under_an_enumerated_site_is_left_out_with_a_warning():
    @config_enumerate
    def mixture(y):
        mu = engine.sample("mu", dist.Normal(0.0, 2.0))
        with engine.plate("points", len(y)):
            shifted = engine.sample("shifted", dist.Bernoulli(0.3))
            engine.sample("y", dist.Normal(mu + 3.0 * shifted, 1.0), obs=y)

    mcmc = run(mixture, data(6), samples=10)
    with pytest.warns(RuntimeWarning, match="'y'.*enumerated"):
        idata = mcmc.to_arviz()
    assert "log_likelihood" not in idata.groups() and "y" in idata.observed_data


def test_a_potential_fn_run_has_no_data_groups():
    def potential(params):
        return 0.5 * (params["x"] ** 2).sum(-1)

    engine.set_rng_seed(0)
    initial = {"x": torch.zeros(2)}
    mcmc = MCMC(NUTS(potential_fn=potential), 20, 20, num_chains=2, initial_params=initial)
    mcmc.run()
    assert set(mcmc.to_arviz().groups()) == {"posterior", "sample_stats"}


# ArviZ 0.23.4's matplotlib backend calls an API that matplotlib 3.11 deprecates (removal in 3.13).
@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping:DeprecationWarning")
def test_arviz_plots_work_on_to_arviz():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = torch.tensor([3.0, -1.0, 8.0, 2.0])
    engine.set_rng_seed(0)
    mcmc = MCMC(NUTS(schools), num_samples=40, warmup_steps=40, num_chains=2)
    mcmc.run(y)
    idata = mcmc.to_arviz()
    assert idata.posterior["theta"].dims == ("chain", "draw", "schools")
    trace = az.plot_trace(idata, var_names=["mu", "theta"])
    assert trace.shape == (2, 2)
    posterior = az.plot_posterior(idata, var_names=["tau"])
    assert "tau" in posterior.get_title()
    plt.close("all")


def schools(y):
    mu = engine.sample("mu", dist.Normal(0.0, 5.0))
    tau = engine.sample("tau", dist.HalfNormal(5.0))
    with engine.plate("schools", len(y)):
        theta = engine.sample("theta", dist.Normal(mu, tau))
        engine.sample("y", dist.Normal(theta, 2.0), obs=y)
