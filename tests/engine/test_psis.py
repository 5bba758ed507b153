"""vectorized_importance_weights and psis_diagnostic (PSIS's Pareto k-hat) on models whose
weights have a known distribution."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.infer.importance import psis_diagnostic, vectorized_importance_weights
from engine.infer.pareto_tail import fit_generalized_pareto


def _prior(num_dims=1, width=None):
    with pyro.plate("dims", num_dims):
        pyro.sample("z", dist.Normal(0.0, 1.0))


def _scaled_guide(num_dims=1, width=1.0):
    with pyro.plate("dims", num_dims):
        pyro.sample("z", dist.Normal(0.0, width))


def test_generalized_pareto_fit_recovers_shape_and_scale():
    torch.manual_seed(3)
    n = 5000
    for shape, scale in [(0.2, 2.0), (0.7, 0.5)]:
        u = torch.rand(n, dtype=torch.float64)
        draws = scale * ((1 - u) ** -shape - 1) / shape  # the inverse of the GPD's cdf
        k, sigma = fit_generalized_pareto(draws)
        # The shape's standard error is about (1 + k) / sqrt(n) <= 1.7 / 70.7 = 0.024: 4 of
        # them, 0.1, and the prior's pull toward 0.5 (10 / 5010 of the way) is far smaller.
        assert abs(k - shape) < 0.1
        assert abs(sigma / scale - 1) < 0.1  # the scale's relative error is of the same order


@pytest.mark.parametrize("width", [0.5, 0.8])
def test_k_hat_of_a_narrow_gaussian_guide_is_one_minus_its_variance(width):
    # With z ~ N(0, w^2) and weights N(z; 0, 1) / N(z; 0, w), log w = (1 - w^2) u^2 / 2 for a
    # standard normal u, so P(weight > t) falls like t^(-1 / (1 - w^2)): a Pareto tail of shape
    # 1 - w^2. With 100000 draws the tail holds 3 sqrt(1e5) = 949 weights; k-hat's standard
    # error is about (1 + k) / sqrt(949) <= 0.06, so 0.15 is 2.5 of them (plus a small bias of
    # the finite tail).
    torch.manual_seed(0)
    k = psis_diagnostic(
        _prior,
        _scaled_guide,
        num_particles=100_000,
        max_simultaneous_particles=50_000,
        width=width,
    )
    assert abs(k - (1 - width**2)) < 0.15


def test_a_guide_wider_than_the_posterior_has_bounded_weights():
    def model():
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(z, 1.0), obs=torch.tensor(1.0))

    def wide_guide():
        # twice the conjugate posterior's scale sqrt(1/2): p/q is bounded, a tail of shape < 0
        pyro.sample("z", dist.Normal(0.5, 2 * math.sqrt(0.5)))

    torch.manual_seed(1)
    # 20000 draws: a tail of 425 weights, k-hat's standard error about 1 / sqrt(425) = 0.05;
    # a bounded tail has k <= 0, so k-hat stays below 0.2 by 4 of them.
    assert psis_diagnostic(model, wide_guide, num_particles=20000) < 0.2


def test_equal_weights_have_no_tail_at_all():
    torch.manual_seed(1)
    assert psis_diagnostic(_prior, _prior, num_particles=1000) == -math.inf


def test_vectorized_weights_are_the_per_draw_log_densities():
    data = torch.tensor([0.3, -1.2, 0.8])

    def model(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 2.0))
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)

    def guide(data):
        pyro.sample("loc", dist.Normal(0.1, 0.7))

    torch.manual_seed(2)
    log_w, _, guide_trace = vectorized_importance_weights(model, guide, data, num_samples=6)
    loc = guide_trace.nodes["loc"]["value"]
    assert loc.shape == (6, 1)  # the draws' dim sits left of the model's one plate
    expected = (
        dist.Normal(0.0, 2.0).log_prob(loc[:, 0])
        + dist.Normal(loc, 1.0).log_prob(data).sum(-1)
        - dist.Normal(0.1, 0.7).log_prob(loc[:, 0])
    )
    assert torch.allclose(log_w, expected)
    normalized, _, _ = vectorized_importance_weights(
        model, guide, data, num_samples=6, normalized=True
    )
    assert torch.allclose(normalized.exp().sum(), torch.tensor(1.0))


def test_psis_refuses_particles_that_do_not_split_evenly():
    with pytest.raises(ValueError, match="multiple of max_simultaneous_particles=300"):
        psis_diagnostic(_prior, _scaled_guide, num_particles=1000, max_simultaneous_particles=300)
