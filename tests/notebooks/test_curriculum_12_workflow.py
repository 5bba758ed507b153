"""Curriculum notebook 12 (a modelling workflow: adult heights against weights) runs top to
bottom, its exercises' folded solutions included, under nbclient with the installed "Python 3
(pplkernel)" kernel, and what it teaches holds: the share of impossible prior lines against its
exact value, the exact Gaussian posterior (recomputed here from the notebook's own seeded data)
against SVI, the Laplace approximation and NUTS, the 89 % interval's coverage against 0.89, and
the exercises' claims; the %prior and %ppc views saved their pictures.

How every numbered notebook is saved (kernelspec, no outputs, exercises, table rows) is checked
once, for all of them, by tests/notebooks/test_curriculum.py.
"""

import math

import pytest
import torch
from notebook_runs import execute, printed, widget_states
from test_curriculum import final_param, normal_cdf, numbers

import engine

PEOPLE = 150
REFERENCE, SIGMA, TALLEST = 170.0, 5.0, 272.0
PNG = "iVBORw0KGgo"  # how base64 of a PNG file starts (its 8-byte signature)


def notebook_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The notebook's data, drawn again with its seed and its calls, in its order."""
    engine.set_rng_seed(12)
    weight = 62.0 + 9.0 * torch.randn(PEOPLE)
    height = 168.0 + 0.85 * (weight - 62.0) + 5.0 * torch.randn(PEOPLE)
    return weight, height


def impossible_share(alpha_sd: float, beta_sd: float, ends: list[float], draws: int) -> float:
    """The share of prior lines leaving [0, TALLEST] at the ends of the weight range, by plain
    Monte Carlo (the notebook integrates the same probability on a grid)."""
    generator = torch.Generator().manual_seed(0)
    alpha = alpha_sd * torch.randn(draws, 1, generator=generator, dtype=torch.float64)
    beta = beta_sd * torch.randn(draws, 1, generator=generator, dtype=torch.float64)
    at_ends = REFERENCE + alpha + beta * torch.tensor(ends, dtype=torch.float64)
    return ((at_ends < 0) | (at_ends > TALLEST)).any(-1).double().mean().item()


