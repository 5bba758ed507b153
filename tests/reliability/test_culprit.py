"""Errors that name the culprit, and non-finite values found where they first appear.

Each case makes one mistake as a user would (in engine code, or in notebook cells through the
magics) and checks four things: the exception type; that the message names the culprit site
(and, for a cell, its line); that the attached shape table goes up to and includes that site;
and that nothing changed (param store values ``torch.equal`` to before, the run's step count).
The line a message names is found by a ``# culprit:`` marker in this file, never hard-coded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.distributions import constraints
from engine.errors import (
    DistributionArgumentError,
    MCMCError,
    ModelGuideMismatchError,
    NonFiniteError,
    PPLError,
)
from engine.infer import MCMC, NUTS, SVI, Trace_ELBO, TraceEnum_ELBO
from engine.optim import Adam
from pplkernel.session import MagicError
from tests.cells import COIN, run_cell

_SOURCE = Path(__file__).read_text().splitlines()


def line_of(marker: str) -> int:
    """The line of this file that carries ``# culprit: <marker>``."""
    tag = f"# culprit: {marker}"
    found = [number for number, text in enumerate(_SOURCE, 1) if text.rstrip().endswith(tag)]
    assert len(found) == 1, f"marker {marker!r} found {len(found)} times"
    return found[0]


def at_line(marker: str) -> str:
    return f"line {line_of(marker)} of {__file__}"


def table_rows(error: PPLError) -> list[str]:
    """The site names of the attached table, in order."""
    table = error.site_table
    assert table, "no site table attached"
    names = []
    for text in table.splitlines():
        match = re.match(r"^ (\S+)\s+(sample|observed|param|determ\.|subsample)\b", text)
        if match:
            names.append(match.group(1))
    return names


def store_snapshot() -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in pyro.get_param_store().items()}


def assert_store_unchanged(before: dict[str, torch.Tensor]) -> None:
    after = dict(pyro.get_param_store().items())
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(after[name].detach(), value), name


# -- the models ------------------------------------------------------------------------------

FLIPS = torch.tensor([1.0, 0.0, 1.0, 1.0])
TWO = torch.tensor(2.0)


def log_of_negative(x=TWO):
    pyro.sample("a", dist.Normal(0.0, 1.0))
    loc = torch.log(x - 5)
    pyro.sample("y", dist.Normal(loc, 1.0), obs=torch.tensor(0.0))  # culprit: nan-loc


def negative_scale():
    pyro.sample("a", dist.Normal(0.0, 1.0))
    pyro.sample("y", dist.Normal(0.0, -1.0), obs=torch.tensor(0.0))  # culprit: neg-scale


def probs_above_one_in_plate(flips=FLIPS):
    p = pyro.sample("p", dist.Beta(2.0, 2.0))
    with pyro.plate("flips", len(flips)):
        pyro.sample("obs", dist.Bernoulli(p + 1.5), obs=flips)  # culprit: probs-plate


def built_on_an_earlier_line():
    pyro.sample("a", dist.Normal(0.0, 1.0))
    d = dist.Normal(0.0, -2.0)  # culprit: assigned
    pyro.sample("y", d, obs=torch.tensor(0.0))


def named_by_fstring_in_a_loop():
    scales = torch.tensor([1.0, 2.0, -3.0])
    for i in range(3):
        pyro.sample(f"x_{i}", dist.Normal(0.0, scales[i]))  # culprit: fstring


def _normal_with(scale):
    return dist.Normal(0.0, scale)  # culprit: helper


def built_in_a_helper():
    pyro.sample("z", _normal_with(torch.tensor(-1.0)))


def nested_constructor():
    pyro.sample("a", dist.Normal(0.0, 1.0))
    pyro.sample("w", dist.LogNormal(0.0, -1.0))  # culprit: lognormal


def event_dims():
    pyro.sample("v", dist.Normal(torch.zeros(3), -torch.ones(3)).to_event(1))  # culprit: to-event


def site_name_by_keyword():
    pyro.sample(name="k", fn=dist.Gamma(-1.0, 1.0))  # culprit: keyword


