"""``Resampler`` as Pyro's prior predictive tutorial (``prior_predictive.ipynb``) uses it: draw a
pool once from a diffuse guide, extended by an expensive simulator, then ``resampler.sample(model,
num_samples)`` for each new setting of the prior, without simulating again.

The statistical check reweights a diffuse Normal to the closed-form posterior of a Normal-Normal
model: z ~ Normal(1, 2), y_i ~ Normal(z, 1) for y = (2, 3, 2.5). The posterior precision is
1/4 + 3 = 13/4, so z | y ~ Normal((1/4 + 7.5) / (13/4), sqrt(4/13)).
"""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
import engine.infer.resampler
from engine.errors import (
    ArgumentError,
    DistributionArgumentError,
    ModelGuideMismatchError,
    PlateError,
    SupportError,
)
from engine.infer.resampler import Resampler

Y = torch.tensor([2.0, 3.0, 2.5])
POSTERIOR_MEAN = (1.0 / 4 + 7.5) / (13 / 4)
POSTERIOR_SD = math.sqrt(4 / 13)
GUIDE_SD = 3.0


def diffuse_guide():
    pyro.sample("z", dist.Normal(0.0, GUIDE_SD))


def conjugate_model():
    z = pyro.sample("z", dist.Normal(1.0, 2.0))
    with pyro.plate("data", 3):
        pyro.sample("y", dist.Normal(z, 1.0), obs=Y)


def pool_ess(proposal, target_log_prob, num_guide_samples: int) -> float:
    """The effective sample size of a pool's weights, estimated on an independent pool of the
    same size: 1 / sum of the squared normalised weights target / proposal."""
    z = proposal.sample((num_guide_samples,))
    log_w = target_log_prob(z) - proposal.log_prob(z)
    if log_w.dim() > 1:
        log_w = log_w.sum(-1)
    return 1.0 / torch.softmax(log_w, 0).pow(2).sum().item()


@pytest.mark.parametrize("stable", [True, False])
def test_reweighting_a_diffuse_guide_gives_the_exact_posterior(stable):
    pool, num_samples = 10_000, 1000
    # The guide has no plate, the model one: max_plate_nesting says how deep the models go.
    resampler = Resampler(diffuse_guide, num_guide_samples=pool, max_plate_nesting=1)
    z = resampler.sample(conjugate_model, num_samples, stable=stable)["z"]
    assert z.shape == (num_samples, 1)  # the draw index leftmost, left of the model's plate
    # Two layers of error: the pool's weighted mean (variance sd**2 / ESS) and the draws from
    # it, i.i.d. given the pool (variance sd**2 / num_samples); the sd of a Normal sample has
    # half those variances. Four standard errors.
    posterior = dist.Normal(POSTERIOR_MEAN, POSTERIOR_SD)
    ess = pool_ess(dist.Normal(0.0, GUIDE_SD), posterior.log_prob, pool)
    assert ess > 1000  # the guide covers the posterior well enough for the bounds to mean much
    spread = math.sqrt(1 / ess + 1 / num_samples)
    assert abs(z.mean().item() - POSTERIOR_MEAN) < 4 * POSTERIOR_SD * spread
    assert abs(z.std().item() - POSTERIOR_SD) < 4 * POSTERIOR_SD * spread / math.sqrt(2)


def test_stable_draws_stay_put_as_the_model_changes_a_little():
    resampler = Resampler(diffuse_guide, num_guide_samples=5000, max_plate_nesting=1)
    first = resampler.sample(conjugate_model, 200)["z"]
    torch.randn(1000)  # other use of the random generator in between does not matter
    assert torch.equal(resampler.sample(conjugate_model, 200)["z"], first)
    assert torch.equal(resampler.sample(conjugate_model, 50)["z"], first[:50])
    longer = resampler.sample(conjugate_model, 300)["z"]
    assert torch.equal(longer[:200], first)  # asking for more keeps the first draws

    def model_given(prior_mean, data):
        def model():
            z = pyro.sample("z", dist.Normal(prior_mean, 2.0))
            with pyro.plate("data", 3):
                pyro.sample("y", dist.Normal(z, 1.0), obs=data)

        return model

    # A prior mean nudged as by a slider moves few draws (the Gumbel noise is fixed); other
    # data, whose posterior barely overlaps this one, moves most of them.
    nudged = resampler.sample(model_given(1.05, Y), 200)["z"]
    assert (nudged == first).float().mean().item() > 0.95
    moved = resampler.sample(model_given(1.0, Y + 2), 200)["z"]
    assert (moved == first).float().mean().item() < 0.5

    # Unstable draws are fresh each call: two calls share only the odd coincident draw.
    fresh = [resampler.sample(conjugate_model, 200, stable=False)["z"] for _ in range(2)]
    assert (fresh[0] == fresh[1]).float().mean().item() < 0.2


def make_partial_model(df0, df1, p0, p1, m0, m1):
    def partial_model():
        pyro.sample("df", dist.LogNormal(df0, df1))
        pyro.sample("p_scale", dist.LogNormal(p0, p1))
        pyro.sample("m_scale", dist.LogNormal(m0, m1))

    return partial_model