@pytest.mark.slow
def test_workflow_notebook_checks_its_prior_fits_the_exact_posterior_and_covers_the_data():
    notebook = execute("12_workflow.ipynb")
    text = printed(notebook)
    weight, height = notebook_data()
    # The regenerated data are the notebook's (its printout has two decimals).
    assert numbers(text, "people") == [PEOPLE]
    assert numbers(text, "height")[-1] == pytest.approx(height.mean().item(), abs=0.006)
    x = ((weight - weight.mean()) / weight.std()).double()
    residual = (height - REFERENCE).double()

    # -- the prior predictive check --------------------------------------------------------
    ends = numbers(text, "standardised weight range")
    assert ends == pytest.approx([x.min().item(), x.max().item()], abs=1e-4)
    for label, alpha_sd, beta_sd in (("silly", 100.0, 50.0), ("sensible", 20.0, 10.0)):
        share, exact, se = numbers(text, f"{label} prior impossible lines")
        # The notebook's integral against 2,000,000 plain draws here: 4 binomial standard
        # errors of those, plus the printout's rounding (5e-5).
        draws = 2_000_000
        ours = impossible_share(alpha_sd, beta_sd, ends, draws)
        assert abs(exact - ours) < 4 * math.sqrt(ours * (1 - ours) / draws) + 5e-5
        # 4000 independent prior draws: the sampled share is binomial around the exact one.
        assert se == pytest.approx(math.sqrt(exact * (1 - exact) / 4000), abs=1e-4)
        assert abs(share - exact) < 4 * se + 5e-5
        if label == "silly":
            assert exact > 0.5  # most silly lines are impossible somewhere
        else:
            assert exact < 0.01

    # -- the exact posterior, from the closed form ------------------------------------------
    # Centred weight: the precision matrix is diagonal, so each coefficient has its own
    # precision (prior + data) and mean (data term / precision).
    alpha_precision = 1 / 20.0**2 + PEOPLE / SIGMA**2
    beta_precision = 1 / 10.0**2 + (x**2).sum().item() / SIGMA**2
    exact = {
        "alpha": (residual.sum().item() / SIGMA**2 / alpha_precision, alpha_precision**-0.5),
        "beta": ((x * residual).sum().item() / SIGMA**2 / beta_precision, beta_precision**-0.5),
    }
    for name, (mean, sd) in exact.items():
        assert numbers(text, f"exact {name} mean") == pytest.approx([mean, sd], abs=2e-4)
    # Raw weight (prior sds 100 and 10): the 2x2 precision's off-diagonal makes the ridge.
    raw = weight.double()
    p00, p01 = 1 / 100.0**2 + PEOPLE / SIGMA**2, raw.sum().item() / SIGMA**2
    p11 = 1 / 10.0**2 + (raw**2).sum().item() / SIGMA**2
    (raw_correlation,) = numbers(text, "posterior correlation raw weight")
    assert raw_correlation == pytest.approx(-p01 / math.sqrt(p00 * p11), abs=1e-3)
    assert raw_correlation < -0.95
    assert abs(numbers(text, "posterior correlation standardised weight")[0]) < 5e-4

    # -- three fits ---------------------------------------------------------------------------
    # SVI: the last iterate of 1500 one-draw Adam steps at lr 0.02. Over 12 seeds (100 to 111,
    # the notebook's %svi line) the fitted locs spread with sd 0.044 (alpha) and 0.021 (beta),
    # the scales with 0.038 and 0.032, their averages within their own standard errors of the
    # exact values. Four of the larger spreads: 0.18 for a mean, 0.15 for an sd.
    for name, (mean, sd) in exact.items():
        svi_mean, svi_sd = numbers(text, f"svi {name} mean")
        assert abs(svi_mean - mean) < 4 * 0.044 and abs(svi_sd - sd) < 4 * 0.038
    # The Laplace approximation: MAP by a deterministic loss (a point-mass guide draws
    # nothing) with the learning rate decayed to 0.5 * 0.98^300 = 0.001, so the mean is the
    # exact one up to that last step (measured: 1e-4); the Hessian of a Gaussian log density
    # is the same everywhere, so the sd is exact up to float32 and the 4-decimal printout.
    for name, (mean, sd) in exact.items():
        laplace_mean, laplace_sd = numbers(text, f"laplace {name} mean")
        assert abs(laplace_mean - mean) < 2e-3 and abs(laplace_sd - sd) < 2e-4
    # NUTS: the mean is off by about its MCSE = sd / sqrt(ESS), so z = error / MCSE is about
    # standard normal (|z| < 4 fails once in 16,000 runs); the sd's own error is about
    # sd / sqrt(2 ESS).
    for name, (mean, sd) in exact.items():
        mcmc_mean, mcmc_sd, ess, mcse, _ = numbers(text, f"mcmc {name} mean")
        assert ess > 100
        assert abs(mcmc_mean - mean) / mcse < 4 + 0.01  # (the 4-decimal rounding of mcse)
        assert abs(mcmc_sd - sd) < 4 * sd / math.sqrt(2 * ess)
        # SVI against NUTS directly: their independent errors add in quadrature.
        svi_mean, svi_sd = numbers(text, f"svi {name} mean")
        assert abs(svi_mean - mcmc_mean) < 4 * math.sqrt(0.044**2 + mcse**2)
        assert abs(svi_sd - mcmc_sd) < 4 * math.sqrt(0.038**2 + sd**2 / (2 * ess))

    # -- the posterior predictive coverage -------------------------------------------------
    # Under the right model each height falls inside its own 89 % interval with probability
    # 0.89, a little more in-sample: the line was fitted to the same people, leverage h = 2/150
    # on average, so a residual has sd SIGMA sqrt(1 - h) against a predictive sd of
    # SIGMA sqrt(1 + h): coverage 2 Phi(1.598 sqrt((1 + h)/(1 - h))) - 1 = 0.8946. The count
    # inside is binomial(150, ~0.89): 4 of its standard errors, plus that excess.
    h = 2 / PEOPLE
    in_sample = 2 * normal_cdf(1.5982 * math.sqrt((1 + h) / (1 - h))) - 1
    coverage, expected, se = numbers(text, "89% interval coverage")
    assert expected == 0.89 and se == pytest.approx(math.sqrt(0.89 * 0.11 / PEOPLE), abs=1e-4)
    assert abs(coverage - 0.89) < 4 * se + (in_sample - 0.89)

    # -- the exercises --------------------------------------------------------------------
    # 1: the quadratic term's exact posterior (the normal equations, solved here) and the
    # Laplace approximation (exact, as above); the data are linear, so gamma's posterior mean
    # in posterior sds is about standard normal.
    design = torch.stack([torch.ones(PEOPLE, dtype=torch.float64), x, x**2], 1)
    precision = torch.diag(torch.tensor([20.0, 10.0, 5.0]).double() ** -2) + design.T @ design / 25
    quad_mean = torch.linalg.solve(precision, design.T @ residual / 25)
    quad_covariance = torch.linalg.inv(precision)
    gamma_mean, gamma_sd = numbers(text, "ex1 gamma exact mean")
    assert gamma_mean == pytest.approx(quad_mean[2].item(), abs=2e-4)
    assert gamma_sd == pytest.approx(quad_covariance[2, 2].sqrt().item(), abs=2e-4)
    laplace_gamma, laplace_gamma_sd = numbers(text, "ex1 gamma laplace mean")
    assert abs(laplace_gamma - gamma_mean) < 2e-3 and abs(laplace_gamma_sd - gamma_sd) < 2e-4
    assert abs(numbers(text, "ex1 gamma z")[0]) < 4
    exact_corr, laplace_corr = numbers(text, "ex1 alpha gamma correlation exact")
    closed_corr = quad_covariance[0, 2] / (quad_covariance[0, 0] * quad_covariance[2, 2]).sqrt()
    assert exact_corr == pytest.approx(closed_corr.item(), abs=1e-3) and exact_corr < -0.3
    assert laplace_corr == pytest.approx(exact_corr, abs=2e-3)
    # 2: a log-normal slope never falls; a Normal(0, 10) one does half the time (4000 draws:
    # binomial standard error sqrt(0.25 / 4000) = 0.0079).
    falling_up, falling_normal = numbers(text, "ex2 falling prior lines log-normal")
    assert falling_up == 0 and abs(falling_normal - 0.5) < 4 * 0.0079
    # The grid posterior of beta against the Normal prior's exact one. Changing the log prior
    # by g moves a Gaussian likelihood's posterior mean by s^2 g'(m) to first order (s, m the
    # exact sd and mean); the next term, s^4 g' g'', is below 1e-4 here, and the grid's step
    # is 0.001. So 0.01 (a fifth of the shift itself) fails only on a wrong grid.
    grid_mean, grid_sd = numbers(text, "ex2 beta grid mean")
    m, s = exact["beta"]
    lognormal_slope = -1 / m - (math.log(m) - math.log(5.0)) / (0.5**2 * m)
    normal_slope = -m / 10.0**2
    shift = s**2 * (lognormal_slope - normal_slope)
    assert abs((grid_mean - m) - shift) < 0.01
    assert abs(grid_sd - s) < 0.01
    # 3: a scatter believed to be 2 cm: the intervals hold a height with probability about
    # 2 Phi(1.5982 * 2 sqrt(1 + h) / (5 sqrt(1 - h))) - 1 = 0.48; 4 binomial standard errors.
    coverage_2cm, in_ses = numbers(text, "ex3 coverage")
    expected_2cm = 2 * normal_cdf(1.5982 * 2 * math.sqrt((1 + h) / (1 - h)) / 5) - 1
    assert abs(coverage_2cm - expected_2cm) < 4 * math.sqrt(expected_2cm * (1 - expected_2cm) / 150)
    assert in_ses < -8

    # -- the views saved their state --------------------------------------------------------
    states = widget_states(notebook)
    monitor = next(s for s in states if s.get("title") == "SVI run 'fit'")
    assert monitor["status"] == "idle" and monitor["steps"][-1] == 1500
    svi_alpha, _ = numbers(text, "svi alpha mean")
    assert final_param(monitor, "AutoNormal.locs.alpha") == pytest.approx(svi_alpha, abs=1e-3)
    mcmc = next(s for s in states if s.get("title") == "MCMC heights")
    assert mcmc["status"] == "done" and len(mcmc["chains"]) == 2
    # %prior: the sliders at their starting values, and the picture (an Image widget's PNG,
    # saved as a binary buffer) with its summary at those values.
    saved = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    sliders = {
        model["state"]["description"]: model["state"]
        for model in saved.values()
        if model["model_name"] == "FloatSliderModel"
    }
    assert {name: (s["min"], s["max"], s["value"]) for name, s in sliders.items()} == {
        "alpha_sd": (1.0, 100.0, 20.0),
        "beta_sd": (0.5, 50.0, 10.0),
    }
    (image,) = [model for model in saved.values() if model["model_name"] == "ImageModel"]
    assert [buffer["path"] for buffer in image["buffers"]] == [["value"]]
    assert image["buffers"][0]["data"].startswith(PNG)
    messages = [m["state"]["value"] for m in saved.values() if m["model_name"] == "HTMLModel"]
    assert any(
        message.startswith("<pre>prior predictive check of &#x27;heights&#x27; at ")
        and "alpha_sd = 20, beta_sd = 10" in message
        for message in messages
    )
    # Both cells keep a static picture for a reader without a kernel.
    for start, source in (("%prior heights", None), ("ppl.set_rng_seed(5)", "SVI run 'fit'")):
        cell = next(c for c in notebook.cells if c.source.startswith(start))
        (output,) = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert "data:image/png;base64," in output["data"]["text/html"]
        if source is not None:  # %ppc: a PNG of its own, and where its replicas came from
            assert output["data"]["image/png"].startswith(PNG)
            assert f"from {source} (1500 steps): 1000 replicas" in output["data"]["text/plain"]
