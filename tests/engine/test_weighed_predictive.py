"""WeighedPredictive's importance weights, MHResampler's equally weighed draws, and
EnergyDistance as an SVI loss, on conjugate normal models with closed-form posteriors."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.errors import ArgumentError, ModelGuideMismatchError
from engine.infer import SVI, EnergyDistance, MHResampler, WeighedPredictive
from engine.ops.stats import quantile, weighed_quantile
from engine.optim import Adam

Y = torch.tensor(2.0)  # one observation of y ~ N(z, 1) with z ~ N(0, 1): z | y ~ N(1, 1/2)


def model(y=None):
    z = pyro.sample("z", dist.Normal(0.0, 1.0))
    return pyro.sample("y", dist.Normal(z, 1.0), obs=y)


def prior_guide(y=None):
    pyro.sample("z", dist.Normal(0.0, 1.0))


def conditioned():
    return model(Y)


def test_weights_are_likelihood_over_guide_density():
    torch.manual_seed(0)
    results = WeighedPredictive(model, guide=prior_guide, num_samples=50, parallel=True)(
        model_guide=conditioned
    )
    z = results.samples["z"]
    # The guide is the prior, so each weight is the likelihood of the observation at z.
    assert torch.allclose(results.log_weights, dist.Normal(z, 1.0).log_prob(Y), atol=1e-5)
    assert torch.allclose(results.guide_log_prob, dist.Normal(0.0, 1.0).log_prob(z), atol=1e-5)
    assert results.samples["y"].shape == (50,)


def test_weighed_draws_estimate_the_exact_posterior_mean():
    torch.manual_seed(1)
    n = 20000
    results = WeighedPredictive(model, guide=prior_guide, num_samples=n, parallel=True)(
        model_guide=conditioned
    )
    weights = results.get_normalized_weights()
    mean = (weights * results.samples["z"]).sum()
    # Self-normalised importance sampling: its error is about sd / sqrt(ESS); the posterior sd
    # is sqrt(1/2) and the ESS is reported; 4 standard errors.
    ess = float(results.get_ESS())
    assert 0.2 * n < ess < n
    assert abs(mean.item() - 1.0) < 4 * math.sqrt(0.5 / ess)
    # The log normalizer estimates the evidence: y ~ N(0, 2) marginally.
    evidence = dist.Normal(0.0, math.sqrt(2.0)).log_prob(Y)
    assert abs(results.get_log_normalizer().item() - evidence.item()) < 0.05


def test_mh_resampler_turns_weighed_draws_into_posterior_draws():
    torch.manual_seed(2)
    n = 4000
    sampler = WeighedPredictive(model, guide=prior_guide, num_samples=n, parallel=True)
    resampler = MHResampler(sampler, stored_samples_slice=slice(0, 10))
    first = resampler(model_guide=conditioned)
    assert abs(first.samples["z"].mean().item()) < 4 / math.sqrt(n)  # still the guide's draws
    for _ in range(30):
        draws = resampler(model_guide=conditioned)
    z = draws.samples["z"]
    # n independent chains, each well mixed after 30 independence-MH steps (acceptance is
    # about 0.6 here): their states are posterior draws, N(1, 1/2). The mean's standard error
    # is sqrt(0.5 / 4000) = 0.011; 4 of them. The variance's is sqrt(2 / n) * 0.5 = 0.011.
    assert abs(z.mean().item() - 1.0) < 0.045
    assert abs(z.var().item() - 0.5) < 0.045
    assert int(resampler.transition_count) > n
    assert len(resampler.stored_samples) == 31 and resampler.stored_samples[
        0
    ].log_weights.shape == (10,)


def test_weighed_predictive_needs_a_guide():
    with pytest.raises(ArgumentError, match="guide="):
        WeighedPredictive(model, num_samples=3)


@pytest.mark.slow
def test_energy_distance_fits_a_location_and_scale_without_the_likelihood():
    torch.manual_seed(3)
    data = 3.0 + 2.0 * torch.randn(400)

    def gaussian(data):
        loc = pyro.param("loc", torch.tensor(0.0))
        scale = pyro.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
        with pyro.plate("data", len(data)):
            pyro.sample("x", dist.Normal(loc, scale), obs=data)

    def no_guide(data):
        pass

    pyro.clear_param_store()
    svi = SVI(gaussian, no_guide, Adam({"lr": 0.05}), EnergyDistance(num_particles=16))
    for _ in range(500):
        svi.step(data)
    # The energy score is proper: its minimiser is the data's distribution. The sample's own
    # mean and sd have standard errors 2 / sqrt(400) = 0.1 and about 0.07; the fit noise of SVI
    # is of the same order. Compare with the sample's own moments, within 0.2.
    assert abs(pyro.param("loc").item() - data.mean().item()) < 0.2
    assert abs(pyro.param("scale").item() - data.std().item()) < 0.2


def test_energy_distance_with_prior_regularises_a_guide():
    def latent_model(y):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(y)):
            pyro.sample("y", dist.Normal(z, 1.0), obs=y)

    def guide(y):
        loc = pyro.param("q_loc", torch.tensor(0.0))
        pyro.sample("z", dist.Normal(loc, 0.1))

    pyro.clear_param_store()
    torch.manual_seed(4)
    y = torch.full((5,), 1.5)
    loss = EnergyDistance(prior_scale=1.0, num_particles=4)(latent_model, guide, y)
    loss.backward()
    assert pyro.param("q_loc").unconstrained().grad is not None
    assert isinstance(EnergyDistance().loss(latent_model, guide, y), float)


def test_energy_distance_refuses_what_it_cannot_differentiate_or_compare():
    with pytest.raises(ArgumentError, match="beta must lie in"):
        EnergyDistance(beta=0.0)
    with pytest.raises(ArgumentError, match="num_particles >= 2"):
        EnergyDistance(num_particles=1)

    def discrete_guide(y=None):
        pyro.sample("z", dist.Bernoulli(0.5))

    with pytest.raises(ModelGuideMismatchError, match="guide's site 'z'"):
        EnergyDistance()(model, discrete_guide, Y)

    with pytest.raises(ArgumentError, match="observes no site"):
        EnergyDistance()(prior_guide, prior_guide)


def test_weighed_quantile_with_equal_weights_is_the_plain_quantile():
    torch.manual_seed(5)
    draws = torch.randn(4, 301)
    probs = [0.05, 0.5, 0.95]
    plain = quantile(draws, probs, dim=1)
    assert plain.shape == (4, 3)
    # (equal up to the rounding of the cumulative weights, summed in float32)
    assert torch.allclose(weighed_quantile(draws, probs, torch.zeros(301), dim=1), plain, atol=1e-5)
    assert torch.allclose(quantile(draws[0], probs), torch.quantile(draws[0], torch.tensor(probs)))


def test_weighed_quantile_of_reweighted_draws_matches_the_target():
    torch.manual_seed(6)
    draws = torch.randn(100_000)
    # Weights N(x; 1, 1) / N(x; 0, 1) = exp(x - 1/2) turn N(0, 1) draws into N(1, 1) ones. The
    # ESS is n / e = 37000; a median's standard error is 0.5 / (0.399 sqrt(37000)) = 0.0065, a
    # 90 % quantile's 0.3 / (0.175 sqrt(37000)) = 0.009: 0.04 is over 4 of either.
    result = weighed_quantile(draws, [0.5, 0.9], draws - 0.5)
    assert abs(result[0].item() - 1.0) < 0.04
    assert abs(result[1].item() - (1.0 + 1.2816)) < 0.04
