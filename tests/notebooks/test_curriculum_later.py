"""Curriculum notebooks 09 (MCMC), 10 (discrete latents) and 11 (time series) run top to bottom,
their exercises' folded solutions included, under nbclient with the installed "Python 3
(pplkernel)" kernel, and what each one teaches holds: the eight-schools posterior against its
published reference within Monte Carlo error, enumeration against sums written by hand, the
forward algorithm and Viterbi against the engine's, a transition matrix learnt within its
standard errors.

Exercises follow one convention: a markdown cell whose folded
``<details><summary>Solution</summary>`` block holds the solution as fenced ```python code, one
notebook cell per fence. The tests run each solution as code cells inserted right after it.
How every numbered notebook is saved (kernelspec, no outputs, exercises, table rows) is checked
once, for all of them, by tests/notebooks/test_curriculum.py.
"""

import re

import nbformat
import pytest
from notebook_runs import execute, printed, widget_states

# A printed value: 4.3, -3515.5679, 4.2e-07, the "(40," and "50)" of a shape, True or False.
NUMBER = re.compile(r"\(?-?\d[\d.]*(?:e[-+]?\d+)?[,)]?|True|False")


def printed_lines(notebook: nbformat.NotebookNode) -> dict[str, list[str]]:
    """Every printed line, by the words before its first number: ``"mu mean 4.3 mcse 0.07"``
    becomes ``{"mu mean": ["4.3", "mcse", "0.07"]}``."""
    lines = {}
    for line in printed(notebook).splitlines():
        words = line.split()
        first_number = next(
            (i for i, word in enumerate(words) if re.fullmatch(NUMBER, word)),
            len(words),
        )
        lines[" ".join(words[:first_number])] = words[first_number:]
    return lines


def cell_outputs(notebook: nbformat.NotebookNode, source_start: str) -> list[dict]:
    cell = next(c for c in notebook.cells if c.source.startswith(source_start))
    return cell.outputs


@pytest.mark.slow
def test_mcmc_notebook_shows_the_funnel_and_recovers_the_reference_posterior():
    notebook = execute("09_mcmc.ipynb")
    lines = printed_lines(notebook)
    # The centred model diverges, the non-centred one far less.
    centred_divergences = int(lines["centred divergences"][0])
    assert centred_divergences > 0
    assert int(lines["non-centred divergences"][0]) < centred_divergences
    # The funnel's neck: the non-centred draws reach small tau that the centred ones never
    # enter (measured: 1% quantiles 0.04 and 0.70; the reference draws' is 0.04).
    assert (
        float(lines["non-centred tau 1% quantile"][0])
        < float(lines["centred tau 1% quantile"][0]) / 2
    )
    # Reference: posteriordb's eight_schools-eight_schools_noncentered mean_value, mu 4.4105
    # (mcse 0.0330, sd 3.31), tau 3.6021 (mcse 0.0319, sd 3.20). The notebook prints
    # z = (mean - reference) / sqrt(mcse^2 + reference mcse^2): a correct sampler gives a
    # standard normal z, and |z| < 4 fails once in 16,000 runs.
    for name, reference in (("mu", 4.4105), ("tau", 3.6021)):
        mean, _, mcse, _, printed_reference, _, z = lines[f"{name} mean"]
        assert float(printed_reference) == reference and abs(float(z)) < 4
        # 2000 draws with an ESS near 1,250 give a Monte Carlo error near 3.3 / 35 = 0.094;
        # 4 of those, plus the reference's own 0.03.
        assert abs(float(mean) - reference) < 0.41
        # tau's ESS can be half mu's (its draws are skewed): an error up to 3.2 / sqrt(600).
        assert 0 < float(mcse) < 0.15
    # ArviZ and the engine compute the MCSE the same way (printed to 3 decimals).
    ours = [float(lines[f"{name} mean"][2]) for name in ("mu", "tau")]
    arviz = [float(v) for v in lines["arviz mcse_mean"]]
    assert arviz == pytest.approx(ours, abs=0.0015)
    # Exercise 1: every school's posterior mean lies closer to mu than its estimate does.
    assert lines["all pulled towards mu"] == ["True"]
    # Exercise 2: non-centring multiplies tau's ESS per draw (measured: about 30 times).
    assert float(lines["ratio"][0]) > 5
    # Exercise 3: a probability and its Monte Carlo error.
    probability, _, mcse = lines["P(theta_A > theta_C)"]
    assert 0.5 < float(probability) < 1 and 0 < float(mcse) < 0.05
    states = widget_states(notebook)
    for title in ("MCMC schools_centred", "MCMC schools"):
        monitor = next(s for s in states if s.get("title") == title)
        assert monitor["status"] == "done" and len(monitor["chains"]) == 4
        # The marginals are saved with the notebook: every chain's density and rank counts of
        # all its draws, per latent element.
        elements = monitor["marginals"]["elements"]
        assert [e["label"] for e in elements][:2] == ["mu", "tau"]
        draws = monitor["marginals"]["draws"]
        assert all(sum(counts) == draws for e in elements for counts in e["ranks"])
        assert all(len(e["density"]) == 4 for e in elements)
    # The funnel, the trace and rank plots are pictures in the saved notebook, and so is %ppc.
    for start in ("import matplotlib", "az.plot_trace", "figure, axes", "%ppc schools"):
        outputs = cell_outputs(notebook, start)
        assert any("image/png" in output.get("data", {}) for output in outputs), start


