"""TraceTMC_ELBO: Tensor Monte Carlo estimates of log p(x), checked against closed forms.

The model throughout is a small Gaussian hierarchy whose marginal likelihood is known exactly:
    z ~ N(theta, 1),  w_n ~ N(z, 0.5^2),  x_n ~ N(w_n, 0.7^2)  (n = 1..3)
so x ~ N(theta * 1, 1 1^T + (0.25 + 0.49) I). Its sites depend on each other across a plate,
which is what distinguishes a correct TMC estimate (each pairing of draws weighed against the
proposal it was drawn from) from one that treats dependent draws as independent.
"""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine.distributions.testing.fakes import NonreparameterizedNormal
from engine.errors import EnumerationError
from engine.infer import SVI, Trace_ELBO, TraceEnum_ELBO, TraceTMC_ELBO, config_enumerate
from engine.optim import Adam

X = torch.tensor([0.8, 1.6, 1.1])
COV = torch.ones(3, 3) + torch.eye(3) * (0.5**2 + 0.7**2)


def exact_log_marginal(theta: float) -> float:
    return dist.MultivariateNormal(torch.full((3,), theta), COV).log_prob(X).item()


def exact_grad(theta: float) -> float:
    # d/dtheta log N(x; theta 1, C) = 1^T C^-1 (x - theta 1)
    return (torch.ones(3) @ torch.linalg.solve(COV, X - theta)).item()


def hierarchy(normal=dist.Normal):
    def model():
        theta = engine.param("theta", torch.tensor(0.3))
        z = engine.sample("z", normal(theta, 1.0))
        with engine.plate("data", 3):
            w = engine.sample("w", normal(z, 0.5))
            engine.sample("x", dist.Normal(w, 0.7), obs=X)

    return model


def guide():
    loc = engine.param("loc", torch.tensor(0.5))
    z = engine.sample("z", dist.Normal(loc, 0.9))
    with engine.plate("data", 3):
        engine.sample("w", dist.Normal(0.8 * z, 0.6))


def estimates(model, guide, repeats, seed=0):
    engine.set_rng_seed(seed)
    elbo = TraceTMC_ELBO(max_plate_nesting=1)
    return torch.tensor([-elbo.loss(model, guide) for _ in range(repeats)], dtype=torch.float64)


@pytest.mark.slow  # 60 repeats at 256 draws per site (a minute each on a busy CPU)
@pytest.mark.parametrize("tmc", ["diagonal", "mixture"])
@pytest.mark.parametrize("where", ["prior", "guide"])
def test_the_estimate_of_p_x_is_unbiased_and_converges(tmc, where):
    engine.clear_param_store()
    model = hierarchy()
    exact = exact_log_marginal(0.3)
    spreads = []
    for k in (8, 256):
        if where == "prior":
            model = config_enumerate(hierarchy(), num_samples=k, tmc=tmc)
            proposal = lambda: None  # noqa: E731
        else:
            proposal = config_enumerate(guide, num_samples=k, tmc=tmc)
        log_estimates = estimates(model, proposal, repeats=60)
        # Unbiased in linear space: the mean of p_hat / p over the repeats is 1 within 4
        # standard errors (the ratio's spread estimated from the same repeats).
        ratios = (log_estimates - exact).exp()
        standard_error = ratios.std() / math.sqrt(len(ratios))
        assert abs(ratios.mean().item() - 1.0) < 4 * standard_error.item() + 1e-3
        spreads.append(log_estimates.std().item())
    # The spread of log p_hat shrinks like 1/sqrt(k): 32 times the draws, about 5.7 times less
    # spread; at least 3 times less leaves room for the spreads' own sampling error.
    assert spreads[1] < spreads[0] / 3
    # At k = 256 the log estimate is within a few of its standard deviations of log p(x) (its
    # downward bias, about var/2, is far smaller than that).
    assert abs(log_estimates.mean().item() - exact) < 4 * spreads[1] / math.sqrt(60) + spreads[1]


