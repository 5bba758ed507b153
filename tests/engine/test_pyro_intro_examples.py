"""Pyro's introductory examples, run unchanged after ``import engine as pyro``.

The checks compare against closed forms with tolerances of a few Monte Carlo standard errors.
"""

import math

import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine

# --- the weather model ----------------------------------------------------------------------


def weather():
    cloudy = pyro.sample("cloudy", pyro.distributions.Bernoulli(0.3))
    cloudy = "cloudy" if cloudy.item() == 1.0 else "sunny"
    mean_temp = {"cloudy": 55.0, "sunny": 75.0}[cloudy]
    scale_temp = {"cloudy": 10.0, "sunny": 15.0}[cloudy]
    temp = pyro.sample("temp", pyro.distributions.Normal(mean_temp, scale_temp))
    return cloudy, temp.item()


def ice_cream_sales():
    cloudy, temp = weather()
    expected_sales = 200.0 if cloudy == "sunny" and temp > 80.0 else 50.0
    ice_cream = pyro.sample("ice_cream", pyro.distributions.Normal(expected_sales, 10.0))
    return ice_cream


def test_weather_frequencies():
    pyro.set_rng_seed(101)
    n = 4000
    draws = [weather() for _ in range(n)]
    cloudy_share = sum(c == "cloudy" for c, _ in draws) / n
    assert abs(cloudy_share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    cloudy_temps = torch.tensor([t for c, t in draws if c == "cloudy"])
    sunny_temps = torch.tensor([t for c, t in draws if c == "sunny"])
    assert abs(cloudy_temps.mean() - 55.0) < 4 * 10.0 / math.sqrt(len(cloudy_temps))
    assert abs(sunny_temps.mean() - 75.0) < 4 * 15.0 / math.sqrt(len(sunny_temps))


def test_ice_cream_sales_mean():
    pyro.set_rng_seed(0)
    n = 4000
    sales = torch.stack([ice_cream_sales() for _ in range(n)])
    # P(sunny and temp > 80) = 0.7 * P(N(75, 15) > 80)
    p_high = 0.7 * 0.5 * math.erfc((80.0 - 75.0) / (15.0 * math.sqrt(2)))
    expected = 200.0 * p_high + 50.0 * (1 - p_high)
    sd = math.sqrt(150.0**2 * p_high * (1 - p_high) + 10.0**2)
    assert abs(sales.mean().item() - expected) < 4 * sd / math.sqrt(n)
    trace = poutine.trace(ice_cream_sales).get_trace()
    assert list(trace.stochastic_nodes) == ["cloudy", "temp", "ice_cream"]


# --- stochastic recursion with dynamic site names -------------------------------------------


def geometric(p, t=None):
    if t is None:
        t = 0
    x = pyro.sample(f"x_{t}", pyro.distributions.Bernoulli(p))
    if x.item() == 1:
        return 0
    else:
        return 1 + geometric(p, t + 1)


def test_geometric_recursion():
    pyro.set_rng_seed(1)
    p, n = 0.3, 4000
    draws = torch.tensor([float(geometric(p)) for _ in range(n)])
    mean, var = (1 - p) / p, (1 - p) / p**2
    assert abs(draws.mean().item() - mean) < 4 * math.sqrt(var / n)
    trace = poutine.trace(geometric).get_trace(p)
    failures = trace.nodes["_RETURN"]["value"]
    assert trace.stochastic_nodes == [f"x_{t}" for t in range(failures + 1)]


# --- higher-order stochastic functions ------------------------------------------------------


def normal_product(loc, scale):
    z1 = pyro.sample("z1", pyro.distributions.Normal(loc, scale))
    z2 = pyro.sample("z2", pyro.distributions.Normal(loc, scale))
    y = z1 * z2
    return y


def make_normal_normal():
    mu_latent = pyro.sample("mu_latent", pyro.distributions.Normal(0, 1))

    def fn(scale):
        return normal_product(mu_latent, scale)

    return fn


def test_higher_order_function():
    pyro.set_rng_seed(2)
    trace = poutine.trace(lambda: make_normal_normal()(1.0)).get_trace()
    assert trace.stochastic_nodes == ["mu_latent", "z1", "z2"]
    z1, z2 = trace.nodes["z1"]["value"], trace.nodes["z2"]["value"]
    assert trace.nodes["_RETURN"]["value"] == z1 * z2
    # E[y] = E[mu^2] = 1 (z1, z2 independent given mu); Var[y] = E[(mu^2 + 1)^2] - 1 = 5
    n = 20000
    samples = torch.stack([make_normal_normal()(1.0) for _ in range(n)])
    assert abs(samples.mean().item() - 1.0) < 4 * math.sqrt(5.0 / n)


# --- a latent variable model conditioned with poutine.condition -----------------------------


def scale(guess):
    weight = pyro.sample("weight", dist.Normal(guess, 1.0))
    return pyro.sample("measurement", dist.Normal(weight, 0.75))


def test_conditioned_scale_posterior_by_self_normalised_importance():
    conditioned_scale = pyro.condition(scale, data={"measurement": torch.tensor(9.5)})
    pyro.set_rng_seed(3)
    guess, n = 8.5, 20000
    weights, log_w = [], []
    for _ in range(n):
        trace = poutine.trace(conditioned_scale).get_trace(guess)
        weights.append(trace.nodes["weight"]["value"])
        log_w.append(trace.log_prob_sum(lambda name, site: site["is_observed"]))
    weights, log_w = torch.stack(weights), torch.stack(log_w)
    normalised = torch.softmax(log_w, 0)
    estimate = (normalised * weights).sum()
    # Normal-Normal: posterior precision 1 + 1/0.75^2, mean (guess + 9.5/0.75^2) / precision
    precision = 1.0 + 1.0 / 0.75**2
    exact_mean = (guess + 9.5 / 0.75**2) / precision
    exact_sd = precision**-0.5
    effective_n = 1.0 / (normalised**2).sum()
    assert abs(estimate.item() - exact_mean) < 4 * exact_sd / math.sqrt(effective_n)


def test_intervention_cuts_the_dependence():
    intervened = pyro.do(scale, data={"weight": torch.tensor(100.0)})
    pyro.set_rng_seed(4)
    draws = torch.stack([intervened(8.5) for _ in range(2000)])
    assert abs(draws.mean().item() - 100.0) < 4 * 0.75 / math.sqrt(2000)


# --- plates of Bernoullis (the coin from the SVI tutorial) ----------------------------------


def coin_model_loop(data):
    alpha0 = torch.tensor(10.0)
    beta0 = torch.tensor(10.0)
    f = pyro.sample("latent_fairness", dist.Beta(alpha0, beta0))
    for i in pyro.plate("data_loop", len(data)):
        pyro.sample(f"obs_{i}", dist.Bernoulli(f), obs=data[i])


def coin_model_vectorised(data):
    alpha0 = torch.tensor(10.0)
    beta0 = torch.tensor(10.0)
    f = pyro.sample("latent_fairness", dist.Beta(alpha0, beta0))
    with pyro.plate("observe_data", len(data)):
        pyro.sample("obs", dist.Bernoulli(f), obs=data)


def coin_model_subsampled(data):
    f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
    with pyro.plate("data", len(data), subsample_size=5) as ind:
        pyro.sample("obs", dist.Bernoulli(f), obs=data.index_select(0, ind))


def test_plates_of_bernoullis_agree():
    data = torch.cat([torch.ones(6), torch.zeros(4)])
    loop_trace = poutine.trace(coin_model_loop).get_trace(data)
    fixed = {"latent_fairness": loop_trace.nodes["latent_fairness"]["value"]}
    vector_trace = poutine.trace(poutine.condition(coin_model_vectorised, fixed)).get_trace(data)
    loop_fixed = poutine.trace(poutine.condition(coin_model_loop, fixed)).get_trace(data)
    assert torch.allclose(loop_fixed.log_prob_sum(), vector_trace.log_prob_sum())
    assert len(loop_trace.observation_nodes) == 10
    assert vector_trace.nodes["obs"]["fn"].batch_shape == (10,)


def test_subsampled_bernoullis_estimate_the_full_likelihood():
    data = torch.cat([torch.ones(6), torch.zeros(4)])
    fixed = {"latent_fairness": torch.tensor(0.6)}
    full = poutine.trace(poutine.condition(coin_model_vectorised, fixed)).get_trace(data)
    full_lp = full.log_prob_sum(lambda name, site: name == "obs")
    pyro.set_rng_seed(5)
    estimates = torch.stack(
        [
            poutine.trace(poutine.condition(coin_model_subsampled, fixed))
            .get_trace(data)
            .log_prob_sum(lambda name, site: name == "obs")
            for _ in range(3000)
        ]
    )
    standard_error = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - full_lp) < 4 * standard_error
