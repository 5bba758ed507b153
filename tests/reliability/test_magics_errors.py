"""Wrong input to every magic, flag and header form: one short error that names the culprit,
and a session, param store and notebook left exactly as they were.

The magics are driven through IPython's InteractiveShell with the extension loaded, as a notebook
cell runs them (the same set-up as tests/pplkernel/test_magics.py).
"""

import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell

import engine
from pplkernel.errors import MagicError
from tests.cells import COIN

COIN_GUIDE = """\
%%guide coin_guide(flips)
a = ppl.param("a", torch.tensor(2.0), constraint=constraints.positive)
ppl.sample("p", dist.Beta(a, 2.0))
"""


@pytest.fixture
def shell():
    """A notebook with the coin model, a guide and one SVI run (its params in the store)."""
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "pplkernel")
    shell.user_ns["flips"] = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    displayed = []
    shell.display_pub.publish = lambda data, metadata=None, **kwargs: displayed.append(data)
    shell.displayed = displayed
    for cell in (COIN, COIN_GUIDE, "%svi coin --steps 2"):
        result = shell.run_cell(cell)
        assert result.success, result.error_in_exec
    yield shell
    InteractiveShell.clear_instance()


def snapshot(shell) -> dict:
    """Everything a failing magic must leave alone."""
    session = shell._pplkernel_magics.session
    return {
        "models": {name: (e, e.version, e.fn) for name, e in session.models.items()},
        "guides": {name: (e, e.version, e.fn) for name, e in session.guides.items()},
        "runs": {name: (run, len(run.losses)) for name, run in session.runs.items()},
        "latest": session.latest_run,
        "mcmc": list(session.mcmc_runs),
        "params": {
            name: value.detach().clone() for name, value in engine.get_param_store().items()
        },
        "names": {name: shell.user_ns.get(name) for name in ("coin", "coin_guide", "flips")},
        "displayed": len(shell.displayed),
    }


def assert_unchanged(before: dict, after: dict) -> None:
    params_before, params_after = before.pop("params"), after.pop("params")
    assert params_before.keys() == params_after.keys()
    for name, value in params_before.items():
        assert torch.equal(value, params_after[name]), name
    assert before["names"].keys() == after["names"].keys()
    for name, value in before.pop("names").items():
        assert after["names"][name] is value, name
    after.pop("names")
    assert before == after