def name_from_a_variable():
    site = "rate"
    pyro.sample(site, dist.Exponential(torch.tensor(-2.0)))  # culprit: variable


TRACED = {
    "nan-loc": (log_of_negative, "y", "parameter 'loc'", ["a", "y"]),
    "neg-scale": (negative_scale, "y", "parameter 'scale'", ["a", "y"]),
    "probs-plate": (probs_above_one_in_plate, "obs", "plate 'flips'", ["p", "obs"]),
    "assigned": (built_on_an_earlier_line, "y", "parameter 'scale'", ["a", "y"]),
    "fstring": (named_by_fstring_in_a_loop, "x_2", "parameter 'scale'", ["x_0", "x_1", "x_2"]),
    "helper": (built_in_a_helper, "z", "parameter 'scale'", ["z"]),
    "lognormal": (nested_constructor, "w", "parameter 'scale'", ["a", "w"]),
    "to-event": (event_dims, "v", "parameter 'scale'", ["v"]),
    "keyword": (site_name_by_keyword, "k", "parameter 'concentration'", ["k"]),
    "variable": (name_from_a_variable, "rate", "parameter 'rate'", ["rate"]),
}


@pytest.mark.parametrize("marker", list(TRACED))
def test_an_invalid_distribution_argument_names_its_site_line_and_row(marker):
    model, site, detail, rows = TRACED[marker]
    pyro.param("untouched", torch.tensor([1.0, 2.0]))
    before = store_snapshot()
    with pytest.raises(DistributionArgumentError) as info:
        pyro.poutine.trace(model).get_trace()
    message = str(info.value)
    assert message.startswith(f"Site '{site}' (")
    assert detail in message
    assert at_line(marker) in message
    assert table_rows(info.value) == rows  # up to and including the culprit, nothing after
    assert_store_unchanged(before)


def test_the_culprit_row_shows_the_distribution_the_user_wrote():
    with pytest.raises(DistributionArgumentError) as info:
        pyro.poutine.trace(nested_constructor).get_trace()
    last = info.value.site_table.splitlines()[-1].split()
    assert last[:3] == ["w", "sample", "LogNormal"]


# -- SVI: argument errors, non-finite values -------------------------------------------------


def normal_guide():
    loc = pyro.param("a_loc", torch.tensor(0.5))
    pyro.sample("a", dist.Normal(loc, 1.0))


def bad_scale_guide():
    loc = pyro.param("a_loc", torch.tensor(0.5))
    scale = pyro.param("a_scale", torch.tensor(2.0))
    pyro.sample("a", dist.Normal(loc, scale - 3.0))  # culprit: guide-scale


def nan_guide():
    loc = pyro.param("a_loc", torch.tensor(0.5))
    pyro.sample("a", dist.Normal(torch.sqrt(loc - 1.0), 1.0))  # culprit: guide-nan


def obs_with_nan():
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    with pyro.plate("data", 3):
        data = torch.tensor([0.0, float("nan"), 1.0])
        pyro.sample("y", dist.Normal(a, 1.0), obs=data)  # culprit: nan-obs


def obs_with_inf():
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    pyro.sample("y", dist.Normal(a, 1.0), obs=torch.tensor(float("inf")))  # culprit: inf-obs


def infinite_loc():
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    loc = a + float("inf")
    pyro.sample("y", dist.Normal(loc, 1.0), obs=torch.tensor(0.0))  # culprit: inf-loc


def impossible_observation():
    pyro.sample("a", dist.Normal(0.0, 1.0))
    pyro.sample("u", dist.Uniform(0.0, 1.0), obs=torch.tensor(1.5))  # culprit: zero-density


def masked_categories_then_nan():
    pyro.sample("a", dist.Normal(0.0, 1.0))
    logits = torch.tensor([0.0, float("-inf")])  # ruling a category out is fine
    pyro.sample("c", dist.Categorical(logits=logits), obs=torch.tensor(0))
    loc = torch.log(torch.tensor(-1.0))
    pyro.sample("y", dist.Normal(loc, 1.0), obs=torch.tensor(0.0))  # culprit: after-mask


