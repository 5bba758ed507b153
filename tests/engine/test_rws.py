"""ReweightedWakeSleep: its gradients against closed forms on a conjugate normal model, fits by
the wake phase (insomnia=1) and by the sleep phase alone (insomnia=0) to the exact posterior,
the mix of both, SVI's pair of losses, and the errors for arguments it cannot use.

The model throughout: z ~ N(theta, 1), x ~ N(z, 1), x = 1 observed, so that
p(x) = N(x; theta, 2) and the posterior is N((theta + x) / 2, 1/2).

Fit tolerances. Plain SGD (step size eta) on an objective whose gradient noise per step has
covariance Sigma and whose expected Hessian is H settles into a stationary cloud around the
optimum; the mean of T iterates of that cloud (Polyak-Ruppert averaging, T much longer than the
cloud's correlation time 1 / (eta h)) has variance H^-1 Sigma H^-1 / T. At the optimum of a
wake-phi or sleep-phi loss the normalised weights are all 1/K and the loss is a negative
log-likelihood of the guide, so with K draws per step Sigma = F / K for the guide's Fisher
information F = H, and the averaged parameter's standard deviation is 1 / sqrt(K T h): the
asymptotic error of maximum likelihood from K T draws. Each assertion allows 4 of those.
"""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine.errors import ArgumentError
from engine.infer import SVI, ReweightedWakeSleep
from engine.optim import SGD

X = torch.tensor(1.0)


def model():
    theta = engine.param("theta", torch.tensor(0.2))
    z = engine.sample("z", dist.Normal(theta, 1.0))
    engine.sample("x", dist.Normal(z, 1.0), obs=X)


def fixed_model():
    z = engine.sample("z", dist.Normal(0.0, 1.0))
    engine.sample("x", dist.Normal(z, 1.0), obs=X)


def guide(observations=None):
    loc = engine.param("loc", torch.tensor(0.3))
    log_scale = engine.param("log_scale", torch.tensor(0.0))
    engine.sample("z", dist.Normal(loc, log_scale.exp()))


def amortised_guide(observations=None):
    """q(z | x) = N(a x + b, exp(log_scale)^2): the sleep phase hands it the model's own x."""
    x = X if observations is None else observations["x"]
    a = engine.param("a", torch.tensor(0.0))
    b = engine.param("b", torch.tensor(1.0))
    log_scale = engine.param("log_scale", torch.tensor(0.5))
    engine.sample("z", dist.Normal(a * x + b, log_scale.exp()))


@pytest.fixture(autouse=True)
def fresh_store():
    engine.clear_param_store()
    yield
    engine.clear_param_store()


def gradients(loss, names):
    params = [engine.param(name).unconstrained() for name in names]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return {name: (None if g is None else g.item()) for name, g in zip(names, grads, strict=True)}


def test_wake_gradients_match_the_closed_forms():
    engine.set_rng_seed(0)
    # The guide N(0.3, 1) against the posterior N(0.6, 1/2) (theta = 0.2).
    elbo = ReweightedWakeSleep(num_particles=20000)
    theta_loss, phi_loss = elbo.differentiable_loss(model, guide)
    theta_grads = gradients(theta_loss, ["theta", "loc", "log_scale"])
    phi_grads = gradients(phi_loss, ["theta", "loc", "log_scale"])
    # Wake-theta: d(-log p(x))/d theta = -(x - theta) / 2 = -0.4. It is a self-normalised
    # importance estimate of -E_post[z - theta]: standard error sqrt(Var_post z / ESS), with
    # ESS = K / E_q[(p/q)^2] = 20000 / 1.227 here (two normals: E_q[(p/q)^2] =
    # s_q^2 / (s_p sqrt(2 s_q^2 - s_p^2)) exp(d^2 / (2 s_q^2 - s_p^2))): 0.0055; 4 of them is 0.022.
    assert theta_grads["theta"] == pytest.approx(-0.4, abs=0.022)
    # Wake-phi: d KL(post || q) / d loc = -(0.6 - 0.3) / 1^2 = -0.3, estimated from
    # E_post[(z - loc) / s^2] (variance 1/2) with the same ESS: error 0.0055 -> 0.022;
    # d/d log_scale = 1 - E_post[(z - loc)^2] / s^2 = 1 - (0.5 + 0.09) = 0.41, from terms of
    # variance Var_post[(z - loc)^2] = 2 * 0.5^2 + 4 * 0.5 * 0.09 = 0.68: error 0.0065 -> 0.026.
    assert phi_grads["loc"] == pytest.approx(-0.3, abs=0.022)
    assert phi_grads["log_scale"] == pytest.approx(0.41, abs=0.026)
    # Each loss trains its own side only: the draws are held fixed, so no gradient crosses.
    assert theta_grads["loc"] in (None, 0.0) and theta_grads["log_scale"] in (None, 0.0)
    assert phi_grads["theta"] in (None, 0.0)


