"""``%prior MODEL --explore name=low:high``: sliders over model arguments or notebook constants
redraw the prior predictive; the notebook's namespace is never left changed."""

import math

import ipywidgets
import pytest
import torch

import engine
from tests.cells import run_cell
from widgets.prior_explorer import PriorExplorer

# mu ~ Normal(mu0, TAU), y_i ~ Normal(mu, SIGMA): a replica's mean is Normal(mu0,
# sqrt(TAU^2 + SIGMA^2 / n)).
HEIGHTS = """\
%%model heights(y, mu0=170.0)
mu = ppl.sample("mu", dist.Normal(mu0, TAU))
with ppl.plate("data", len(y)):
    ppl.sample("h", dist.Normal(mu, SIGMA), obs=y)
"""


@pytest.fixture
def heights(shell):
    shell.user_ns.update(TAU=5.0, SIGMA=8.0, y=torch.tensor([160.0, 172.0, 181.0, 168.0]))
    run_cell(shell, HEIGHTS)
    return shell


def replica_mean(explorer):
    """The average replica mean, and 4 Monte Carlo errors of it (a replica's mean has sd
    sqrt(TAU^2 + SIGMA^2 / n) when TAU and SIGMA are the notebook's)."""
    replicas = explorer.check.draws.replicated["h"]
    tau, sigma = explorer.tau, explorer.sigma
    sd = math.sqrt(tau**2 + sigma**2 / replicas.shape[1])
    return replicas.mean().item(), 4 * sd / math.sqrt(replicas.shape[0])


def explore(shell, line):
    explorer = run_cell(shell, line)
    assert isinstance(explorer, PriorExplorer)
    explorer.tau, explorer.sigma = shell.user_ns["TAU"], shell.user_ns["SIGMA"]
    return explorer


def test_the_prior_predictive_mean_follows_an_argument_slider(heights):
    explorer = explore(heights, "%prior heights --explore mu0=100:250 --samples 2000")
    assert explorer.sliders["mu0"].value == 170.0  # the argument's default, in the range
    mean, error = replica_mean(explorer)
    assert abs(mean - 170.0) < error
    explorer.sliders["mu0"].value = 220.0
    mean, error = replica_mean(explorer)
    assert abs(mean - 220.0) < error
    assert "mu0 = 220" in explorer.check.summary()


def test_a_notebook_constant_is_rebound_only_while_drawing(heights):
    before = heights.user_ns["TAU"]
    explorer = explore(heights, "%prior heights --explore TAU=0.5:40 --samples 2000")
    assert explorer.sliders["TAU"].value == 5.0  # the constant's current value
    explorer.sliders["TAU"].value = 30.0
    assert heights.user_ns["TAU"] is before  # the notebook still holds its own value
    # The replicas' spread follows the slider: the sd of a replica's mean is
    # sqrt(30^2 + 8^2 / 4); a normal sample sd's Monte Carlo error is about sd / sqrt(2 (s - 1)).
    means = explorer.check.draws.replicated["h"].mean(dim=1)
    sd = math.sqrt(30.0**2 + 8.0**2 / 4)
    assert abs(means.std().item() - sd) < 4 * sd / math.sqrt(2 * (len(means) - 1))


def test_a_failing_redraw_restores_the_namespace_and_keeps_the_picture(heights):
    explorer = explore(heights, "%prior heights --explore SIGMA=-4:20 --samples 50")
    picture = bytes(explorer.image.value)
    explorer.sliders["SIGMA"].value = -2.0  # a negative scale: the model refuses it
    assert heights.user_ns["SIGMA"] == 8.0
    assert bytes(explorer.image.value) == picture
    assert "scale" in explorer.message.value
    assert len(engine.get_param_store().keys()) == 0


def test_the_slider_starts_at_the_midpoint_when_the_value_is_outside_or_unknown(heights):
    explorer = run_cell(heights, "%prior heights --explore mu0=0:10 --samples 20")
    assert explorer.sliders["mu0"].value == 5.0
    # A constant the notebook has not defined yet (the model waits for its data argument).
    run_cell(
        heights,
        '%%model unseen(data)\nwith ppl.plate("d", len(data)):\n'
        '    ppl.sample("h", dist.Normal(OFFSET, 1.0), obs=data)\n',
    )
    explorer = run_cell(heights, "%prior unseen --explore OFFSET=-2:4 --samples 20 --args data=y")
    assert explorer.sliders["OFFSET"].value == 1.0
    assert "OFFSET" not in heights.user_ns  # defined only while drawing


def test_a_whole_number_constant_gets_an_integer_slider(heights):
    heights.user_ns["SHIFT"] = 2
    run_cell(
        heights,
        '%%model shifted(y)\nwith ppl.plate("d", len(y)):\n'
        '    ppl.sample("h", dist.Normal(float(SHIFT), 1.0), obs=y)\n',
    )
    explorer = run_cell(heights, "%prior shifted --explore SHIFT=0:10 --samples 30")
    assert isinstance(explorer.sliders["SHIFT"], ipywidgets.IntSlider)
    explorer.sliders["SHIFT"].value = 7
    assert abs(explorer.check.draws.replicated["h"].mean().item() - 7.0) < 4 / math.sqrt(120)
    assert heights.user_ns["SHIFT"] == 2


def test_the_static_fallback_is_the_figure_at_the_initial_values(heights):
    explorer = run_cell(heights, "%prior heights --explore mu0=100:250 --samples 30")
    html = explorer._repr_mimebundle_()[0]["text/html"]
    assert "mu0 = 170" in html and "data:image/png;base64," in html


def error_of(shell, cell, capsys):
    namespace = {k: v for k, v in shell.user_ns.items() if not k.startswith("_")}
    result = shell.run_cell(cell)
    shown = capsys.readouterr()
    assert result.error_in_exec is not None
    assert {k: v for k, v in shell.user_ns.items() if not k.startswith("_")} == namespace
    assert len(engine.get_param_store().keys()) == 0
    text = shown.out + shown.err
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("%prior nope --explore mu0=0:1", "No model named 'nope'"),
        ("%prior heights", "needs the hyperparameters to explore"),
        (
            "%prior heights --explore mu=0:1",
            "--explore mu: 'heights' has no argument 'mu' and does not read a notebook constant",
        ),
        ("%prior heights --explore mu=0:1", "numeric constants it reads: SIGMA, TAU"),
        ("%prior heights --explore mu0=5:5", "the low end must be below the high end"),
        ("%prior heights --explore mu0=9:1", "write `mu0=1:9`"),
        ("%prior heights --explore mu0=a:b", "the range must be two finite numbers"),
        ("%prior heights --explore mu0", "takes name=low:high"),
        ("%prior heights --explore y=0:1", "'y' holds a tensor of shape (4,), not one number"),
        ("%prior heights --explore mu0=0:1 mu0=2:3", "mu0 is given twice"),
    ],
)
def test_mistakes_are_one_message_that_changes_nothing(heights, capsys, cell, expected):
    assert expected in error_of(heights, cell, capsys)