def _svi(model, guide, **kwargs):
    return SVI(model, guide, Adam({"lr": 0.1}), kwargs.pop("loss", Trace_ELBO()), **kwargs)


def normal_model():
    pyro.sample("a", dist.Normal(0.0, 1.0))


@dataclass
class SviCase:
    model: object
    guide: object
    error: type
    says: list[str]
    rows: list[str]
    validate: bool = True
    marker: str | None = None
    loss: object = field(default_factory=Trace_ELBO)


SVI_CASES = {
    "model-nan-arg-checked": SviCase(
        log_of_negative, normal_guide, DistributionArgumentError,
        ["Site 'y' (no plate)", "parameter 'loc'", "Raised in the model"], ["a", "y"],
        marker="nan-loc",
    ),
    "guide-bad-scale-checked": SviCase(
        normal_model, bad_scale_guide, DistributionArgumentError,
        ["Site 'a' (no plate)", "parameter 'scale'", "Raised in the guide"],
        ["a_loc", "a_scale", "a"], marker="guide-scale",
    ),
    "model-nan-arg-unchecked": SviCase(
        log_of_negative, normal_guide, NonFiniteError,
        ["model site 'y' (no plate)", "the argument 'loc' of its Normal", "entries: nan"],
        ["a", "y"], validate=False, marker="nan-loc",
    ),
    "guide-nan-arg-unchecked": SviCase(
        normal_model, nan_guide, NonFiniteError,
        ["guide site 'a' (no plate)", "the argument 'loc' of its Normal"], ["a_loc", "a"],
        validate=False, marker="guide-nan",
    ),
    "observed-nan-unchecked": SviCase(
        obs_with_nan, normal_guide, NonFiniteError,
        ["model site 'y' (plate 'data' (size 3, dim -1))", "its observed value",
         "1 of 3 entries: nan"], ["a", "y"], validate=False, marker="nan-obs",
    ),
    "observed-inf-checked": SviCase(
        obs_with_inf, normal_guide, NonFiniteError,
        ["model site 'y' (no plate)", "its observed value", "entries: inf"], ["a", "y"],
        marker="inf-obs",
    ),
    "infinite-loc-checked": SviCase(
        infinite_loc, normal_guide, NonFiniteError,
        ["model site 'y' (no plate)", "the argument 'loc' of its Normal", "entries: inf"],
        ["a", "y"], marker="inf-loc",
    ),
    "zero-density-unchecked": SviCase(
        impossible_observation, normal_guide, NonFiniteError,
        ["model site 'u' (no plate)", "its log-prob is not finite", "entries: -inf"],
        ["a", "u"], validate=False, marker="zero-density",
    ),
    "masked-logits-are-not-blamed": SviCase(
        masked_categories_then_nan, normal_guide, NonFiniteError,
        ["model site 'y' (no plate)", "the argument 'loc' of its Normal"], ["a", "c", "y"],
        validate=False, marker="after-mask",
    ),
    "enum-elbo-nan-unchecked": SviCase(
        log_of_negative, normal_guide, NonFiniteError,
        ["model site 'y' (no plate)", "the argument 'loc' of its Normal"], ["a", "y"],
        validate=False, marker="nan-loc", loss=TraceEnum_ELBO(max_plate_nesting=0),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SVI_CASES))
def test_an_svi_step_names_the_first_culprit_and_changes_nothing(name):
    case = SVI_CASES[name]
    svi = _svi(case.model, case.guide, loss=case.loss)
    pyro.param("a_loc", torch.tensor(0.5))
    pyro.enable_validation(case.validate)
    before, steps = store_snapshot(), svi.step_count
    with pytest.raises(case.error) as info:
        svi.step()
    message = str(info.value)
    for words in case.says:
        assert words in message, (words, message)
    if case.marker:
        assert at_line(case.marker) in message
    if case.error is NonFiniteError:
        assert message.index("First non-finite value") < message.index("No parameter")
    rows = table_rows(info.value)
    assert rows[-len(case.rows) :] == case.rows  # the table ends at the culprit
    assert_store_unchanged(before)
    assert svi.step_count == steps and svi.losses == []