def time_series(T: int = 50, data=None):
    df = pyro.sample("df", dist.LogNormal(0, 1))
    p_scale = pyro.sample("p_scale", dist.LogNormal(0, 1))
    m_scale = pyro.sample("m_scale", dist.LogNormal(0, 1))
    with pyro.plate("dt", T):
        process_noise = pyro.sample("process_noise", dist.StudentT(df, 0, p_scale))
    trend = pyro.deterministic("trend", process_noise.cumsum(-1))
    with pyro.plate("t", T):
        return pyro.sample("obs", dist.Normal(trend, m_scale), obs=data)


def test_the_prior_predictive_tutorials_flow():
    partial_guide = make_partial_model(0, 10, 0, 10, 0, 10)
    resampler = Resampler(partial_guide, time_series, num_guide_samples=2000)
    assert resampler.max_plate_nesting == 1  # read off the simulator's plates
    samples = resampler.sample(make_partial_model(4, 1, 1, 1, 0, 1), num_samples=20)
    trajectories = samples["obs"]
    assert trajectories.T.shape == (50, 20)  # what the tutorial plots
    assert samples["df"].shape == (20, 1) and samples["process_noise"].shape == (20, 50)
    # Each draw is one whole pool member: the simulation stays paired with its parameters.
    assert torch.allclose(samples["trend"], samples["process_noise"].cumsum(-1))
    assert engine.infer.resampler.Resampler is Resampler


def test_a_guide_with_its_own_plate():
    def guide():
        with pyro.plate("groups", 3):
            pyro.sample("theta", dist.Normal(0.0, 5.0))

    def model():
        with pyro.plate("groups", 3):
            pyro.sample("theta", dist.Normal(torch.tensor([-4.0, 0.0, 4.0]), 1.0))

    pool, num_samples = 20_000, 500
    resampler = Resampler(guide, num_guide_samples=pool)
    assert resampler.max_plate_nesting == 1
    theta = resampler.sample(model, num_samples)["theta"]
    assert theta.shape == (num_samples, 3)
    # The three groups are reweighted jointly, so they share one ESS (a few hundred); each
    # group's mean is within 4 standard errors of its Normal(., 1), as in the test above.
    target = dist.Normal(torch.tensor([-4.0, 0.0, 4.0]), 1.0)
    ess = pool_ess(dist.Normal(0.0, 5.0).expand([3]), target.log_prob, pool)
    tolerance = 4 * math.sqrt(1 / ess + 1 / num_samples)
    assert torch.allclose(theta.mean(0), target.mean, atol=tolerance)


def test_a_guide_wider_than_the_models_support_is_what_it_is_for():
    resampler = Resampler(diffuse_guide, num_guide_samples=5000)

    def bounded():
        pyro.sample("z", dist.Uniform(0.0, 2.0))

    z = resampler.sample(bounded, 500)["z"]
    assert bool(((z > 0) & (z < 2)).all())  # draws outside the support have weight 0
    # Uniform(0, 2): sd 1/sqrt(3). The weights vary little within (0, 2), so the ESS is near
    # the ~1250 pool draws inside (about 1200; 1/1000 bounds its term). Four standard errors.
    assert abs(z.mean().item() - 1.0) < 4 / math.sqrt(3) * math.sqrt(1 / 500 + 1 / 1000)


def test_errors_name_the_problem_and_the_fix():
    with pytest.raises(PlateError, match=r"nests 1 plate.*max_plate_nesting=1\)"):
        Resampler(diffuse_guide, num_guide_samples=100).sample(conjugate_model, 10)

    resampler = Resampler(diffuse_guide, num_guide_samples=100)

    def other_site():
        pyro.sample("w", dist.Normal(0.0, 1.0))

    with pytest.raises(ModelGuideMismatchError, match=r"samples \['w'\].*pool holds \['z'\]"):
        resampler.sample(other_site, 10)

    def far_away():
        pyro.sample("z", dist.Uniform(100.0, 101.0))

    with pytest.raises(SupportError, match="none of the 100 pool draws"):
        resampler.sample(far_away, 10)

    def invalid_scale():
        pyro.sample("z", dist.Normal(0.0, -1.0))

    with pytest.raises(DistributionArgumentError, match="site 'z' of the model has a NaN"):
        resampler.sample(invalid_scale, 10)

    def simulator_with_a_constant():
        diffuse_guide()
        pyro.deterministic("const", torch.tensor(3.0))

    with pytest.raises(
        PlateError, match=r"site 'const' of the simulator has a value of shape \(\)"
    ):
        Resampler(diffuse_guide, simulator_with_a_constant, num_guide_samples=100)

    with pytest.raises(ArgumentError, match="num_guide_samples"):
        Resampler(diffuse_guide, num_guide_samples=0)
    with pytest.raises(ArgumentError, match="num_samples"):
        resampler.sample(diffuse_guide, 2.5)
