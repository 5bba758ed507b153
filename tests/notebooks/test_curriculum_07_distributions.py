"""Curriculum notebook 07 (distributions and constraints) runs top to bottom, its exercises'
folded solutions included, under nbclient with the installed "Python 3 (pplkernel)" kernel, and
what it teaches holds: a constrained param is stored unconstrained and mapped back by
``transform_to``; ``biject_to`` of the simplex is stick-breaking; transformed, mixture, folded and
truncated densities agree with their formulas and their draws' averages with the exact
expectations within Monte Carlo error; NUTS agrees with the grid posteriors of the mixture
weight and of the truncated survey, and with the closed-form posterior of the soft constraint.

How every numbered notebook is saved (kernelspec, no outputs, exercises, table rows) is checked
once, for all of them, by tests/notebooks/test_curriculum.py.
"""

import math

import pytest
from notebook_runs import execute, printed, widget_states
from test_curriculum import normal_cdf, numbers

Z = 4  # Monte Carlo standard errors allowed in each statistical check


def normal_pdf(x: float) -> float:
    return math.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)


def mixture_sd_of_sample_sd(weights, locs, scales, n):
    """The standard error of the sample sd of n draws of a Normal mixture, by the delta method:
    var(sample variance) = (m4 - var^2) / n and sd(sample sd) = sd(sample variance) / (2 sd),
    with m4 the mixture's fourth central moment, E[(d + s Z)^4] = d^4 + 6 d^2 s^2 + 3 s^4 per
    component at distance d from the mixture mean."""
    mean = sum(w * m for w, m in zip(weights, locs, strict=True))
    var = sum(w * (s**2 + (m - mean) ** 2) for w, m, s in zip(weights, locs, scales, strict=True))
    m4 = sum(
        w * ((m - mean) ** 4 + 6 * (m - mean) ** 2 * s**2 + 3 * s**4)
        for w, m, s in zip(weights, locs, scales, strict=True)
    )
    return math.sqrt((m4 - var**2) / n) / (2 * math.sqrt(var))


def assert_nuts_matches(nuts, exact_mean, exact_sd):
    """NUTS's mean and sd against exact ones: the Monte Carlo error of a mean is sd / sqrt(ESS),
    of an sd about sd / sqrt(2 ESS)."""
    mean, sd, ess = nuts
    assert ess > 100
    assert abs(mean - exact_mean) < Z * exact_sd / math.sqrt(ess)
    assert abs(sd - exact_sd) < Z * exact_sd / math.sqrt(2 * ess)