# (cell, kind shown, fragments the message must hold: the culprit and the way out)
CASES = [
    # %%model NAME(ARGS): the magic line
    ("%%model coin(flips) extra\npass\n", "SyntaxError", ["'extra'", "`coin(flips)`"]),
    ("%%model import(flips)\npass\n", "SyntaxError", ["'import' is a Python keyword"]),
    ("%%model coin(flips, lambda)\npass\n", "SyntaxError", ["'lambda' is a Python keyword"]),
    ("%%model coin(flips, p=)\npass\n", "SyntaxError", ["(flips, p=)", "default value"]),
    ("%%model coin(*flips)\npass\n", "SyntaxError", ["*flips", "Name each argument"]),
    ("%%guide coin_guide(**options)\npass\n", "SyntaxError", ["**options"]),
    ("%%model coin(flips\npass\n", "SyntaxError", ["not closed", "`coin(flips)`"]),
    ("%%model coin(flips):\npass\n", "SyntaxError", ["':'", "`coin(flips)`"]),
    ("%%model coin flips\npass\n", "SyntaxError", ["'flips'", "`coin(flips)`"]),
    ("%%model def coin(flips):\npass\n", "SyntaxError", ["`def`"]),
    ("%%model @config_enumerate coin(flips)\npass\n", "SyntaxError", ["'@config_enumerate'"]),
    ("%%model coin-flip(flips)\npass\n", "SyntaxError", ["'coin-flip'", "`coin_flip`"]),
    ("%%model \u00e9t\u00e9\u20132(flips)\npass\n", "SyntaxError", ["'\u00e9t\u00e9\u20132'"]),
    ("%%model flips()\npass\n", "NameError", ["'flips'", "Tensor", "flips_model"]),
    ("%%guide dist()\npass\n", "NameError", ["'dist'", "module", "dist_guide"]),
    ("%%model coin(flips, p=prior_p)\npass\n", "NameError", ["prior_p", "magic line"]),
    # %%model NAME(ARGS): the body
    ("%%model coin(flips)\n\n   \n", "SyntaxError", ["is empty", "`pass`"]),
    ("%%model coin(flips)\n# to do\n", "SyntaxError", ["only comments", "`pass`"]),
    (
        '%%model coin(flips)\np = ppl.sample("p", dist.Beta(2.0, 2.0))\nq = (p\n',
        "SyntaxError",
        ["line 2 of the cell", "`q = (p`"],
    ),
    # %%model alone, with a def in the cell
    ("%%model\ndef coin(flips):\n    return (flips\n", "SyntaxError", ["line 2 of the cell"]),
    ("%%model\n# nothing yet\n", "SyntaxError", ["defines no function"]),
    (
        "%%model\ndef helper():\n    pass\nratio = 1 / 0\n",
        "ZeroDivisionError",
        ["division by zero", "line 3 of the cell"],
    ),
    # %svi MODEL [flags]
    ("%svi coin --steps abc", "UsageError", ["--steps", "'abc'", "positive integer"]),
    ("%svi coin --steps 1e400", "UsageError", ["--steps", "'1e400'"]),
    ("%svi coin --lr inf", "UsageError", ["--lr", "'inf'", "positive finite"]),
    ("%svi coin --lr nan", "UsageError", ["--lr", "'nan'"]),
    ("%svi coin --lr 1e400", "UsageError", ["--lr", "'1e400'", "infinity"]),
    ("%svi coin --step 5", "UsageError", ["'--step'", "Did you mean '--steps'?"]),
    ("%svi coin -lr 0.1", "UsageError", ["'-lr'", "Did you mean '--lr'?"]),
    ("%svi coin --steps", "UsageError", ["--steps needs a value"]),
    ("%svi coin --steps 5 --steps 10", "UsageError", ["--steps is given twice", "'10'"]),
    ("%svi coin --optim rmsprop", "UsageError", ["'rmsprop'", "adam, clipped_adam, sgd"]),
    ("%svi coin --elbo trac", "UsageError", ["'trac'", "Did you mean 'trace'?"]),
    ("%svi coin --particles 0", "UsageError", ["--particles", "'0'"]),
    ("%svi coin --guide auto_norma", "NameError", ["'auto_norma'", "'auto_normal'"]),
    ("%svi coin --args flips=flips[:2", "SyntaxError", ["flips=flips[:2", "does not parse"]),
    ("%svi coin --args flips=unknown_data", "NameError", ["unknown_data"]),
    ("%svi coin --args flips", "UsageError", ["NAME=EXPR", "'flips'"]),
    ("%svi coin --args for=flips", "UsageError", ["'for' is a Python keyword"]),
    ("%svi coin --args flip=flips", "UsageError", ["--args flip", "Did you mean 'flips'?"]),
    ("%svi coin extra", "UsageError", ["'extra'", "'coin'"]),
    ("%svi --steps 5", "UsageError", ["model name is missing"]),
    ("%svi step 0", "UsageError", ["%svi step", "'0'"]),
    ("%svi reset now", "UsageError", ["%svi reset", "'now'"]),
    # %mcmc MODEL [flags]
    ("%mcmc coin --kernel gibbs", "UsageError", ["'gibbs'", "nuts, hmc"]),
    ("%mcmc coin --warmup -1", "UsageError", ["--warmup", "'-1'", "0 or more"]),
    ("%mcmc coin --chain 2", "UsageError", ["'--chain'", "Did you mean '--chains'?"]),
    ("%mcmc coin --args flips=1/0", "ZeroDivisionError", ["--args flips=1/0", "division"]),
    # %trace MODEL [--guide G] [--graph]
    ("%trace coin --graph yes", "UsageError", ["'yes'", "--graph takes no value"]),
    ("%trace coin --graph --guide coin_guide", "UsageError", ["drop --guide"]),
    ("%trace cion", "NameError", ["'cion'", "Did you mean 'coin'?"]),
    # %ppl
    ("%ppl rest", "UsageError", ["'rest'", "Did you mean 'reset'?"]),
]


