"""``%ppc``: replicated data against the observed data, from the prior, an SVI run or an MCMC
run; its mistakes are one short message that changes nothing."""

import math

import pytest
import torch

import engine
from tests.cells import run_cell
from widgets.predictive_check import PredictiveCheck

LEVEL = """\
%%model level(y, mu0=0.0)
mu = ppl.sample("mu", dist.Normal(mu0, 10.0))
with ppl.plate("data", len(y)):
    ppl.sample("obs", dist.Normal(mu, 0.5), obs=y)
"""
PRIOR_SD, NOISE_SD = 10.0, 0.5

COUNTS = """\
%%model counts(k)
rate = ppl.sample("rate", dist.Gamma(4.0, 2.0))
with ppl.plate("data", len(k)):
    ppl.sample("k", dist.Poisson(rate), obs=k)
"""

LINE = """\
%%model line(x, y)
a = ppl.sample("a", dist.Normal(0.0, 1.0))
b = ppl.sample("b", dist.Normal(0.0, 1.0))
with ppl.plate("data", len(x)):
    ppl.sample("y", dist.Normal(a + b * x, 0.3), obs=y)
"""


@pytest.fixture
def level(shell):
    generator = torch.Generator().manual_seed(1)
    shell.user_ns["y"] = 3.0 + NOISE_SD * torch.randn(20, generator=generator)
    run_cell(shell, LEVEL)
    return shell


def test_without_a_run_it_is_the_prior_predictive_of_the_closed_form(level):
    check = run_cell(level, "%ppc level --samples 4000")
    assert isinstance(check, PredictiveCheck) and check.draws.prior
    assert check.summary().startswith("prior predictive check of 'level'")
    replicas = check.draws.replicated["obs"]
    assert replicas.shape == (4000, 20)
    # Closed form: each y_i ~ Normal(mu0 = 0, sqrt(10^2 + 0.5^2)). Monte Carlo error of the
    # mean of s draws: sd / sqrt(s); of a normal sample's sd: about sd / sqrt(2 (s - 1)).
    sd = math.sqrt(PRIOR_SD**2 + NOISE_SD**2)
    s = replicas.shape[0]
    assert abs(replicas[:, 0].mean().item()) < 4 * sd / math.sqrt(s)
    assert abs(replicas[:, 0].std().item() - sd) < 4 * sd / math.sqrt(2 * (s - 1))


def test_after_svi_the_posterior_predictive_is_centred_on_the_data(level):
    svi_run = run_cell(level, "%svi level --steps 1500 --lr 0.05")
    params = {name: value.detach().clone() for name, value in svi_run.params.items()}
    steps = svi_run.step_count
    check = run_cell(level, "%ppc level --samples 2000")
    assert check.draws.source == "SVI run 'level' (1500 steps)"
    y = level.user_ns["y"]
    loc = svi_run.params["AutoNormal.locs.mu"].item()
    scale = svi_run.params["AutoNormal.scales.mu"].item()
    # Given the guide q(mu) = Normal(loc, scale), a replica's mean is Normal(loc,
    # sqrt(scale^2 + sigma^2 / n)) exactly: its average over s replicas is within 4 of those
    # sds / sqrt(s) of loc, and their sd within 4 of sd / sqrt(2 (s - 1)) of it.
    means = check.draws.replicated["obs"].mean(dim=1)
    sd = math.sqrt(scale**2 + NOISE_SD**2 / len(y))
    s = len(means)
    assert abs(means.mean().item() - loc) < 4 * sd / math.sqrt(s)
    assert abs(means.std().item() - sd) < 4 * sd / math.sqrt(2 * (s - 1))
    # The guide sits on the exact posterior (conjugate: precision 1/10^2 + n/0.5^2): SVI at
    # lr 0.05 wanders about 0.5 posterior sd around it (measured over seeds), so 1.5 sd.
    precision = PRIOR_SD**-2 + len(y) / NOISE_SD**2
    assert abs(loc - (y.sum().item() / NOISE_SD**2) / precision) < 1.5 * precision**-0.5
    # Centred on the data: the p-value of the mean is far from 0 and 1 (the loc is within 1.5
    # posterior sd of the data's mean, which is about 1.1 sds of a replica's mean).
    assert 0.1 < check.statistics["obs"]["mean"]["p"] < 0.9
    # Only a look: the run is as it was.
    assert svi_run.step_count == steps
    assert all(torch.equal(params[name], svi_run.params[name]) for name in params)
    assert len(engine.get_param_store().keys()) == 0


def test_run_flag_picks_a_named_run_and_mcmc_runs_count(level):
    run_cell(level, "%svi level --steps 5 --name quick")
    run_cell(level, "%svi level --steps 7 --name other")
    assert run_cell(level, "%ppc level --run quick --samples 10").draws.source.startswith(
        "SVI run 'quick' (5 steps)"
    )
    assert "'other'" in run_cell(level, "%ppc level --samples 10").draws.source  # the latest
    mcmc = run_cell(level, "%mcmc level --samples 60 --warmup 60 --chains 2")
    mcmc.wait()
    check = run_cell(level, "%ppc level --run mcmc --samples 50")
    assert check.draws.source == "MCMC (2 chains)" and check.draws.num_samples == 50
    # Centred on the data: a replica's mean is Normal(about mean(y), sqrt(2) * 0.5 / sqrt(20)
    # = 0.16) (posterior sd and noise alike); averaged over draws whose effective number may
    # be as low as 5 after a short warm-up, 4 Monte Carlo errors are 4 * 0.16 / sqrt(5) < 0.3.
    y = level.user_ns["y"]
    assert abs(check.draws.replicated["obs"].mean().item() - y.mean().item()) < 0.3