@pytest.mark.parametrize("normal", [dist.Normal, NonreparameterizedNormal])
def test_the_gradient_converges_to_the_gradient_of_log_p_x(normal):
    # The model's sites drawn from their prior: the gradient in theta flows through the draws
    # (reparameterised) or through the score function of each draw (not).
    model = config_enumerate(hierarchy(normal), num_samples=400)
    engine.set_rng_seed(1)
    grads = []
    for _ in range(20):
        engine.clear_param_store()
        loss = TraceTMC_ELBO(max_plate_nesting=1).differentiable_loss(model, lambda: None)
        (grad,) = torch.autograd.grad(-loss, [engine.param("theta").unconstrained()])
        grads.append(grad.item())
    grads = torch.tensor(grads)
    # The gradient of log p_hat is a consistent estimate of d log p(x) / d theta: at k = 400 its
    # mean over 20 repeats is within 4 standard errors plus a small bias allowance (the log's
    # bias, O(1/k) relative, taken as 5% of the exact value).
    expected = exact_grad(0.3)
    standard_error = grads.std().item() / math.sqrt(len(grads))
    assert abs(grads.mean().item() - expected) < 4 * standard_error + 0.05 * abs(expected)


def test_one_draw_per_guide_site_is_trace_elbo_in_expectation():
    # With one draw per site and every site in the guide, TMC's estimate is log p - log q of one
    # draw, Trace_ELBO's estimate; so are their gradients. Same seed, same draws: equal.
    model = hierarchy()
    one_draw = config_enumerate(guide, num_samples=1)
    for elbo, fn in ((TraceTMC_ELBO(max_plate_nesting=1), one_draw), (Trace_ELBO(), guide)):
        engine.clear_param_store()
        engine.set_rng_seed(3)
        loss = elbo.differentiable_loss(model, fn)
        params = [engine.param(n).unconstrained() for n in ("theta", "loc")]
        grads = torch.autograd.grad(loss, params)
        if isinstance(elbo, TraceTMC_ELBO):
            tmc_loss, tmc_grads = loss, grads
    assert torch.allclose(tmc_loss, loss)
    assert all(torch.allclose(a, b) for a, b in zip(tmc_grads, grads, strict=True))


def test_exhaustively_enumerated_sites_are_summed_out_exactly():
    @config_enumerate
    def model():
        probs = engine.param("probs", torch.tensor([0.2, 0.5, 0.3]))
        with engine.plate("data", 3):
            k = engine.sample("k", dist.Categorical(probs))
            engine.sample("x", dist.Normal(torch.tensor([-1.0, 0.5, 2.0])[k], 0.8), obs=X)

    engine.clear_param_store()
    tmc = TraceTMC_ELBO(max_plate_nesting=1).differentiable_loss(model, lambda: None)
    enum = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, lambda: None)
    assert torch.allclose(tmc, enum)
    probs = engine.param("probs").unconstrained()
    assert torch.allclose(torch.autograd.grad(tmc, probs)[0], torch.autograd.grad(enum, probs)[0])


@pytest.mark.slow  # 300 SVI steps at 64 draws per site
def test_svi_with_tmc_fits_the_maximum_likelihood_theta():
    # log p(x) in theta is maximal at the GLS mean 1^T C^-1 x / 1^T C^-1 1.
    ones = torch.ones(3)
    optimum = (ones @ torch.linalg.solve(COV, X) / (ones @ torch.linalg.solve(COV, ones))).item()
    engine.clear_param_store()
    engine.set_rng_seed(0)
    model = config_enumerate(hierarchy(), num_samples=64)
    svi = SVI(model, lambda: None, Adam({"lr": 0.05}), TraceTMC_ELBO(max_plate_nesting=1))
    for _ in range(300):
        svi.step()
    # The stochastic gradient's noise keeps theta within about lr-sized jitter of the optimum.
    assert abs(engine.param("theta").item() - optimum) < 0.15


def test_sequential_marks_are_refused_by_name():
    def model():
        engine.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})

    with pytest.raises(EnumerationError, match=r"'z'.*sequential.*parallel"):
        TraceTMC_ELBO(max_plate_nesting=0).loss(model, model)


def test_diagonal_pairing_needs_equal_draw_counts():
    def model():
        z = engine.sample(
            "z", dist.Normal(0.0, 1.0), infer={"enumerate": "parallel", "num_samples": 4}
        )
        engine.sample("w", dist.Normal(z, 1.0), infer={"enumerate": "parallel", "num_samples": 3})

    with pytest.raises(EnumerationError, match=r"'w'.*3 draws.*4 draws.*'z'.*mixture"):
        TraceTMC_ELBO(max_plate_nesting=0).loss(model, lambda: None)
