"""TraceTailAdaptive_ELBO: it fits a conjugate model's exact posterior, reports finite and
falling losses, and refuses what it cannot do by name."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine.distributions.testing.fakes import NonreparameterizedNormal
from engine.errors import ArgumentError, ReparamError
from engine.infer import SVI, TraceTailAdaptive_ELBO
from engine.optim import Adam

# z ~ N(0, 1), x ~ N(z, 1), x = 2 observed: the posterior is N(1, 1/2).
X = torch.tensor(2.0)


def model():
    z = engine.sample("z", dist.Normal(0.0, 1.0))
    engine.sample("x", dist.Normal(z, 1.0), obs=X)


def guide():
    loc = engine.param("loc", torch.tensor(-1.0))
    scale = engine.param("scale", torch.tensor(2.0), constraint=dist.constraints.positive)
    engine.sample("z", dist.Normal(loc, scale))


def test_fits_the_exact_posterior_with_finite_falling_losses():
    engine.clear_param_store()
    engine.set_rng_seed(0)
    elbo = TraceTailAdaptive_ELBO(num_particles=32, vectorize_particles=True)
    svi = SVI(model, guide, Adam({"lr": 0.02}), elbo)
    losses, locs, scales = [], [], []
    for step in range(1500):
        losses.append(svi.step())
        if step >= 1200:  # average the last 300 steps: Adam's jitter at lr 0.02 averages out
            locs.append(engine.param("loc").item())
            scales.append(engine.param("scale").item())
    assert all(torch.isfinite(torch.tensor(losses)))
    # The reported loss is -ELBO: from far off (loc -1, scale 2) it must fall by far more than
    # its particle noise (32 particles, spread well under 1 near the optimum).
    assert sum(losses[:50]) / 50 > sum(losses[-300:]) / 300 + 1.0
    # Every f-divergence is minimised at q = p when p is in the guide's family: N(1, 1/2).
    # 0.05 is about 2.5 lr-sized Adam steps, the jitter left after averaging.
    assert abs(sum(locs) / len(locs) - 1.0) < 0.05
    assert abs(sum(scales) / len(scales) - 0.5**0.5) < 0.05


@pytest.mark.parametrize("beta", [-1.5, 0.0, 0.5])
def test_beta_outside_minus_one_to_zero_is_refused(beta):
    with pytest.raises(ArgumentError, match="tail_adaptive_beta"):
        TraceTailAdaptive_ELBO(tail_adaptive_beta=beta)


def test_unvectorised_particles_are_refused():
    elbo = TraceTailAdaptive_ELBO(num_particles=4, vectorize_particles=False)
    with pytest.raises(ArgumentError, match="vectorize_particles=True"):
        elbo.differentiable_loss(model, guide)


def test_a_guide_site_without_rsample_is_refused_by_name():
    def score_guide():
        engine.sample("z", NonreparameterizedNormal(0.0, 1.0))

    elbo = TraceTailAdaptive_ELBO(num_particles=4, vectorize_particles=True)
    with pytest.raises(ReparamError, match=r"'z'.*reparameterised"):
        elbo.differentiable_loss(model, score_guide)


def test_one_particle_warns_that_it_is_trace_elbo():
    engine.clear_param_store()
    elbo = TraceTailAdaptive_ELBO(num_particles=1, vectorize_particles=True)
    with pytest.warns(UserWarning, match="num_particles=1"):
        elbo.loss(model, guide)
