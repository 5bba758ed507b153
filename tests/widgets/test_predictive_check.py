"""Replicated data (widgets/predictive_draws.py) and its picture (widgets/predictive_check.py):
the replicas follow the closed-form predictive, and each kind of data gets its layout."""

import base64
import math

import pytest
import torch
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle

import engine
import engine.distributions as dist
from widgets.predictive_check import PredictiveCheck, p_value
from widgets.predictive_draws import choose_covariate, data_sites, replicate

MU0, TAU, SIGMA = 1.5, 2.0, 0.5


def normal_model(y, mu0=MU0):
    mu = engine.sample("mu", dist.Normal(mu0, TAU))
    with engine.plate("data", len(y)):
        engine.sample("y", dist.Normal(mu, SIGMA), obs=y)


def poisson_model(k):
    rate = engine.sample("rate", dist.Gamma(4.0, 2.0))
    with engine.plate("data", len(k)):
        engine.sample("k", dist.Poisson(rate), obs=k)


def regression(x, y):
    a = engine.sample("a", dist.Normal(0.0, 1.0))
    b = engine.sample("b", dist.Normal(0.0, 1.0))
    with engine.plate("data", len(x)):
        engine.sample("y", dist.Normal(a + b * x, 0.3), obs=y)


DATA = torch.tensor([1.2, 0.4, 2.1, 1.7, 0.9])


def test_prior_predictive_of_a_conjugate_model_matches_the_closed_form():
    draws = replicate(normal_model, (), {"y": DATA}, num_samples=4000)
    assert draws.prior and torch.equal(draws.observed["y"], DATA)
    replicas = draws.replicated["y"]
    assert replicas.shape == (4000, 5)
    # Closed form: y_i ~ Normal(mu0, sqrt(tau^2 + sigma^2)); the replicas of one draw share mu,
    # so their mean ~ Normal(mu0, sqrt(tau^2 + sigma^2 / n)).
    sd_one = math.sqrt(TAU**2 + SIGMA**2)
    sd_mean = math.sqrt(TAU**2 + SIGMA**2 / 5)
    s = replicas.shape[0]
    # Monte Carlo error of a mean of s draws is sd / sqrt(s), of a normal sd about
    # sd / sqrt(2 (s - 1)); 4 of them.
    assert abs(replicas[:, 0].mean().item() - MU0) < 4 * sd_one / math.sqrt(s)
    assert abs(replicas[:, 0].std().item() - sd_one) < 4 * sd_one / math.sqrt(2 * (s - 1))
    per_draw = replicas.mean(dim=1)
    assert abs(per_draw.std().item() - sd_mean) < 4 * sd_mean / math.sqrt(2 * (s - 1))


def test_posterior_samples_condition_the_replicas():
    # Every posterior draw says mu = 3: the replicas are Normal(3, sigma) around it.
    samples = {"mu": torch.full((3000,), 3.0)}
    draws = replicate(normal_model, (), {"y": DATA}, 3000, posterior_samples=samples)
    assert not draws.prior
    values = draws.replicated["y"].flatten()
    assert abs(values.mean().item() - 3.0) < 4 * SIGMA / math.sqrt(values.numel())


def test_posterior_samples_are_thinned_to_the_number_asked_for():
    samples = {"mu": torch.arange(1000.0)}
    draws = replicate(normal_model, (), {"y": DATA}, 10, posterior_samples=samples)
    assert draws.num_samples == 10


def test_the_data_sites_are_the_observed_ones_else_those_in_a_plate():
    assert list(data_sites(normal_model, (), {"y": DATA})) == ["y"]

    def unobserved(n):
        engine.sample("scale", dist.HalfNormal(1.0))
        with engine.plate("data", n):
            engine.sample("z", dist.Normal(0.0, 1.0))

    assert list(data_sites(unobserved, (), {"n": 3})) == ["z"]

    def nothing():
        engine.sample("scale", dist.HalfNormal(1.0))

    with pytest.raises(ValueError, match="'nothing' observes no site"):
        data_sites(nothing, (), {})


def test_continuous_data_is_drawn_as_density_lines():
    draws = replicate(normal_model, (), {"y": DATA}, num_samples=80)
    check = PredictiveCheck(draws, title="normal", max_lines=30)
    assert check.layout == {"y": "density"}
    (ax,) = check.figure().axes
    widths = [line.get_linewidth() for line in ax.get_lines()]
    assert widths.count(2.5) == 1  # the data: one thick line
    assert len(widths) == 31  # and 30 thin replicas
    assert ax.get_legend_handles_labels()[1] == ["replicated", "observed"]


