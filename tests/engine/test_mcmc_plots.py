"""The numbers behind the MCMC pictures (KDE, rank histograms) against what theory says, and
``mcmc.plot()``'s figure."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine.infer import MCMC, NUTS
from engine.infer.kde import gaussian_kde
from engine.infer.mcmc.diagnostics import rank_histogram
from engine.infer.mcmc.marginals import density_curves, stack_elements

scipy_stats = pytest.importorskip("scipy.stats")


def test_kde_of_normal_draws_is_the_normal_density_within_its_error():
    n = 4000
    x = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    points = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.5], dtype=torch.float64)
    estimate = gaussian_kde(x, points)
    exact = dist.Normal(0.0, 1.0).log_prob(points).exp()
    # A Gaussian-kernel KDE with bandwidth h has bias about h^2 f''(x) / 2 (|f''| <= 0.4 for the
    # standard normal) and sd sqrt(f(x) R(K) / (n h)) with R(K) = 1 / (2 sqrt(pi)); Silverman's
    # h is about 0.9 n^(-1/5) = 0.17 here. Bias bound plus 4 sds.
    h = 0.9 * n**-0.2
    sd = (exact / (2 * math.sqrt(math.pi)) / (n * h)).sqrt()
    assert ((estimate - exact).abs() < 0.5 * h**2 * 0.4 + 4 * sd).all()


def chi_square_uniform(counts):
    """Pearson's statistic of rank counts (chains, bins) against a flat histogram, and its
    degrees of freedom: ranks pooled over chains fix each bin's total, so the table is a
    chains x bins contingency table, (chains - 1)(bins - 1) df."""
    chains, bins = counts.shape
    expected = counts.sum() / (chains * bins)
    statistic = float(((counts - expected) ** 2 / expected).sum())
    return statistic, (chains - 1) * (bins - 1)


def test_rank_histograms_of_chains_from_one_distribution_are_uniform():
    g = torch.Generator().manual_seed(1)
    same = torch.randn(4, 1000, generator=g)
    counts = rank_histogram(same, bins=20)
    assert counts.shape == (4, 20) and int(counts.sum()) == 4000
    statistic, df = chi_square_uniform(counts)
    # A false failure has probability 1e-4.
    assert statistic < scipy_stats.chi2.ppf(1 - 1e-4, df)
    # One chain shifted by half a standard deviation: ranks pile up at the top.
    shifted = same.clone()
    shifted[2] += 0.5
    statistic, df = chi_square_uniform(rank_histogram(shifted, bins=20))
    assert statistic > scipy_stats.chi2.ppf(1 - 1e-4, df)


def test_rank_histogram_keeps_event_dims_and_counts_each_chain():
    x = torch.randn(3, 50, 2, 4, generator=torch.Generator().manual_seed(2))
    counts = rank_histogram(x, bins=5)
    assert counts.shape == (3, 5, 2, 4)
    assert (counts.sum(1) == 50).all()


def test_density_curves_share_a_grid_that_covers_every_chain():
    g = torch.Generator().manual_seed(3)
    draws = torch.stack([torch.randn(300, 2, generator=g), 5 + torch.randn(300, 2, generator=g)])
    grid, density = density_curves(draws, points=200)
    assert grid.shape == (2, 200) and density.shape == (2, 2, 200)
    assert (grid[:, 0] < draws.amin((0, 1))).all() and (grid[:, -1] > draws.amax((0, 1))).all()
    step = grid[:, 1] - grid[:, 0]
    mass = (density * step.unsqueeze(-1)).sum(-1)  # each curve is a density on the grid
    assert ((mass - 1).abs() < 0.02).all()
    peaks = grid[0][density[:, 0].argmax(-1)]  # chain 0 near 0, chain 1 near 5
    assert abs(float(peaks[0])) < 0.6 and abs(float(peaks[1]) - 5) < 0.6


def test_stack_elements_caps_each_site_and_the_total():
    samples = {"a": torch.zeros(2, 10, 7), "b": torch.zeros(2, 10), "c": torch.zeros(2, 10, 3)}
    labels, stacked = stack_elements(samples, max_per_site=2, max_total=4)
    assert labels == [("a", "a[0]"), ("a", "a[1]"), ("b", "b"), ("c", "c[0]")]
    assert stacked.shape == (2, 10, 4)


def schools(y):
    mu = engine.sample("mu", dist.Normal(0.0, 5.0))
    tau = engine.sample("tau", dist.HalfNormal(5.0))
    with engine.plate("schools", len(y)):
        theta = engine.sample("theta", dist.Normal(mu, tau))
        engine.sample("y", dist.Normal(theta, 2.0), obs=y)
    engine.deterministic("mu_twice", 2 * mu)


def test_mcmc_plot_has_a_density_and_a_rank_panel_per_latent_element():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    engine.set_rng_seed(0)
    mcmc = MCMC(NUTS(schools), num_samples=60, warmup_steps=60, num_chains=3)
    mcmc.run(torch.tensor([3.0, -1.0, 8.0, 2.0, 0.0, 4.0]))
    figure = mcmc.plot(max_per_site=3)
    assert isinstance(figure, Figure)
    titles = [axes.get_title() for axes in figure.axes]
    shown = ["mu", "tau", "theta[0]", "theta[1]", "theta[2]"]  # no deterministic site
    assert titles == [
        f"{label}: {kind}" for label in shown for kind in ("density per chain", "rank plot")
    ]
    density_axes, rank_axes = figure.axes[0], figure.axes[1]
    assert len(density_axes.lines) == 3  # a curve per chain
    assert len(rank_axes.patches) == 3  # a histogram per chain (stairs)
    assert len(mcmc.plot(max_rows=2).axes) == 4


def test_mcmc_plot_before_a_run_says_to_run():
    mcmc = MCMC(NUTS(schools), num_samples=5)
    with pytest.raises(RuntimeError, match=r"mcmc\.run"):
        mcmc.plot()