def averaged_fit(svi, names, burn_in, steps, **step_kwargs):
    sums = dict.fromkeys(names, 0.0)
    for step in range(burn_in + steps):
        svi.step(**step_kwargs)
        if step >= burn_in:
            for name in names:
                sums[name] += engine.param(name).item()
    return {name: total / steps for name, total in sums.items()}


def test_wake_phase_fits_the_exact_posterior():
    engine.set_rng_seed(1)
    elbo = ReweightedWakeSleep(num_particles=8)  # insomnia=1: wake-phi only
    svi = SVI(fixed_model, guide, SGD({"lr": 0.02}), elbo)
    # h = 1 / s^2 = 2 for loc and 2 for log_scale: the cloud's correlation time is
    # 1 / (0.02 * 2) = 25 steps, so 400 steps forget the start (0.96^400 ~ 1e-7) and the mean of
    # 1000 has standard deviation 1 / sqrt(8 * 1000 * 2) = 0.0079 -> 4 of them is 0.032.
    fit = averaged_fit(svi, ["loc", "log_scale"], burn_in=400, steps=1000)
    assert fit["loc"] == pytest.approx(0.5, abs=0.032)
    assert fit["log_scale"] == pytest.approx(0.5 * math.log(0.5), abs=0.032)


def test_sleep_phase_alone_fits_the_amortised_posterior():
    engine.set_rng_seed(2)
    elbo = ReweightedWakeSleep(num_particles=8, insomnia=0.0, model_has_params=False)
    svi = SVI(fixed_model, amortised_guide, SGD({"lr": 0.02}), elbo)
    # The sleep phase fits q(z | x) on the model's own (z, x) draws, x ~ N(0, 2): the optimum
    # is the exact posterior map, a = 1/2, b = 0, scale^2 = 1/2. The Hessians are
    # h_a = E[x^2] / s^2 = 4, h_b = 1 / s^2 = 2, h_log_scale = 2 (and E[x] = 0 decouples a and b),
    # so after 600 steps of burn-in (correlation time <= 25 steps) the mean of 1500 steps has
    # standard deviation at most 1 / sqrt(8 * 1500 * 2) = 0.0065 -> 4 of them is 0.026.
    fit = averaged_fit(svi, ["a", "b", "log_scale"], burn_in=600, steps=1500)
    assert fit["a"] == pytest.approx(0.5, abs=0.026)
    assert fit["b"] == pytest.approx(0.0, abs=0.026)
    assert fit["log_scale"] == pytest.approx(0.5 * math.log(0.5), abs=0.026)


def test_a_sleep_only_step_skips_the_wake_phase_and_reports_zero_for_the_model():
    engine.set_rng_seed(3)
    elbo = ReweightedWakeSleep(num_particles=4, insomnia=0.0, model_has_params=False)
    svi = SVI(fixed_model, amortised_guide, SGD({"lr": 0.01}), elbo)
    theta_loss, phi_loss = svi.step()
    assert theta_loss == 0.0 and math.isfinite(phi_loss) and phi_loss != 0.0


