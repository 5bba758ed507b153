"""RenyiELBO against closed forms on a conjugate normal model: with many particles the alpha = 0
bound reaches the log evidence, and the bounds are ordered in alpha."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.errors import ArgumentError
from engine.infer import RenyiELBO, Trace_ELBO

X = torch.tensor(1.0)
LOG_EVIDENCE = dist.Normal(0.0, math.sqrt(2.0)).log_prob(X).item()  # x ~ N(0, 2) marginally


def model():
    z = pyro.sample("z", dist.Normal(0.0, 1.0))
    pyro.sample("x", dist.Normal(z, 1.0), obs=X)


def guide():
    pyro.sample("z", dist.Normal(0.3, 0.8))  # the exact posterior is N(0.5, 1/2)


def test_alpha_zero_with_many_particles_reaches_the_log_evidence():
    torch.manual_seed(0)
    loss = RenyiELBO(alpha=0.0, num_particles=20000, vectorize_particles=True).loss(model, guide)
    # The bound is log of a mean of 20000 weights whose relative sd is below 1 here (the guide
    # is close to the posterior): its error is about sd / sqrt(20000) < 0.01; 0.03 is 3 of them.
    assert abs(-loss - LOG_EVIDENCE) < 0.03


def test_bounds_are_ordered_in_alpha_and_the_elbo_is_the_loosest():
    torch.manual_seed(1)
    values = {
        alpha: -RenyiELBO(alpha=alpha, num_particles=20000, vectorize_particles=True).loss(
            model, guide
        )
        for alpha in (0.0, 0.5)
    }
    elbo = -Trace_ELBO(num_particles=20000, vectorize_particles=True).loss(model, guide)
    # Exact values: the ELBO is log evidence - KL(q || posterior) = LOG_EVIDENCE - 0.0867; the
    # alpha = 0.5 bound lies between. Each estimate's error is below 0.01 (as above).
    kl = math.log(math.sqrt(0.5) / 0.8) + (0.8**2 + 0.2**2) / (2 * 0.5) - 0.5
    assert abs(elbo - (LOG_EVIDENCE - kl)) < 0.03
    assert elbo + 0.02 < values[0.5] < values[0.0] + 0.02
    assert values[0.0] <= LOG_EVIDENCE + 0.03


def test_one_particle_gives_the_elbo_sequential_and_vectorised_agree():
    torch.manual_seed(2)
    one = RenyiELBO(alpha=0.5, num_particles=1)
    torch.manual_seed(3)
    a = one.loss(model, guide)
    torch.manual_seed(3)
    b = Trace_ELBO().loss(model, guide)
    assert a == pytest.approx(b, abs=1e-5)


def test_gradients_reach_reparameterized_and_score_function_guides():
    def discrete_model():
        c = pyro.sample("c", dist.Bernoulli(0.5))
        pyro.sample("x", dist.Normal(c, 1.0), obs=X)

    def discrete_guide():
        p = pyro.param("p", torch.tensor(0.3), constraint=dist.constraints.unit_interval)
        pyro.sample("c", dist.Bernoulli(p))

    pyro.clear_param_store()
    torch.manual_seed(4)
    RenyiELBO(num_particles=8).loss_and_grads(discrete_model, discrete_guide)
    assert pyro.param("p").unconstrained().grad is not None


def test_alpha_one_is_refused():
    with pytest.raises(ArgumentError, match="use Trace_ELBO"):
        RenyiELBO(alpha=1)
