"""Observations with more data dims than their distribution has batch dims, outside any plate:
scored as independent draws (as Pyro scores them), and the dims inferences add on the left
(particles, chains) kept off the data."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import ShapeError
from engine.infer import MCMC, NUTS, EmpiricalMarginal, Importance, Trace_ELBO

PRIOR_SCALE, NOISE = 2.0, 1.0


def _data() -> torch.Tensor:
    return torch.linspace(-1.0, 3.0, 40).reshape(40, 1)


def _conjugate_posterior(data: torch.Tensor) -> tuple[float, float]:
    precision = 1 / PRIOR_SCALE**2 + len(data) / NOISE**2
    return (data.sum().item() / NOISE**2) / precision, precision**-0.5


def _model(data: torch.Tensor) -> None:
    loc = pyro.sample("loc", dist.Normal(torch.zeros(1), PRIOR_SCALE))
    pyro.sample("y", dist.Normal(loc, NOISE), obs=data)


def test_extra_data_dims_are_independent_draws_from_the_distribution():
    data = _data()
    trace = poutine.trace(poutine.condition(_model, {"loc": torch.tensor([0.5])})).get_trace(data)
    expected = dist.Normal(0.5, NOISE).log_prob(data).sum() + dist.Normal(
        0.0, PRIOR_SCALE
    ).log_prob(torch.tensor(0.5))
    assert trace.log_prob_sum().item() == pytest.approx(expected.item())


def test_data_copied_across_the_distribution_and_back_is_still_refused():
    # (40, 1) against a batch of 40 would score every datum under every entry: 1600 terms.
    def model():
        pyro.sample("y", dist.Normal(torch.zeros(40), 1.0), obs=_data())

    with pytest.raises(ShapeError, match=r"\(40, 40\)"):
        poutine.trace(model).get_trace()


def test_importance_fits_the_conjugate_posterior():
    pyro.set_rng_seed(0)
    data = _data()
    mean, sd = _conjugate_posterior(data)
    posterior = Importance(_model, guide=None, num_samples=20000).run(data)
    marginal = EmpiricalMarginal(posterior, sites="loc")
    draws = marginal.sample(torch.Size([4000])).reshape(-1)
    # The prior has sd 2 and the posterior sd 0.16: about 1 in 12 prior draws lands within the
    # posterior's bulk, so the effective sample size of 20000 weights is over 1000; the mean's
    # error is then below sd / sqrt(1000) = 0.005, and 5 of those is 0.025.
    assert draws.mean().item() == pytest.approx(mean, abs=0.025)
    assert draws.std().item() == pytest.approx(sd, rel=0.15)


def test_nuts_chains_do_not_land_on_the_data_dim():
    # Four chains over four data points: were the chain plate put at the data's dim, each chain
    # would score one datum only, silently.
    pyro.set_rng_seed(1)
    data = torch.tensor([[0.3], [1.1], [2.0], [0.6]])
    mean, sd = _conjugate_posterior(data)
    mcmc = MCMC(NUTS(_model), num_samples=300, warmup_steps=200, num_chains=4)
    mcmc.run(data)
    draws = mcmc.get_samples()["loc"].reshape(-1)
    # 1200 draws with an effective size above 300: the mean's error is below sd / sqrt(300).
    assert draws.mean().item() == pytest.approx(mean, abs=4 * sd / math.sqrt(300))


def test_vectorised_particles_as_many_as_the_data_do_not_score_one_datum_each():
    # Ten particles over ten unplated data points: the particle dim used to sit on the data's
    # dim and the loss came out silently wrong; now the ELBO sees the undeclared dim and says so.
    def model():
        loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
        pyro.sample("y", dist.Normal(loc, 1.0), obs=torch.zeros(10))

    def guide():
        pyro.sample("loc", dist.Normal(0.0, 1.0))

    elbo = Trace_ELBO(num_particles=10, vectorize_particles=True)
    with pytest.raises(ShapeError, match="belongs to no plate"):
        elbo.loss(model, guide)
