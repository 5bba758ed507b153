"""The posterior marginals: the kernel density estimate against known densities, the guide's and
the prior's curves for conjugate models (exact posteriors), discrete sites as bars, every
autoguide, element names and caps, and the caller's random stream left alone."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from engine.infer.kde import gaussian_kde
from engine.optim import Adam
from engine.params import ParamStoreDict
from widgets.posterior_marginals import (
    SERIAL_SAMPLES,
    MarginalSampler,
    PosteriorViewError,
    bandwidth,
)


def moments(density, grid):
    mass = torch.trapezoid(density, grid)
    mean = torch.trapezoid(grid * density, grid) / mass
    var = torch.trapezoid((grid - mean) ** 2 * density, grid) / mass
    return float(mass), float(mean), float(var)


def test_kde_of_normal_draws_has_their_mean_sd_and_unit_mass():
    n = 4000
    torch.manual_seed(1)
    draws = 1.0 + 2.0 * torch.randn(n, dtype=torch.float64)
    grid = torch.linspace(-14.0, 16.0, 3001, dtype=torch.float64)
    h = bandwidth(draws)
    mass, mean, var = moments(gaussian_kde(draws, grid), grid)
    assert mass == pytest.approx(1.0, abs=1e-4)  # the grid reaches 7.5 sd: all the mass
    # A Gaussian-kernel KDE has exactly the draws' mean, and their variance plus h^2 (the
    # kernel's). Monte Carlo error: sd/sqrt(n) = 0.032 for the mean, sd/sqrt(2n) = 0.022 for
    # the sd; 4 of them each.
    assert mean == pytest.approx(1.0, abs=4 * 2.0 / math.sqrt(n))
    assert math.sqrt(var - h**2) == pytest.approx(2.0, abs=4 * 2.0 / math.sqrt(2 * n))
    assert h == pytest.approx(0.9 * 2.0 * n**-0.2, rel=0.1)  # Silverman's rule, sd = 2


def test_kde_pointwise_matches_the_smoothed_normal_density():
    n = 4000
    torch.manual_seed(2)
    draws = 1.0 + 2.0 * torch.randn(n, dtype=torch.float64)
    grid = torch.linspace(-5.0, 7.0, 61, dtype=torch.float64)
    h = bandwidth(draws)
    density = gaussian_kde(draws, grid, h)
    # E[KDE] is the density convolved with the kernel: Normal(1, sqrt(4 + h^2)) exactly. The
    # KDE's sd at x is about sqrt(f(x) R(K) / (n h)), R(K) = 1 / (2 sqrt(pi)); 5 of the largest
    # (at the peak) bounds all 61 points.
    expected = dist.Normal(1.0, math.sqrt(4.0 + h * h)).log_prob(grid).exp()
    sd_at_peak = math.sqrt(float(expected.max()) / (2 * math.sqrt(math.pi)) / (n * h))
    assert float((density - expected).abs().max()) < 5 * sd_at_peak


def test_kde_reflects_at_the_bounds_of_the_support():
    torch.manual_seed(3)
    draws = torch.distributions.Exponential(1.0).sample((2000,)).double()
    grid = torch.linspace(-1.0, 12.0, 2601, dtype=torch.float64)
    density = gaussian_kde(draws, grid, lower=0.0)
    assert float(density[grid < 0].abs().max()) == 0.0
    inside = grid >= 0  # the trapezoid rule across the jump at 0 would be off by ~0.0025
    assert float(torch.trapezoid(density[inside], grid[inside])) == pytest.approx(1.0, abs=1e-3)
    # Without the reflection, the kernels of the draws near 0 put part of their mass below it.
    unreflected = gaussian_kde(draws, grid)
    assert float(torch.trapezoid(unreflected[inside], grid[inside])) < 0.97


def test_draws_that_are_all_equal_have_no_bandwidth():
    # A point mass (AutoDelta's draws): drawn as a line, so no kernel width.
    assert bandwidth(torch.ones(10)) == 0.0
    assert bandwidth(torch.tensor([0.0, 1.0, 2.0, 3.0])) > 0


# -- conjugate models -----------------------------------------------------------------------

Y = torch.tensor([1.8, 2.6, 0.9, 2.2, 1.4, 3.1, 1.7, 2.4, 2.0, 1.3])
PRIOR_SD = 2.0


def normal_model(y):
    mu = engine.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with engine.plate("data", len(y)):
        engine.sample("obs", dist.Normal(mu, 1.0), obs=y)


def exact_posterior():
    precision = 1 / PRIOR_SD**2 + len(Y)
    return float(Y.sum()) / precision, 1 / math.sqrt(precision)


def fitted(guide_class, steps=1500, **options):
    engine.set_rng_seed(0)
    store = ParamStoreDict()
    guide = guide_class(normal_model, **options)
    svi = SVI(normal_model, guide, Adam({"lr": 0.02}), Trace_ELBO(), param_store=store)
    for _ in range(steps):
        svi.step(Y)
    return guide, store


def peak(marginal, curve):
    return marginal.x[max(range(len(marginal.x)), key=curve.__getitem__)]


def test_normal_normal_guide_peaks_at_the_exact_posterior_mode_and_prior_matches():
    guide, store = fitted(AutoNormal)
    mean, sd = exact_posterior()  # 1.88, 0.31
    sampler = MarginalSampler(normal_model, guide, (Y,), num_samples=2000, param_store=store)
    (mu,) = sampler.marginals().marginals
    assert (mu.name, mu.kind, mu.point, mu.note) == ("mu", "continuous", None, None)
    loc = store["AutoNormal.locs.mu"].detach().item()
    scale = store["AutoNormal.scales.mu"].detach().item()
    assert loc == pytest.approx(mean, abs=0.1 * sd)  # the fit itself (Adam's noise: ~0.03 sd)
    # The curve is the KDE of 2000 draws of Normal(loc, scale): its mean is theirs, within
    # 4 scale / sqrt(n) of loc, its variance theirs plus h^2, its sd within 4 scale / sqrt(2n).
    grid = torch.tensor(mu.x, dtype=torch.float64)
    mass, curve_mean, curve_var = moments(torch.tensor(mu.guide, dtype=torch.float64), grid)
    h = bandwidth(sampler.guide_draws()["mu"][:, 0])
    assert mass == pytest.approx(1.0, abs=0.01)
    assert curve_mean == pytest.approx(loc, abs=4 * scale / math.sqrt(2000))
    assert math.sqrt(curve_var - h * h) == pytest.approx(scale, abs=4 * scale / math.sqrt(4000))
    # Its peak, against the exact posterior mode: the KDE's mode of 2000 normal draws on this
    # grid (spacing at most 0.2 sd) has an sd of 0.145 sd (measured over 400 seeds; the
    # asymptotic formula gives 0.15), so 4 of those, plus 0.1 sd for the fit: 0.7 sd.
    assert peak(mu, mu.guide) == pytest.approx(mean, abs=0.7 * sd)
    # The prior curve is the KDE of 2000 Normal(0, 2) draws: its expectation is
    # Normal(0, sqrt(4 + h^2)) (h: its bandwidth), its pointwise sd at most
    # sqrt(f_max R(K) / (n h)) (see test_kde_pointwise...); 5 of those bound the grid's points.
    h = bandwidth(sampler.prior_draws()["mu"][:, 0])
    expected = dist.Normal(0.0, math.sqrt(PRIOR_SD**2 + h * h)).log_prob(grid).exp()
    sd_at_peak = math.sqrt(float(expected.max()) / (2 * math.sqrt(math.pi)) / (2000 * h))
    assert float((torch.tensor(mu.prior) - expected).abs().max()) < 5 * sd_at_peak


def coin(flips):
    p = engine.sample("p", dist.Beta(2.0, 2.0))
    with engine.plate("flips", len(flips)):
        engine.sample("obs", dist.Bernoulli(p), obs=flips)


def coin_guide(flips):
    a = engine.param("a", torch.tensor(8.0), constraint=dist.constraints.positive)
    b = engine.param("b", torch.tensor(4.0), constraint=dist.constraints.positive)
    engine.sample("p", dist.Beta(a, b))


def test_beta_bernoulli_hand_written_guide_stays_in_the_unit_interval():
    # The exact posterior after 6 heads and 2 tails from Beta(2, 2) is Beta(8, 4) (mode 0.7):
    # the guide's params are set to it, so the curve is the exact posterior's KDE.
    flips = torch.tensor([1.0, 1, 0, 1, 1, 0, 1, 1])
    fresh = ParamStoreDict()  # the guide's params start at a = 8, b = 4
    sampler = MarginalSampler(coin, coin_guide, (flips,), num_samples=2000, param_store=fresh)
    (p,) = sampler.marginals().marginals
    assert set(fresh.keys()) == {"a", "b"}  # made in the store given, not the global one
    assert p.x[0] >= 0.0 and p.x[-1] <= 1.0  # the grid is clipped to the support
    grid = torch.tensor(p.x, dtype=torch.float64)
    for curve in (p.guide, p.prior):
        assert float(torch.trapezoid(torch.tensor(curve), grid)) == pytest.approx(1.0, abs=0.02)
    sd = math.sqrt(8 * 4 / (12**2 * 13))  # Beta(8, 4): 0.13
    assert peak(p, p.guide) == pytest.approx(0.7, abs=0.6 * sd)  # 4 KDE-mode sds, as above
    # The Beta(2, 2) prior peaks at 0.5; its KDE's top is flat, hence the wider tolerance.
    assert peak(p, p.prior) == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize(
    "guide_class",
    [
        AutoNormal,
        AutoDiagonalNormal,
        AutoMultivariateNormal,
        AutoLowRankMultivariateNormal,
        AutoDelta,
        AutoLaplaceApproximation,
    ],
)
def test_every_autoguide_gives_a_curve_or_a_point_near_the_posterior(guide_class):
    guide, store = fitted(guide_class, steps=600)
    mean, sd = exact_posterior()
    (mu,) = MarginalSampler(normal_model, guide, (Y,), param_store=store).marginals().marginals
    if guide_class in (AutoDelta, AutoLaplaceApproximation):  # Delta guides: a point mass
        assert mu.guide is None and mu.point == pytest.approx(mean, abs=0.1 * sd)  # the fit
    else:
        # 300 draws: the KDE's mode has an sd of 0.21 sd (400 seeds), 4 of them plus 0.1 sd
        # for the fit after 600 steps (measured: within 0.06 sd for each of these guides).
        assert mu.point is None and peak(mu, mu.guide) == pytest.approx(mean, abs=0.95 * sd)


def test_discrete_site_gets_bar_probabilities():
    def model():
        engine.sample("coin", dist.Bernoulli(0.5))
        engine.sample("count", dist.Poisson(3.0))

    def guide():
        engine.sample("coin", dist.Bernoulli(0.8))
        engine.sample("count", dist.Poisson(6.0))

    n = 2000
    coin_bars, count_bars = MarginalSampler(model, guide, num_samples=n).marginals().marginals
    assert coin_bars.kind == "discrete" and coin_bars.x == [0.0, 1.0] and coin_bars.width == 1
    # Frequencies of n draws: sd sqrt(p(1-p)/n) = 0.009 at p = 0.8, 0.011 at 0.5; 4 of them.
    assert coin_bars.guide[1] == pytest.approx(0.8, abs=4 * math.sqrt(0.16 / n))
    assert coin_bars.prior[1] == pytest.approx(0.5, abs=4 * math.sqrt(0.25 / n))
    assert count_bars.x[0] == 0.0 and count_bars.x == sorted(count_bars.x)
    at_six = count_bars.x.index(6.0)
    exact = float(dist.Poisson(6.0).log_prob(torch.tensor(6.0)).exp())  # 0.161
    assert count_bars.guide[at_six] == pytest.approx(exact, abs=4 * math.sqrt(exact / n))


def test_vector_sites_are_split_into_named_elements_and_capped():
    def model():
        engine.sample("theta", dist.Normal(torch.zeros(6), 1.0).to_event(1))
        engine.sample("L", dist.Normal(torch.zeros(2, 2), 1.0).to_event(2))
        engine.sample("<b>", dist.Normal(0.0, 1.0))

    def guide():
        engine.sample("theta", dist.Normal(torch.arange(6.0), 0.1).to_event(1))
        engine.sample("L", dist.Normal(torch.zeros(2, 2), 0.1).to_event(2))
        engine.sample("<b>", dist.Normal(0.0, 0.1))

    result = MarginalSampler(model, guide).marginals(max_elements=4, max_panels=7)
    names = [m.name for m in result.marginals]
    assert names == ["theta[0]", "theta[1]", "theta[2]", "theta[3]", "L[0,0]", "L[0,1]", "L[1,0]"]
    assert result.not_shown == ["theta: 2 more elements", "L: 1 more element", "<b>"]
    theta_2 = result.marginals[2]
    assert peak(theta_2, theta_2.guide) == pytest.approx(2.0, abs=0.1)  # element 2 is element 2


def test_a_site_the_guide_does_not_draw_gets_the_prior_and_a_note():
    def model():
        engine.sample("z", dist.Bernoulli(0.3))
        engine.sample("mu", dist.Normal(0.0, 1.0))

    def guide():
        engine.sample("mu", dist.Normal(0.0, 0.5))

    z, _ = MarginalSampler(model, guide).marginals().marginals
    assert (
        z.guide is None
        and z.note == "prior only: the guide does not draw it"
        and sum(z.prior) == 1.0
    )


def test_drawing_leaves_the_callers_random_stream_and_is_repeatable():
    sampler = MarginalSampler(normal_model, lambda y: engine.sample("mu", dist.Normal(1, 1)), (Y,))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = sampler.marginals().marginals[0]
    assert torch.equal(torch.rand(3), expected)
    assert sampler.marginals().marginals[0].guide == first.guide  # the same seed each time


def test_a_model_without_latent_sites_is_refused_by_name():
    def only_data():
        engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))

    sampler = MarginalSampler(only_data, lambda: None)
    assert sampler.latent_sites() == {}
    with pytest.raises(PosteriorViewError, match="model 'only_data' has no latent sample site"):
        sampler.marginals()


def test_a_guide_that_fails_is_reported_by_name():
    def broken_guide(y):
        raise RuntimeError("oops")

    sampler = MarginalSampler(normal_model, broken_guide, (Y,))
    with pytest.raises(PosteriorViewError, match=r"the guide 'broken_guide' failed .*oops"):
        sampler.marginals()


def test_a_guide_that_does_not_vectorise_is_run_once_per_draw():
    def guide(y):  # .item() cannot take a batch of draws
        loc = engine.sample("loc", dist.Normal(2.0, 0.1))
        engine.sample("mu", dist.Normal(loc.item(), 0.3))

    sampler = MarginalSampler(normal_model, guide, (Y,), num_samples=50)
    (mu,) = sampler.marginals().marginals
    assert sampler.parallel == {"model": True, "guide": False}
    assert peak(mu, mu.guide) == pytest.approx(2.0, abs=0.3)  # 50 draws of Normal(2, 0.3)


def test_prior_draws_come_from_one_batched_run_even_when_the_likelihood_cannot_take_it():
    x = torch.randn(20, 3)

    def regression(x, y):
        w = engine.sample("w", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        scale = engine.sample("scale", dist.HalfNormal(2.0))
        with engine.plate("data", len(x)):
            engine.sample("y", dist.Normal(x @ w, scale), obs=y)  # x @ w fails on a batch of w

    calls = []

    def counted(x, y):
        calls.append(1)
        return regression(x, y)

    n = 2000
    sampler = MarginalSampler(
        counted, lambda x, y: None, (x, x[:, 0]), num_samples=10, num_prior_samples=n
    )
    prior = sampler.prior_draws()
    assert len(calls) == 2  # the probe run and the batched one: not one run per draw
    assert prior["w"].shape == (n, 3) and prior["scale"].shape == (n, 1)
    # Independent draws: the sample sd of Normal(0, 1) draws is within 4 / sqrt(2n) = 0.063 of
    # 1; the HalfNormal(2) mean 2 sqrt(2 / pi) = 1.60, its sd 1.21, so 4 * 1.21 / sqrt(n) = 0.11.
    assert prior["w"].std(0).tolist() == pytest.approx([1.0] * 3, abs=4 / math.sqrt(2 * n))
    assert float(prior["scale"].mean()) == pytest.approx(1.596, abs=0.11)
    assert len(set(prior["w"][:, 0].tolist())) == n  # a fresh draw each, none repeated


def test_a_model_that_fails_on_the_batch_before_its_last_latent_is_run_once_per_draw():
    def model():
        mu = engine.sample("mu", dist.Normal(0.0, 1.0))
        engine.sample("nu", dist.Normal(mu.item(), 1.0))  # .item() needs one draw

    sampler = MarginalSampler(model, lambda: None, num_samples=400)
    prior = sampler.prior_draws()
    assert sampler.parallel["model"] is False
    # nu ~ Normal(mu, 1) with mu ~ Normal(0, 1): sd sqrt(2); the sample sd within 4 sd/sqrt(2n).
    assert float(prior["nu"].std()) == pytest.approx(math.sqrt(2), abs=4 * math.sqrt(2 / 800))


@pytest.mark.parametrize("num_prior_samples, smooth", [(300, False), (4000, True)])
def test_the_prior_curve_is_smooth_because_its_draws_are_many(num_prior_samples, smooth):
    # The prior is drawn once, so it gets many draws by default (PRIOR_SAMPLES, 4000). A kernel
    # density estimate's pointwise sd is sqrt(f * R(K) / (n h)), R(K) = 1 / (2 sqrt(pi)) = 0.28
    # for a Gaussian kernel. For Beta(2, 2) (f <= 1.5, sd 0.22), Silverman's h is 0.038 at
    # n = 4000 and 0.064 at n = 300: a pointwise sd of 0.053 and 0.148. Away from the bounds the
    # bias is h^2 / 2 * |f''| = 0.009 at most. Allow 4 sds plus the bias at 4000 draws
    # (4 * 0.053 + 0.009 = 0.22); 300 draws exceed it (their largest wobble here: checked below).
    def model():
        engine.sample("p", dist.Beta(2.0, 2.0))

    def guide():
        engine.sample("p", dist.Beta(20.0, 20.0))

    sampler = MarginalSampler(model, guide, num_prior_samples=num_prior_samples, seed=3)
    (p,) = sampler.marginals().marginals
    x, prior = torch.tensor(p.x), torch.tensor(p.prior)
    inside = (x > 0.1) & (x < 0.9)
    exact = 6 * x * (1 - x)
    wobble = float((prior - exact)[inside].abs().max())
    assert (wobble < 0.22) is smooth, wobble


def test_a_model_run_once_per_prior_draw_makes_at_most_serial_samples():
    # Its second latent cannot be drawn under a batch of the first (the matrix product), so the
    # prior comes from one run per draw: SERIAL_SAMPLES of them, not the num_prior_samples a
    # batched run affords (an HMM's 4000 runs took a minute).
    calls = []

    def model():
        calls.append(1)
        w = engine.sample("w", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        engine.sample("s", dist.Normal((torch.ones(2, 3) @ w).sum(), 1.0))

    sampler = MarginalSampler(model, lambda: None, num_samples=20, num_prior_samples=4000)
    prior = sampler.prior_draws()
    assert prior["w"].shape == (SERIAL_SAMPLES, 3) and prior["s"].shape == (SERIAL_SAMPLES, 1)
    # The draws, and a few runs that found out it does not batch (probe, batch, Predictive's).
    assert sampler.parallel["model"] is False and SERIAL_SAMPLES < len(calls) < SERIAL_SAMPLES + 8
