"""TraceEnum_ELBO with guide sites marked ``infer={"enumerate": "parallel", "num_samples": k}``:
the site takes k draws in an enumeration dim of its own and the ELBO averages over them (Pyro's
documented meaning of ``num_samples`` in a guide), with the score function of draws that are not
reparameterised. Model sites with draws, and guide draws paired with another site's draws, stay
refused: summing them out exactly, or averaging every combination of paired draws, would be
wrong. Last, an observation computed from enumerated values, which the shape check must let
vary along their enumeration dims."""

import math

import pytest
import torch
from torch.autograd import grad

import engine
import engine.distributions as dist
from engine.errors import EnumerationNotSupportedError
from engine.infer import TraceEnum_ELBO, config_enumerate

DRAWS = 20000


def _bernoulli_pair(q: torch.Tensor, p: float):
    def model():
        engine.sample("z", dist.Bernoulli(p))

    def guide():
        engine.sample("z", dist.Bernoulli(q), infer={"enumerate": "parallel", "num_samples": DRAWS})

    return model, guide


def test_draws_of_a_discrete_guide_site_estimate_the_kl_and_its_score_function_gradient():
    engine.set_rng_seed(0)
    q = torch.tensor(0.75, requires_grad=True)
    p = 0.2
    model, guide = _bernoulli_pair(q, p)
    loss = TraceEnum_ELBO(max_plate_nesting=0).differentiable_loss(model, guide)
    (gradient,) = grad(loss, [q])
    exact_kl = dist.kl_divergence(dist.Bernoulli(q), dist.Bernoulli(p))
    (exact_gradient,) = grad(exact_kl, [q])
    # Per draw, the loss term log q(z) - log p(z) takes 1.322 (z = 1) or -1.163 (z = 0): its sd
    # is 2.485 * sqrt(0.75 * 0.25) = 1.076, so the mean of 20000 draws has an MC error of
    # 0.0076. The gradient term (1/q or -1/(1-q)) * (cost + 1) takes 3.096 or 0.653: sd 1.058,
    # error 0.0075. Both within 5 errors:
    assert abs(loss.item() - exact_kl.item()) < 0.04
    assert abs(gradient.item() - exact_gradient.item()) < 0.04
    # Far from what the one-value (exact) enumeration of Bernoulli(0.75) would give, had the
    # draws been read as the support: the estimate is an average, not a sum.
    assert abs(loss.item()) < 1.0


def test_reparameterised_draws_carry_the_pathwise_gradient():
    engine.set_rng_seed(1)
    loc = torch.tensor(1.0, requires_grad=True)

    def model():
        engine.sample("z", dist.Normal(0.0, 1.0))

    @config_enumerate(num_samples=DRAWS)
    def guide():
        engine.sample("z", dist.Normal(loc, 1.0))

    loss = TraceEnum_ELBO(max_plate_nesting=0).differentiable_loss(model, guide)
    (gradient,) = grad(loss, [loc])
    # KL(N(loc, 1) || N(0, 1)) = loc^2 / 2. Per draw z = loc + e the term is loc * z - loc^2/2
    # (sd |loc| = 1) with pathwise gradient loc + e (sd 1): MC error 1/sqrt(20000) = 0.0071 for
    # both; 5 errors:
    assert abs(loss.item() - 0.5) < 0.036
    assert abs(gradient.item() - 1.0) < 0.036


MIXTURE_DATA = torch.tensor([-1.3, 0.2, 2.4, 2.9])


def _mixture(num_samples):
    @config_enumerate
    def model(data):
        loc = engine.sample("loc", dist.Normal(0.0, 3.0))
        with engine.plate("data", len(data)):
            which = engine.sample("which", dist.Bernoulli(0.4))
            engine.sample("x", dist.Normal(loc * which, 1.0), obs=data)

    def guide(data):
        m = engine.param("m", torch.tensor(1.5))
        infer = {} if num_samples is None else {"enumerate": "parallel", "num_samples": 1}
        engine.sample("loc", dist.Normal(m, 0.7), infer=infer)

    return model, guide


