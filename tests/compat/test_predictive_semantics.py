"""Predictive as Pyro's "predictive with deterministic sites" tutorial uses it: on MCMC draws that
hold a deterministic site, and with an autoguide trained on data, called with the data left out."""

import torch

import engine as pyro
import engine.distributions as dist
from engine.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
from engine.infer.autoguide import AutoNormal
from engine.optim import Adam

X = torch.linspace(-1.0, 1.0, 20).unsqueeze(-1)
COUNTS = torch.poisson(torch.nn.functional.softplus(2.0 * X.squeeze(-1)) * 5.0)


def model(features, counts):
    coef = pyro.sample("coef", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
    rate = pyro.deterministic("rate", torch.nn.functional.softplus(coef @ features.T))
    with pyro.plate("bins", features.shape[0]):
        return pyro.sample("counts", dist.Poisson(rate), obs=counts)


def test_deterministic_sites_in_posterior_samples_are_recomputed_and_returned():
    pyro.set_rng_seed(0)
    mcmc = MCMC(NUTS(model), num_samples=20, warmup_steps=20)
    mcmc.run(X, COUNTS)
    samples = mcmc.get_samples()
    assert set(samples) == {"coef", "rate"}
    predictive = Predictive(model, samples)(X, None)
    assert set(predictive) == {"rate", "counts"}
    expected = torch.nn.functional.softplus(samples["coef"] @ X.T)
    assert torch.allclose(predictive["rate"].reshape(20, -1), expected)
    # A deterministic value given by hand is not a condition: the site is what the model says.
    tampered = {**samples, "rate": torch.zeros_like(samples["rate"])}
    assert torch.allclose(Predictive(model, tampered)(X, None)["rate"].reshape(20, -1), expected)


def test_an_autoguide_trained_on_data_predicts_with_the_data_left_out():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = AutoNormal(model)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(5):
        svi.step(X, COUNTS)
    before = {name: value.clone() for name, value in pyro.get_param_store().items()}
    draws = Predictive(model, guide=guide, num_samples=30)(X, None)
    assert draws["counts"].shape == (30, 20)
    assert draws["coef"].shape == (30, 1, 1)
    assert before.keys() == dict(pyro.get_param_store().items()).keys()
    for name, value in pyro.get_param_store().items():
        assert torch.equal(value, before[name]), name