@pytest.mark.slow
def test_distributions_notebook_checks_every_density_and_posterior_it_builds():
    notebook = execute("07_distributions_and_constraints.ipynb")
    text = printed(notebook)

    # Constraints: the stored tensors are log(12), logit(0.25) and log-shares (softmax inverts).
    stored_rate, log_12 = numbers(text, "stored rate")
    assert stored_rate == pytest.approx(math.log(12), abs=1e-4) and log_12 == stored_rate
    stored_returning, logit = numbers(text, "stored returning")
    assert stored_returning == pytest.approx(math.log(0.25 / 0.75), abs=1e-4) == logit
    assert numbers(text, "softmax of stored shares") == pytest.approx([0.5, 0.3, 0.2], abs=1e-4)
    assert "shares: transform_to gives SoftmaxTransform()" in text
    assert "returning: transform_to gives SigmoidTransform()" in text
    moved, positive = numbers(text, "after the step rate")[0], "positive True" in text
    assert moved == pytest.approx(12 * math.exp(-20), rel=1e-3) and positive
    assert numbers(text, "stick-breaking coordinates") == [2, 3]
    assert "StickBreakingTransform()" in text
    assert numbers(text, "shares back") == pytest.approx([0.5, 0.3, 0.2], abs=1e-4)
    assert "softmax of u and of u + 1 equal True" in text

    # The density of log w for w ~ Gamma(3, 2): the engine's equals the formula, integrates to
    # one, and peaks at w = 3/2 (grid step 5e-4 in u, so w within 1.5 * 5e-4).
    assert numbers(text, "log-scale density max difference")[0] < 1e-9
    assert numbers(text, "log-scale density integral") == pytest.approx([1.0], abs=1e-4)
    assert numbers(text, "log-scale mode at w")[0] == pytest.approx(1.5, abs=1e-3)

    # The log-normal three ways, and its draws: the mean's se is sd / sqrt(n), the median's
    # 1 / (2 f(median) sqrt(n)).
    assert numbers(text, "repair density max difference")[0] < 1e-5
    n = 20000
    mean, exact_mean, se = numbers(text, "repair mean")
    exact_sd = math.exp(1.125) * math.sqrt(math.exp(0.25) - 1)
    assert exact_mean == pytest.approx(math.exp(1.125), abs=1e-4)
    assert se == pytest.approx(exact_sd / math.sqrt(n), abs=1e-4)
    assert abs(mean - exact_mean) < Z * se
    median, exact_median, median_se = numbers(text, "repair median")
    density_at_median = normal_pdf(0.0) / (0.5 * math.e)  # LogNormal(1, 0.5) at e
    assert exact_median == pytest.approx(math.e, abs=1e-4)
    assert median_se == pytest.approx(1 / (2 * density_at_median * math.sqrt(n)), abs=1e-4)
    assert abs(median - exact_median) < Z * median_se

    # The commute mixture: density by logsumexp, mean and sd of 20000 draws.
    assert numbers(text, "mixture density max difference")[0] < 1e-5
    weights, locs, scales = (0.7, 0.3), (25.0, 40.0), (3.0, 6.0)
    mix_mean = 29.5
    mix_sd = math.sqrt(0.7 * 9 + 0.3 * 36 + 0.7 * 4.5**2 + 0.3 * 10.5**2)
    mean, exact_mean, se = numbers(text, "commute mean")
    assert exact_mean == mix_mean and se == pytest.approx(mix_sd / math.sqrt(n), abs=1e-4)
    assert abs(mean - mix_mean) < Z * se
    sd, exact_sd = numbers(text, "commute sd")
    assert exact_sd == pytest.approx(mix_sd, abs=1e-4)
    assert abs(sd - mix_sd) < Z * mixture_sd_of_sample_sd(weights, locs, scales, n)

    # The jam probability: NUTS against the grid, and the grid near the true 0.3.
    grid_mean, grid_sd = numbers(text, "grid jam mean")
    assert abs(grid_mean - 0.3) < Z * grid_sd
    assert_nuts_matches(numbers(text, "nuts jam mean"), grid_mean, grid_sd)

    # Folding a Normal at its centre is the half-normal.
    assert numbers(text, "folded against doubled and half-normal max difference")[0] < 1e-5

    # The truncated Normal of our own: normalised, and its draws' mean is mu + 4 lambda with
    # lambda = phi(a) / (1 - Phi(a)), a = (20 - 21) / 4; its sd 4 sqrt(1 + a lambda - lambda^2).
    assert numbers(text, "truncated density integral") == pytest.approx([1.0], abs=1e-4)
    a = -0.25
    lam = normal_pdf(a) / (1 - normal_cdf(a))
    truncated_sd = 4 * math.sqrt(1 + a * lam - lam**2)
    mean, exact_mean, se = numbers(text, "truncated mean")
    assert exact_mean == pytest.approx(21 + 4 * lam, abs=1e-4)
    assert se == pytest.approx(truncated_sd / math.sqrt(n), abs=1e-4)
    assert abs(mean - exact_mean) < Z * se
    assert numbers(text, "smallest draw")[0] > 20 and "above 20 True" in text

    # The survey: NUTS with the class against the grid; the grid posterior covers the true 21,
    # the naive one sits on the recorded average, far above it.
    kept, recorded_mean = numbers(text, "fish kept")
    assert kept == 120
    grid_mean, grid_sd = numbers(text, "grid mu mean")
    naive_mean, naive_sd = numbers(text, "naive mu mean")
    assert abs(grid_mean - 21) < Z * grid_sd
    assert abs(naive_mean - recorded_mean) < 0.05
    assert naive_mean - 21 > Z * naive_sd
    assert_nuts_matches(numbers(text, "nuts mu mean"), grid_mean, grid_sd)
    # float32 log-densities of about -300: rounding of a few 1e-5.
    assert all(abs(gap) < 1e-3 for gap in numbers(text, "class minus factor log-density"))
    survey = next(s for s in widget_states(notebook) if s.get("title") == "model survey")
    rows = {row["site"]: row for row in survey["sites"]}
    assert rows["length"]["distribution"] == "LowerTruncatedNormal"
    assert rows["length"]["value"] == "(120,)"

    # The boards: a Gaussian observation of a + b = 2.1 with sd 0.02 under N(1, 0.1^2) priors.
    # Conditioning a Gaussian: gain k = 0.01 / (0.02 + 0.02^2) per board.
    k = 0.01 / (0.02 + 0.02**2)
    board_sd = math.sqrt(0.01 - 0.01 * k)
    correlation = -0.01 * k / board_sd**2
    assert numbers(text, "exact board mean") == pytest.approx(
        [1 + 0.1 * k, board_sd, correlation], abs=1e-4
    )
    nuts = numbers(text, "nuts board mean")
    assert_nuts_matches(nuts, 1 + 0.1 * k, board_sd)
    # A sample correlation's se is about (1 - rho^2) / sqrt(n), n the effective draws.
    (nuts_correlation,) = numbers(text, "nuts board correlation")
    assert abs(nuts_correlation - correlation) < Z * (1 - correlation**2) / math.sqrt(nuts[2])

    # Exercise 1: 10 + 20 Beta(2, 5); the mean's se from Beta's variance 10 / (49 * 8).
    assert numbers(text, "ex1 density max difference")[0] < 1e-5
    mean, exact_mean, se = numbers(text, "ex1 mean")
    assert exact_mean == pytest.approx(10 + 40 / 7, abs=1e-4)
    assert se == pytest.approx(20 * math.sqrt(10 / (49 * 8)) / math.sqrt(n), abs=1e-4)
    assert abs(mean - exact_mean) < Z * se
    # Exercise 2: the observed-plank model differs by the Normal's constant -log(0.02 sqrt(2 pi)).
    *gaps, constant = numbers(text, "ex2 gaps")
    assert constant == pytest.approx(-math.log(0.02 * math.sqrt(2 * math.pi)), abs=1e-4)
    assert len(gaps) == 5 and all(abs(gap - constant) < 1e-3 for gap in gaps)
    # Exercise 3: a cut written as 18 lands between the right posterior and the naive one.
    wrong, right, naive = numbers(text, "ex3 wrong cut mean")
    assert right == grid_mean and naive == naive_mean
    assert right + grid_sd < wrong < naive