@pytest.mark.slow
def test_discrete_latents_notebook_sums_out_assignments_in_svi_and_nuts():
    notebook = execute("10_discrete_latents.ipynb")
    lines = printed_lines(notebook)
    # 300 points with weights (0.5, 0.3, 0.2) and unit noise: a component mean's standard
    # error is 1 / sqrt(300 w); allow 4 of them around the true means.
    for fitted, true, weight in zip(lines["locs"], (-4.0, 0.0, 4.0), (0.5, 0.3, 0.2), strict=True):
        assert abs(float(fitted) - true) < 4 / (300 * weight) ** 0.5
    assert float(lines["agreement"][0]) > 0.9
    inspector = next(s for s in widget_states(notebook) if s.get("title") == "model gmm")
    enum_column = {row["site"]: row["enum"] for row in inspector["sites"]}
    assert enum_column["assignment"] == "*assignment@-2" and enum_column["x"] == "assignment@-2"
    # NUTS moved only the continuous sites; the assignments were summed out of its potential.
    assert "sampled sites locs scale weights\n" in printed(notebook)
    # Posterior means against the truth: their distance is about one posterior sd (the data's
    # own noise), the Monte Carlo error (sd / sqrt(ESS ~ 100+)) a tenth of that; allow 4 sd.
    means = [float(v) for v in lines["posterior locs"]]
    sds = [float(v) for v in lines["posterior sd"]]
    for mean, sd, true in zip(means, sds, (-4.0, 0.0, 4.0), strict=True):
        assert abs(mean - true) < 4 * sd
    # Both chains stayed on one labelling (label switching would give an R-hat near 2).
    assert all(float(v) < 1.05 for v in lines["locs r_hat"])
    assert lines["draws"] == ["(400,", "120)"]
    assert float(lines["mcmc agreement"][0]) > 0.9
    shares = [float(v) for v in lines["least certain point"][2:]]
    assert sum(shares) == pytest.approx(1, abs=0.015) and max(shares) < 0.9
    # Exercise 1: enumeration is the exact sum over components (float32 rounding on ~700).
    enumerated, _, _, by_hand = lines["enumerated"]
    assert float(enumerated) == pytest.approx(float(by_hand), rel=1e-5)
    # Exercise 2: the responsibilities' argmax is infer_discrete's MAP.
    assert lines["same as infer_discrete"] == ["True"]
    # Exercise 3: two chains on different labellings disagree, and R-hat says so.
    assert max(float(v) for v in lines["r_hat across labellings"]) > 1.5


@pytest.mark.slow
def test_time_series_notebook_checks_forward_viterbi_and_learns_the_transitions():
    notebook = execute("11_time_series.ipynb")
    lines = printed_lines(notebook)
    # Enumeration with markov against the hand-written forward algorithm: equal up to float32
    # rounding. Each of the 2,000 terms summed carries a relative error near the float32
    # epsilon 1.2e-7; as a random walk they add to about 1.2e-7 * sqrt(2000) = 5e-6, so 1e-5
    # (measured: 4e-7) fails only on a real difference (a missing term is ~1e-3 of the total).
    enumerated, _, forward = lines["enumerated"]
    assert float(enumerated) == pytest.approx(float(forward), rel=1e-5)
    assert float(lines["relative difference"][0]) < 1e-5
    # Viterbi by infer_discrete(temperature=0) and by hand: the same 40 x 50 states.
    assert lines["paths"] == ["(40,", "50)", "identical", "True"]
    # Readings four noise sds apart: about 2 % ambiguous on their own, fewer with neighbours.
    assert float(lines["true states recovered"][0]) > 0.97
    # The learnt matrix: each entry within 4 binomial standard errors sqrt(p (1 - p) / n_i) of
    # the truth (n_i transitions out of state i); hiding the states costs little information
    # at this separation, so it stays within 1 of the frequencies counted from the true states.
    fitted = [float(v) for v in lines["fitted"]]
    true = [float(v) for v in lines["true"]]
    counted = [float(v) for v in lines["counted"]]
    se = [float(v) for v in lines["se"]]
    assert true == [0.9, 0.1, 0.2, 0.8]
    for f, t, c, s in zip(fitted, true, counted, se, strict=True):
        assert abs(f - t) < 4 * s and abs(f - c) < s
    assert float(lines["largest error in standard errors"][0]) < 4
    run = next(s for s in widget_states(notebook) if s.get("title") == "SVI run 'hmm_fit'")
    assert run["steps"][-1] == 200
    # Exercise 1: the data strongly prefer the true matrix to a memoryless one.
    assert float(lines["log p(ys | true) - log p(ys | memoryless)"][0]) > 100
    # Exercise 2: the fitted matrix decodes (almost) the same path.
    changed, _, total = lines["decoded states changed"]
    assert int(total) == 2000 and int(changed) <= 20
    # Exercise 3: 400 posterior paths end busy as often as filtering says, within 4 binomial
    # standard errors (plus the 3-decimal rounding of the printout).
    exact, _, _, _, share, _, _, se = lines["filtered p(busy)"]
    assert abs(float(share) - float(exact)) <= 4 * float(se) + 0.002
    assert 0.05 < float(exact) < 0.95