def test_one_draw_in_its_own_dim_is_the_plain_elbo_with_the_model_sites_summed_out():
    # One draw per site is an ordinary single-sample ELBO: same random stream, same value, so the
    # same loss and gradient, with the model's enumerated site summed out either way.
    engine.clear_param_store()
    results = []
    for num_samples in (None, 1):
        model, guide = _mixture(num_samples)
        engine.set_rng_seed(3)
        loss = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, MIXTURE_DATA)
        (gradient,) = grad(loss, [engine.param("m").unconstrained()])
        results.append((loss.detach(), gradient))
    assert torch.allclose(results[0][0], results[1][0])
    assert torch.allclose(results[0][1], results[1][1])


def test_many_draws_next_to_a_summed_out_model_site_match_the_exact_expectation():
    engine.clear_param_store()

    @config_enumerate
    def model():
        loc = engine.sample("loc", dist.Normal(0.0, 1.0))
        which = engine.sample("which", dist.Bernoulli(0.5))
        engine.sample("x", dist.Normal(loc + 2.0 * which, 1.0), obs=torch.tensor(1.0))

    def guide():
        engine.sample(
            "loc", dist.Normal(0.0, 1.0), infer={"enumerate": "parallel", "num_samples": DRAWS}
        )

    engine.set_rng_seed(4)
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, guide)
    # With the guide equal to the prior, the ELBO is E_loc[log p(x | loc)], p(x | loc) the
    # two-component mixture: its exact value by quadrature on a fine grid.
    grid = torch.linspace(-8.0, 8.0, 16001, dtype=torch.float64)
    weights = dist.Normal(0.0, 1.0).log_prob(grid).exp() * (grid[1] - grid[0])
    likelihood = torch.logsumexp(
        torch.stack(
            [dist.Normal(grid + shift, 1.0).log_prob(torch.tensor(1.0)) for shift in (0.0, 2.0)]
        )
        + math.log(0.5),
        0,
    )
    exact = -(weights * likelihood).sum().item()
    # The sd of log p(x | loc) under N(0, 1) is 0.29 (measured on 200000 draws), so the MC error
    # of the mean of 20000 draws is 0.0021; 5 errors:
    assert abs(loss - exact) < 0.011


def test_draws_paired_with_another_sampled_guide_site_are_refused_naming_both():
    def model():
        a = engine.sample("a", dist.Normal(0.0, 1.0))
        engine.sample("b", dist.Normal(a, 1.0))

    @config_enumerate(num_samples=5)
    def guide():
        a = engine.sample("a", dist.Normal(0.0, 1.0))
        engine.sample("b", dist.Normal(a, 1.0))

    with pytest.raises(EnumerationNotSupportedError, match=r"'b'.*'a'.*TraceTMC_ELBO"):
        TraceEnum_ELBO(max_plate_nesting=0).loss(model, guide)


def test_an_observation_computed_from_enumerated_values_is_scored_per_combination():
    # obs = a + b holds one value per combination of a and b (their enumeration dims); the check
    # against silent broadcasting leaves those dims alone, as Pyro scores them.
    @config_enumerate
    def model():
        a = engine.sample("a", dist.Bernoulli(0.2))
        b = engine.sample("b", dist.Bernoulli(0.7))
        engine.sample("total", dist.Normal(0.0, 1.0), obs=a + b)

    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, lambda: None)
    exact = -torch.logsumexp(
        torch.tensor(
            [
                math.log(pa) + math.log(pb) + dist.Normal(0.0, 1.0).log_prob(torch.tensor(s)).item()
                for pa, pb, s in [
                    (0.8, 0.3, 0.0),
                    (0.8, 0.7, 1.0),
                    (0.2, 0.3, 1.0),
                    (0.2, 0.7, 2.0),
                ]
            ]
        ),
        0,
    ).item()
    assert loss == pytest.approx(exact, rel=1e-6)
    # Outside enumeration a value that widens the log-prob crosswise is still refused.
    with pytest.raises(engine.errors.ShapeError, match="'total'"):
        engine.poutine.trace(
            lambda: engine.sample("total", dist.Normal(torch.zeros(2), 1.0), obs=torch.zeros(2, 1))
        ).get_trace()