def test_discrete_data_is_drawn_as_bars():
    counts = torch.tensor([0.0, 2.0, 1.0, 3.0, 2.0, 2.0, 5.0])
    draws = replicate(poisson_model, (), {"k": counts}, num_samples=300)
    assert draws.discrete == {"k": True}
    check = PredictiveCheck(draws)
    assert check.layout == {"k": "bars"}
    (ax,) = check.figure().axes
    bars = [patch for patch in ax.patches if isinstance(patch, Rectangle)]
    top = int(max(draws.replicated["k"].max().item(), 5))
    assert len(bars) == top + 1  # one bar per value from 0 to the largest seen
    heights = {round(bar.get_x() + bar.get_width() / 2): bar.get_height() for bar in bars}
    assert heights[2] == 3 and heights[5] == 1 and heights[4] == 0
    assert "replicated (median, 90%)" in ax.get_legend_handles_labels()[1]


def test_a_regression_is_drawn_as_intervals_against_its_covariate():
    x = torch.linspace(-1.0, 1.0, 12)
    y = 0.5 + 2.0 * x
    draws = replicate(regression, (), {"x": x, "y": y}, num_samples=400)
    draws.covariate = choose_covariate(draws.arguments, draws)
    assert draws.covariate[0] == "x"
    check = PredictiveCheck(draws)
    assert check.layout == {"y": "intervals"}
    (ax,) = check.figure().axes
    intervals = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert [c.get_label() for c in intervals] == ["replicated 90%", "replicated 50%"]
    assert all(len(c.get_segments()) == 12 for c in intervals)
    # The 90% interval at each x holds the 50% one.
    wide, narrow = (c.get_segments() for c in intervals)
    assert all(w[0][1] <= n[0][1] and w[1][1] >= n[1][1] for w, n in zip(wide, narrow, strict=True))
    assert ax.get_xlabel() == "x"


def test_the_covariate_rule():
    x = torch.linspace(0.0, 1.0, 5)
    groups = torch.arange(5)
    draws = replicate(regression, (), {"x": x, "y": DATA}, num_samples=5)
    # The data itself is no covariate; integers only when named; a wrong length never.
    assert choose_covariate({"y": DATA, "x": x}, draws)[0] == "x"
    assert choose_covariate({"y": DATA, "g": groups}, draws) is None
    assert choose_covariate({"g": groups}, draws, "g")[0] == "g"
    assert choose_covariate({"x": x}, draws, "none") is None
    with pytest.raises(ValueError, match="one value per observation"):
        choose_covariate({"w": torch.zeros(3)}, draws, "w")
    with pytest.raises(ValueError, match="no argument 'z'"):
        choose_covariate({"x": x}, draws, "z")


def test_a_site_with_one_value_is_a_histogram_with_the_datum():
    def one(value):
        loc = engine.sample("loc", dist.Normal(0.0, 1.0))
        engine.sample("value", dist.Normal(loc, 1.0), obs=value)

    check = PredictiveCheck(replicate(one, (), {"value": torch.tensor(0.3)}, num_samples=50))
    assert check.layout == {"value": "histogram"}
    (ax,) = check.figure().axes
    assert sorted(ax.get_legend_handles_labels()[1]) == ["observed", "replicated"]
    assert ax.get_lines()[0].get_xdata()[0] == pytest.approx(0.3)


def test_p_values_and_the_summary():
    assert p_value(torch.tensor([0.0, 1.0, 2.0, 3.0]), 2.5) == 0.25
    draws = replicate(normal_model, (), {"y": DATA + 40.0}, num_samples=200)
    check = PredictiveCheck(draws, title="far")
    row = check.statistics["y"]["mean"]
    assert row["p"] == 0.0 and row["observed"] == pytest.approx((DATA + 40).mean().item())
    assert "the model misses this" in check.summary()
    assert check.summary().startswith("prior predictive check of far: 200 replicas")


def test_the_static_view_is_a_png_with_the_summary_escaped():
    check = PredictiveCheck(replicate(normal_model, (), {"y": DATA}, 20), title="<b>x</b>")
    bundle, _ = check._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "data:image/png;base64," in bundle["text/html"]
    assert "<b>x</b>" not in bundle["text/html"] and "&lt;b&gt;x&lt;/b&gt;" in bundle["text/html"]
    assert bundle["text/plain"] == check.summary()