def test_a_run_that_goes_bad_keeps_its_earlier_steps():
    state = {"bad": False}

    def model():
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        shift = float("nan") if state["bad"] else 0.0
        pyro.sample("y", dist.Normal(a + shift, 1.0), obs=torch.tensor(0.5))  # culprit: bad

    svi = _svi(model, normal_guide)
    svi.run(3)
    before = store_snapshot()
    state["bad"] = True
    pyro.enable_validation(False)
    with pytest.raises(NonFiniteError) as info:
        svi.run(5)
    assert "SVI step 4" in str(info.value) and at_line("bad") in str(info.value)
    assert table_rows(info.value) == ["a", "y"]
    assert_store_unchanged(before)
    assert svi.step_count == 3 and len(svi.losses) == 3


def test_a_skipped_step_reports_the_culprit_to_listeners_and_changes_nothing():
    pyro.enable_validation(False)
    svi = _svi(log_of_negative, normal_guide, on_nonfinite="skip")
    pyro.param("a_loc", torch.tensor(0.5))
    events = []
    svi.progress.subscribe(events.append)
    before = store_snapshot()
    svi.step()
    message = events[-1].info["message"]
    assert events[-1].info["skipped"] and svi.skipped_steps == [1]
    assert "model site 'y' (no plate)" in message and at_line("nan-loc") in message
    assert type(message) is not str and "Sites" not in message  # the table rides along
    assert message.table.splitlines()[-1].split()[0] == "y"
    assert_store_unchanged(before)


# -- model/guide mismatches come before what they cause -------------------------------------


def coin(flips=FLIPS):
    p = pyro.sample("p", dist.Beta(2.0, 2.0))
    with pyro.plate("flips", len(flips)):
        pyro.sample("obs", dist.Bernoulli(p), obs=flips)


def guide_shape_to_event(flips=FLIPS):
    q = pyro.param("q", torch.tensor([0.5, 0.5]), constraint=constraints.unit_interval)
    pyro.sample("p", dist.Beta(q * 4, 2.0).to_event(1))


def guide_shape_batch(flips=FLIPS):
    pyro.sample("p", dist.Beta(torch.ones(2), torch.ones(2)))


def guide_normal_outside(flips=FLIPS):
    loc = pyro.param("loc", torch.tensor(3.0))
    pyro.sample("p", dist.Normal(loc, 0.01))


def guide_normal_inside(flips=FLIPS):
    loc = pyro.param("loc", torch.tensor(0.5))
    pyro.sample("p", dist.Normal(loc, 0.01))


MISMATCHES = {
    "shape-to-event": (guide_shape_to_event, Trace_ELBO, "the guide draws a value of shape (2,)"),
    "shape-batch": (guide_shape_batch, Trace_ELBO, "the guide draws a value of shape (2,)"),
    "shape-enum-elbo": (guide_shape_batch, TraceEnum_ELBO, "the guide draws a value of shape (2,)"),
    "support-then-bad-probs": (guide_normal_outside, Trace_ELBO, "draws from the whole real line"),
}


@pytest.mark.parametrize("name", list(MISMATCHES))
def test_a_guide_mismatch_is_named_before_the_errors_it_causes(name):
    guide, elbo, says = MISMATCHES[name]
    pyro.param("other_run", torch.tensor([3.0, 4.0]))
    svi = _svi(coin, guide, loss=elbo())
    before = store_snapshot()
    with pytest.raises(ModelGuideMismatchError) as info:
        svi.step()
    message = str(info.value)
    assert "site 'p'" in message and says in message
    assert "reshape" not in message.split("Sites of")[0].lower()
    assert "p" in table_rows(info.value)
    assert_store_unchanged(before)
    assert svi.step_count == 0


