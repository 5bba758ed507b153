"""NUTS and HMC over models with discrete sites marked for enumeration: the sites are summed out
of the potential (Pyro's collapsed NUTS), so the chains move on the continuous sites' marginal.

Checked against the exact marginal density at fixed points, and against a posterior computed on a
grid (means within 4 Monte Carlo standard errors, sds within 4 standard errors of an sd estimate).
"""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.errors import MCMCError
from engine.infer import HMC, MCMC, NUTS, config_enumerate
from engine.infer.mcmc.diagnostics import ess_bulk, mcse_mean
from engine.infer.mcmc.potential import Potential

DATA = torch.tensor([-0.4, 0.3, 2.9, 3.6, 0.1, 3.2, -1.0])
SHIFT, WEIGHT, PRIOR_SD = 3.0, 0.4, 2.0


@config_enumerate
def shifted_mixture(data):
    """Each point is N(mu, 1) or, with probability WEIGHT, N(mu + SHIFT, 1)."""
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with pyro.plate("data", len(data)):
        shifted = pyro.sample("shifted", dist.Bernoulli(WEIGHT))
        pyro.sample("obs", dist.Normal(mu + SHIFT * shifted, 1.0), obs=data)


def log_joint(mu: torch.Tensor) -> torch.Tensor:
    """log p(data, mu) with the assignments summed out by hand, for a batch of mu."""
    mu = mu.unsqueeze(-1)
    plain = math.log(1 - WEIGHT) + dist.Normal(mu, 1.0).log_prob(DATA)
    shifted = math.log(WEIGHT) + dist.Normal(mu + SHIFT, 1.0).log_prob(DATA)
    likelihood = torch.logaddexp(plain, shifted).sum(-1)
    return dist.Normal(0.0, PRIOR_SD).log_prob(mu.squeeze(-1)) + likelihood


def grid_posterior() -> tuple[float, float]:
    grid = torch.linspace(-8.0, 8.0, 20001, dtype=torch.float64)
    weights = (log_joint(grid) - log_joint(grid).max()).exp()
    weights = weights / weights.sum()
    mean = (weights * grid).sum()
    return mean.item(), (weights * (grid - mean) ** 2).sum().sqrt().item()


def test_the_potential_is_the_marginal_density():
    potential = Potential(shifted_mixture, (DATA,))
    assert potential.enumerated == ["shifted"]
    assert [slot.name for slot in potential.slots] == ["mu"]
    points = torch.tensor([[-1.0], [0.5], [2.0]])
    assert torch.allclose(potential.energy(points), -log_joint(points.squeeze(-1)), atol=1e-5)


def test_each_way_of_batching_chains_gives_the_marginal():
    @config_enumerate
    def indexed(data):
        """The same model written with a lookup that only vmap can batch."""
        mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
        locs = torch.stack([mu, mu + SHIFT])
        with pyro.plate("data", len(data)):
            shifted = pyro.sample("shifted", dist.Bernoulli(WEIGHT))
            pyro.sample("obs", dist.Normal(locs[shifted.long()], 1.0), obs=data)

    points = torch.tensor([[-1.0], [0.5]])
    for model, batching in ((shifted_mixture, "plate"), (indexed, "vmap")):
        potential = Potential(model, (DATA,))
        assert potential.batching == batching
        assert torch.allclose(potential.energy(points), -log_joint(points.squeeze(-1)), atol=1e-5)


@pytest.mark.parametrize(
    "kernel", [NUTS, lambda model: HMC(model, trajectory_length=1.0)], ids=["nuts", "hmc"]
)
def test_chains_match_the_grid_posterior(kernel):
    pyro.set_rng_seed(0)
    mcmc = MCMC(kernel(shifted_mixture), num_samples=600, warmup_steps=300, num_chains=2)
    mcmc.run(DATA)
    samples = mcmc.get_samples(group_by_chain=True)
    assert set(samples) == {"mu"}  # the enumerated site is summed out, not drawn
    draws = samples["mu"]
    mean, sd = grid_posterior()
    assert abs(draws.mean().item() - mean) < 4 * mcse_mean(draws).item(), (draws.mean(), mean)
    sd_error = sd / math.sqrt(2 * ess_bulk(draws).item())
    assert abs(draws.std().item() - sd) < 4 * sd_error, (draws.std(), sd)


def test_a_discrete_site_enumerated_in_sequence_points_to_parallel_enumeration():
    # An unmarked discrete site is enumerated in parallel (as in Pyro); one marked "sequential"
    # cannot be summed out of a potential, and the error says how to mark it.
    def model():
        pyro.sample("coin", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})

    with pytest.raises(MCMCError, match=r"'coin'.*config_enumerate"):
        MCMC(NUTS(model), 10).run()