@pytest.mark.parametrize("cell, kind, fragments", CASES, ids=[c[0] for c in CASES])
def test_wrong_input_is_one_short_error_that_changes_nothing(shell, capsys, cell, kind, fragments):
    before = snapshot(shell)
    capsys.readouterr()
    result = shell.run_cell(cell)
    shown = capsys.readouterr()
    error = result.error_in_exec
    assert isinstance(error, MagicError), repr(error)
    assert error.kind == kind, str(error)
    message = str(error)
    for fragment in fragments:
        assert fragment in message, message
    text = shown.out + shown.err
    assert text.startswith(f"{kind}: {message.splitlines()[0]}")
    for internal in ("Traceback", 'File "', "_positive_int", "argparse", "usage:"):
        assert internal not in text
    assert_unchanged(before, snapshot(shell))


BAD_LINE = {"runtime": "q = p.no_such_attribute", "syntax": "q = (p"}


@pytest.mark.parametrize("fault", ["runtime", "syntax"])
@pytest.mark.parametrize(
    "cell, line",
    [
        ('%%model tilt(flips)\np = ppl.sample("p", dist.Beta(2.0, 2.0))\n{bad}\n', 2),
        ('%%model\ndef tilt(flips):\n    p = ppl.sample("p", dist.Beta(2.0, 2.0))\n    {bad}\n', 3),
    ],
    ids=["header form", "def form"],
)
def test_runtime_and_syntax_errors_name_the_same_cell_line(shell, cell, line, fault):
    result = shell.run_cell(cell.format(bad=BAD_LINE[fault]))
    error = result.error_in_exec
    assert isinstance(error, MagicError)
    assert error.kind == ("AttributeError" if fault == "runtime" else "SyntaxError")
    assert f"line {line} of the cell" in str(error), str(error)
    if fault == "syntax":
        assert "tilt" not in shell._pplkernel_magics.session.models


def test_a_model_cell_with_a_syntax_error_keeps_the_old_version(shell):
    session = shell._pplkernel_magics.session
    old, old_fn = session.models["coin"], shell.user_ns["coin"]
    result = shell.run_cell('%%model coin(flips)\np = ppl.sample("p", dist.Beta(2.0, 2.0)\n')
    assert result.error_in_exec.kind == "SyntaxError"
    assert session.models["coin"] is old and old.version == 1 and old.fn is old_fn
    assert shell.user_ns["coin"] is old_fn
    assert not session.runs["coin"].stale


@pytest.mark.parametrize(
    "cell",
    [
        "%svi coin --steps=3 --lr=0.05 --name equals_form",
        '%trace coin --args "flips=torch.tensor([1.0, 0.0])"',
        "%trace coin --args flips=flips[:2]",
        "%%model m\u00fcnze(w\u00fcrfe)\nppl.sample('p', dist.Beta(2.0, 2.0))\n",
        "%%guide\ndef open_guide(flips, **options):\n    pass\n",
    ],
)
def test_right_input_near_the_wrong_is_accepted(shell, cell):
    result = shell.run_cell(cell)
    assert result.success, result.error_in_exec


def test_a_compatibility_ligature_name_is_normalised_as_python_does(shell):
    result = shell.run_cell("%%model \ufb01sh()\nppl.sample('x', dist.Normal(0.0, 1.0))\n")
    assert result.success, result.error_in_exec
    assert "fish" in shell._pplkernel_magics.session.models and callable(shell.user_ns["fish"])


def test_args_reach_a_models_double_star_parameter(shell):
    shell.user_ns["seen"] = []
    cell = (
        "%%model\ndef open_model(**options):\n"
        "    seen.append(options.get('loc'))\n"
        "    ppl.sample('x', dist.Normal(options.get('loc', 0.0), 1.0))\n"
    )
    assert shell.run_cell(cell).success
    assert shell.run_cell("%trace open_model --args loc=5.0").success
    assert shell.user_ns["seen"] == [None, 5.0]