def test_a_wider_guide_whose_draws_stay_inside_runs_with_a_warning_naming_the_site():
    # Pyro runs this (its Bayesian regression II tutorial draws a bounded site from a Normal);
    # it is an error only once a draw falls outside (the case above).
    svi = _svi(coin, guide_normal_inside, loss=Trace_ELBO())
    with pytest.warns(UserWarning, match="site 'p': the guide's Normal draws from the whole"):
        svi.step()
    assert svi.step_count == 1


# -- MCMC ------------------------------------------------------------------------------------


def mcmc_nan_observation():
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    pyro.sample("y", dist.Normal(a, 1.0), obs=torch.tensor(float("nan")))  # culprit: mcmc-obs


def mcmc_log_of_negative():
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    loc = torch.log(a - 5)
    pyro.sample("y", dist.Normal(loc, 1.0), obs=torch.tensor(0.0))  # culprit: mcmc-log


@pytest.mark.parametrize(
    "model, marker, validate, says",
    [
        (mcmc_nan_observation, "mcmc-obs", True, "its observed value is not finite"),
        (mcmc_log_of_negative, "mcmc-log", False, "the argument 'loc' of its Normal"),
    ],
)
def test_mcmc_names_the_site_of_a_non_finite_start(model, marker, validate, says):
    pyro.enable_validation(validate)
    mcmc = MCMC(NUTS(model), num_samples=5, warmup_steps=5)
    with pytest.raises(MCMCError) as info:
        mcmc.run()
    message = str(info.value)
    assert "model site 'y' (no plate)" in message and says in message
    assert at_line(marker) in message


def test_mcmc_set_up_names_a_site_whose_distribution_refuses_its_arguments():
    pyro.param("untouched", torch.tensor(1.0))
    before = store_snapshot()
    with pytest.raises(DistributionArgumentError) as info:
        MCMC(NUTS(mcmc_log_of_negative), num_samples=5, warmup_steps=5).run()
    message = str(info.value)
    assert message.startswith("Site 'y' (no plate)") and "Raised in the model" in message
    assert at_line("mcmc-log") in message
    assert table_rows(info.value) == ["a", "y"]
    assert_store_unchanged(before)


# -- the magics ------------------------------------------------------------------------------


def magic_error(shell, cell) -> MagicError:
    with pytest.raises(MagicError) as info:
        run_cell(shell, cell)
    return info.value


@dataclass
class MagicCase:
    cells: list[str]  # defined first
    failing: str
    kind: str
    says: list[str]
    culprit: str  # a site the attached table must include (last, for argument errors)
    validate: bool = True


GUIDE_SHAPE = """\
%%guide wide(flips)
q = ppl.param("q", torch.tensor([0.5, 0.5]), constraint=constraints.unit_interval)
ppl.sample("p", dist.Beta(q * 4, 2.0).to_event(1))
"""
GUIDE_NORMAL = """\
%%guide unbounded(flips)
loc = ppl.param("loc", torch.tensor(3.0))
ppl.sample("p", dist.Normal(loc, 0.01))
"""
GUIDE_BAD_ARG = """\
%%guide broken(flips)
a = ppl.param("a", torch.tensor(2.0))
ppl.sample("p", dist.Beta(a - 5.0, 2.0))
"""
MODEL_LOG = """\
%%model logneg(x)
a = ppl.sample("a", dist.Normal(0.0, 1.0))
loc = torch.log(x - 5)
ppl.sample("y", dist.Normal(loc, 1.0), obs=torch.tensor(0.0))
"""
MODEL_NAN = """\
%%model turns_nan(flips, k)
p = ppl.sample("p", dist.Beta(2.0, 2.0))
with ppl.plate("flips", len(flips)):
    ppl.sample("obs", dist.Bernoulli(p * float("nan")), obs=flips)
"""
MODEL_SCALE = """\
%%model scaled(flips)
s = ppl.sample("s", dist.HalfNormal(1.0))
with ppl.plate("flips", len(flips)):
    ppl.sample("obs", dist.Normal(0.0, s - 10.0), obs=flips)
"""