@pytest.mark.parametrize("vectorize", [True, False])
def test_insomnia_mixes_the_wake_and_sleep_losses(vectorize):
    def run(insomnia, model_has_params=True):
        elbo = ReweightedWakeSleep(
            num_particles=3,
            insomnia=insomnia,
            model_has_params=model_has_params,
            vectorize_particles=vectorize,
            max_plate_nesting=0,
        )
        return elbo.loss(fixed_model, amortised_guide)

    # The wake phase draws first, then the sleep phase: the same seed gives the same draws.
    engine.set_rng_seed(4)
    theta, wake_phi = run(1.0)
    _, sleep_phi = run(0.0, model_has_params=False)
    engine.set_rng_seed(4)
    mixed_theta, mixed_phi = run(0.25)
    assert mixed_theta == pytest.approx(theta, rel=1e-6)
    assert mixed_phi == pytest.approx(0.25 * wake_phi + 0.75 * sleep_phi, rel=1e-6)


def test_sleep_loss_vectorised_or_not_estimates_the_expected_guide_density():
    def vector_model():
        z = engine.sample("z", dist.Normal(0.0, 1.0))
        loc = z.unsqueeze(-1).expand(*z.shape, 3)  # one z per particle, three points each
        engine.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=torch.zeros(3))

    def posterior_guide(observations=None):
        x = torch.zeros(3) if observations is None else observations["x"]
        engine.sample("z", dist.Normal(x.sum(-1) / 4, 0.5))

    # q is the exact posterior map (mean sum(x) / 4, variance 1/4), so -log q(z | x) at the
    # model's draws has mean -E log N(z; m, 1/4) = 0.5 log(2 pi / 4) + 1/2 = 0.7258 and
    # variance 1/2 per draw: 2000 draws give standard error 0.0158 -> 4 of them is 0.064.
    engine.set_rng_seed(5)
    for vectorize in (True, False):
        elbo = ReweightedWakeSleep(
            num_particles=2,
            insomnia=0.0,
            model_has_params=False,
            num_sleep_particles=2000 if vectorize else 400,
            vectorize_particles=vectorize,
        )
        _, phi = elbo.loss(vector_model, posterior_guide)
        tolerance = 0.064 if vectorize else 0.064 * math.sqrt(5)
        assert phi == pytest.approx(0.5 * math.log(2 * math.pi / 4) + 0.5, abs=tolerance)


def test_svi_reports_both_losses():
    engine.set_rng_seed(6)
    svi = SVI(model, guide, SGD({"lr": 0.01}), ReweightedWakeSleep(num_particles=4))
    events = []
    svi.progress.subscribe(events.append)
    losses = svi.step()
    assert isinstance(losses, tuple) and len(losses) == 2
    assert all(isinstance(loss, float) and math.isfinite(loss) for loss in losses)
    assert events[-1].loss == losses[0] and events[-1].info["losses"] == losses
    evaluated = svi.evaluate_loss()
    assert isinstance(evaluated, tuple) and len(evaluated) == 2
    # Both sides moved: the model's theta and the guide's loc.
    assert engine.param("theta").item() != 0.2 and engine.param("loc").item() != 0.3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_particles": 1}, "num_particles=1 must be at least 2"),
        ({"num_particles": 2.5}, "not a whole number"),
        ({"insomnia": 1.5}, r"so it must lie in \[0, 1\]"),
        ({"insomnia": -0.1}, r"so it must lie in \[0, 1\]"),
        ({"insomnia": "half"}, r"so it must lie in \[0, 1\]"),
        ({"num_sleep_particles": 0}, "num_sleep_particles=0 must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        ReweightedWakeSleep(**kwargs)


def test_sleep_needs_a_guide_that_takes_observations():
    def plain_guide():
        engine.sample("z", dist.Normal(0.0, 1.0))

    elbo = ReweightedWakeSleep(insomnia=0.5)
    with pytest.raises(ArgumentError, match=r"the guide plain_guide\(\) takes no keyword argument"):
        elbo.loss(fixed_model, plain_guide)


def test_a_mini_batch_is_refused_by_plate_and_site():
    def batched_model():
        z = engine.sample("z", dist.Normal(0.0, 1.0))
        with engine.plate("data", 100, subsample_size=10):
            engine.sample("x", dist.Normal(z, 1.0), obs=torch.zeros(10))

    with pytest.raises(ArgumentError, match="plate 'data' at site 'x' draws a mini-batch of 10"):
        ReweightedWakeSleep().loss(batched_model, guide)