def test_an_mcmc_run_is_used_when_the_model_has_no_svi_run(level):
    mcmc = run_cell(level, "%mcmc level --samples 40 --warmup 40 --chains 1")
    mcmc.wait()
    assert run_cell(level, "%ppc level --samples 40").draws.source == "MCMC (1 chains)"


def test_discrete_data_gets_bars(shell):
    shell.user_ns["k"] = torch.tensor([0.0, 2.0, 1.0, 3.0, 2.0, 2.0])
    run_cell(shell, COUNTS)
    check = run_cell(shell, "%ppc counts --samples 100")
    assert check.layout == {"k": "bars"}
    assert "k (bars)" in check.summary()


def test_a_covariate_argument_gets_intervals_and_x_picks_or_drops_it(shell):
    shell.user_ns["x"] = torch.linspace(-1.0, 1.0, 9)
    shell.user_ns["y"] = 0.2 + 1.5 * shell.user_ns["x"]
    run_cell(shell, LINE)
    check = run_cell(shell, "%ppc line --samples 100")
    assert check.layout == {"y": "intervals"} and check.draws.covariate[0] == "x"
    assert "against x" in check.summary()
    assert run_cell(shell, "%ppc line --samples 20 --x none").layout == {"y": "density"}
    assert run_cell(shell, "%ppc line --samples 20 --x x").layout == {"y": "intervals"}


def test_args_give_the_run_new_data(level):
    run_cell(level, "%svi level --steps 5")
    check = run_cell(level, "%ppc level --samples 10 --args y=y[:4]")
    assert check.draws.replicated["obs"].shape == (10, 4)


def error_of(shell, cell, capsys):
    """Run a failing cell; return what it showed, after checking it changed nothing."""
    namespace = dict(shell.user_ns)
    store = dict(engine.get_param_store().items())
    runs = dict(shell.magics_manager.registry["PPLMagics"].session.runs)
    result = shell.run_cell(cell)
    shown = capsys.readouterr()
    assert result.error_in_exec is not None
    session = shell.magics_manager.registry["PPLMagics"].session
    assert session.runs == runs and dict(engine.get_param_store().items()) == store
    assert {k: v for k, v in shell.user_ns.items() if not k.startswith("_")} == {
        k: v for k, v in namespace.items() if not k.startswith("_")
    }
    text = shown.out + shown.err
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("%ppc nope", "No model named 'nope' (defined models: level)"),
        ("%ppc lvel", "Did you mean 'level'?"),
        ("%ppc level --run fast", "No run named 'fast' of model 'level' (SVI runs of 'level': s"),
        ("%ppc level --run mcmc", "No run named 'mcmc'"),
        ("%ppc level --samples 0", "--samples must be a positive integer"),
        ("%ppc level --x weight", "--x weight: the model has no argument 'weight'"),
        ("%ppc level --args z=1", "'level' has no such argument"),
    ],
)
def test_mistakes_are_one_message_that_changes_nothing(level, capsys, cell, expected):
    svi_run = run_cell(level, "%svi level --steps 3 --name s")
    params = {name: value.detach().clone() for name, value in svi_run.params.items()}
    shown = error_of(level, cell, capsys)
    assert expected in shown
    assert all(torch.equal(params[name], svi_run.params[name]) for name in params)


def test_a_run_of_another_model_is_refused(level, capsys):
    level.user_ns["k"] = torch.tensor([1.0, 2.0])
    run_cell(level, COUNTS)
    run_cell(level, "%svi counts --steps 2 --name c")
    shown = error_of(level, "%ppc level --run c", capsys)
    assert "SVI run 'c' is a run of model 'counts', not 'level'" in shown


def test_a_model_without_data_says_how_to_give_it(shell, capsys):
    run_cell(shell, '%%model lonely()\nppl.sample("s", dist.HalfNormal(1.0))\n')
    shown = error_of(shell, "%ppc lonely", capsys)
    assert "'lonely' observes no site" in shown and "--args" in shown


def test_an_mcmc_run_still_sampling_is_refused_until_it_ends(level, capsys):
    mcmc = run_cell(level, "%mcmc level --samples 20000 --warmup 20000 --chains 1")
    try:
        shown = error_of(level, "%ppc level", capsys)
        assert "The MCMC run of 'level' is still sampling" in shown
    finally:
        with pytest.warns(RuntimeWarning, match="interrupted"):  # the draws so far are kept
            mcmc.request_stop()
            mcmc.wait()


def test_a_stale_run_is_checked_with_a_note(level, capsys):
    run_cell(level, "%svi level --steps 3")
    run_cell(level, LEVEL.replace("10.0", "20.0"))
    capsys.readouterr()
    check = run_cell(level, "%ppc level --samples 10")
    assert "Note: model 'level' was redefined" in capsys.readouterr().out
    assert check.draws.source.startswith("SVI run 'level'")