MAGIC_CASES = {
    "model-cell-nan-argument": MagicCase(
        ["x = torch.tensor(2.0)"], MODEL_LOG, "DistributionArgumentError",
        ["Site 'y' (no plate)", "parameter 'loc'", "%%model logneg, line 3 of the cell"], "y",
    ),
    "model-cell-negative-scale-in-plate": MagicCase(
        [], MODEL_SCALE, "DistributionArgumentError",
        ["Site 'obs' (plate 'flips' (size 8, dim -1))", "parameter 'scale'",
         "%%model scaled, line 3 of the cell"], "obs",
    ),
    "svi-guide-wrong-shape": MagicCase(
        [COIN, GUIDE_SHAPE], "%svi coin --guide wide --steps 3", "ModelGuideMismatchError",
        ["site 'p'", "the guide draws a value of shape (2,)"], "p",
    ),
    "svi-guide-wrong-support": MagicCase(
        [COIN, GUIDE_NORMAL], "%svi coin --guide unbounded --steps 3", "ModelGuideMismatchError",
        ["site 'p'", "draws from the whole real line"], "p",
    ),
    "svi-guide-bad-argument": MagicCase(
        [COIN, GUIDE_BAD_ARG], "%svi coin --guide broken --steps 3", "DistributionArgumentError",
        ["Site 'p' (no plate)", "parameter 'concentration1'",
         "at %%guide broken, line 2 of the cell"], "p",
    ),
    "svi-model-nan-unchecked": MagicCase(
        [MODEL_NAN], "%svi turns_nan --steps 3 --args k=1", "NonFiniteError",
        ["model site 'obs' (plate 'flips' (size 8, dim -1))",
         "%%model turns_nan, line 3 of the cell", "the argument 'probs' of its Bernoulli"],
        "obs", validate=False,
    ),
    "trace-guide-wrong-shape": MagicCase(
        [COIN, GUIDE_SHAPE], "%trace coin --guide wide", "ModelGuideMismatchError",
        ["site 'p'", "the guide draws a value of shape (2,)"], "p",
    ),
    "trace-model-nan-argument": MagicCase(
        [MODEL_NAN.replace("float(\"nan\")", "-1.0").replace("turns_nan(", "later(")],
        "%trace later --args k=1", "DistributionArgumentError",
        ["Site 'obs' (plate 'flips'", "parameter 'probs'", "%%model later, line 3 of the cell"],
        "obs",
    ),
    "mcmc-model-bad-scale": MagicCase(
        ["%%model mscaled(flips, c)\n" + MODEL_SCALE.split("\n", 1)[1]],
        "%mcmc mscaled --samples 5 --args c=1", "DistributionArgumentError",
        ["Site 'obs' (plate 'flips'", "parameter 'scale'", "%%model mscaled, line 3 of the cell"],
        "obs",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(MAGIC_CASES))
def test_magics_name_the_culprit_and_its_cell_line(shell, name):
    case = MAGIC_CASES[name]
    for cell in case.cells:
        run_cell(shell, cell)
    run_cell(shell, COIN.replace("coin(", "kept("))
    earlier = run_cell(shell, "%svi kept --steps 2")  # a run the failure must leave alone
    before, steps = store_snapshot(), earlier.step_count
    pyro.enable_validation(case.validate)
    error = magic_error(shell, case.failing)
    pyro.enable_validation(True)
    message = str(error)
    assert error.kind == case.kind
    for words in case.says:
        assert words in message, (words, message)
    assert "Traceback" not in message
    cause = error.__cause__
    assert isinstance(cause, PPLError) and case.culprit in table_rows(cause)
    if isinstance(cause, DistributionArgumentError):
        assert table_rows(cause)[-1] == case.culprit
    assert_store_unchanged(before)
    assert earlier.step_count == steps


def test_trace_with_a_wider_guide_whose_draw_stays_inside_shows_the_trace(shell):
    for cell in (COIN, GUIDE_NORMAL.replace("3.0", "0.5")):
        shell.run_cell(cell)
    with pytest.warns(UserWarning, match="site 'p'"):
        result = shell.run_cell("%trace coin --guide unbounded")
    assert result.error_in_exec is None and result.result is not None
