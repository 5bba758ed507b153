"""The magics driven through IPython's InteractiveShell, the way a notebook cell runs them."""

import time

import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell

import engine
from engine.infer import MCMC
from pplkernel.runs import SviRun
from tests.cells import COIN, MIXTURE, run_cell
from widgets import ModelGraph, TraceInspector
from widgets.graph import GRAPH_MIME


def test_extension_injects_names_only_where_free(shell):
    InteractiveShell.clear_instance()
    fresh = InteractiveShell.instance()
    fresh.user_ns["dist"] = "mine"
    fresh.run_line_magic("load_ext", "pplkernel")
    assert fresh.user_ns["ppl"] is engine and fresh.user_ns["dist"] == "mine"
    assert fresh.user_ns["torch"] is torch


def test_model_cell_defines_registers_and_inspects(shell):
    run_cell(shell, COIN)
    assert callable(shell.user_ns["coin"])
    html = shell.displayed[-1]["text/html"]
    assert "obs" in html and "(8,)" in html and "flips" in html
    # The same body again is a no-op: nothing new is shown.
    shown = len(shell.displayed)
    run_cell(shell, COIN)
    assert len(shell.displayed) == shown


def test_plain_def_cell_form(shell):
    run_cell(shell, '%%model\ndef scale_model():\n    ppl.sample("s", dist.HalfNormal(1.0))\n')
    assert "scale_model" in shell.user_ns
    assert "HalfNormal" in shell.displayed[-1]["text/html"]


def test_model_waits_for_its_arguments(shell, capsys):
    run_cell(shell, '%%model later(data)\nppl.sample("x", dist.Normal(0.0, 1.0), obs=data)\n')
    assert "will run once data is defined" in capsys.readouterr().out


def test_svi_with_autoguide_then_step_and_reset(shell):
    run_cell(shell, COIN)
    run_cell(shell, "run = %svi coin --steps 50 --lr 0.05")
    first = shell.user_ns["run"]
    assert isinstance(first, SviRun) and len(first.losses) == 50
    again = run_cell(shell, "%svi step 20")
    assert again is first and len(first.losses) == 70
    # The same command continues the same run.
    assert run_cell(shell, "%svi coin --steps 10 --lr 0.05") is first and len(first.losses) == 80
    predictive = first.predictive(num_samples=7)
    assert predictive["obs"].shape == (7, 8)
    run_cell(shell, "%svi reset")
    with pytest.raises(Exception, match="no SVI run yet"):
        run_cell(shell, "%svi step")


def test_svi_with_a_custom_guide_learns_the_posterior(shell):
    run_cell(shell, COIN)
    run_cell(
        shell, "%svi coin --steps 2"
    )  # another run's params must not show on this run's monitor
    run_cell(
        shell,
        "%%guide coin_guide(flips)\n"
        'a = ppl.param("a", torch.tensor(2.0), constraint=constraints.positive)\n'
        'b = ppl.param("b", torch.tensor(2.0), constraint=constraints.positive)\n'
        'ppl.sample("p", dist.Beta(a, b))\n',
    )
    engine.set_rng_seed(0)
    custom = run_cell(
        shell, "%svi coin --guide coin_guide --steps 800 --lr 0.05 --particles 4 --name c"
    )
    assert set(custom.monitor.params) == {"a", "b"}
    a, b = custom.params["a"].item(), custom.params["b"].item()
    assert "a" not in engine.get_param_store()  # the run's own params, not the notebook's
    # Exact posterior: Beta(2 + 6, 2 + 2), mean 2/3. The fitted Beta's mean is close to it.
    assert abs(a / (a + b) - 2 / 3) < 0.05


def test_enumerated_model_shows_its_enum_dims_and_svi_sums_them_out(shell):
    shell.user_ns["data"] = torch.tensor([-2.0, -1.5, 2.0, 2.5])
    run_cell(shell, MIXTURE)
    inspector = shell.displayed[-1]
    assert "*z@-2" in inspector["text/html"]  # the inspector runs the model enumerated
    svi_run = run_cell(shell, "%svi mixture --elbo enum --guide auto_delta --steps 5")
    assert len(svi_run.losses) == 5 and all(torch.isfinite(torch.tensor(svi_run.losses)))
    assert type(svi_run.svi.elbo).__name__ == "TraceEnum_ELBO"
    assert sorted(svi_run.guide.median(shell.user_ns["data"])) == ["locs", "weights"]


def test_args_flag_binds_model_arguments(shell):
    run_cell(shell, COIN)
    run_ = run_cell(shell, "%svi coin --steps 5 --args flips=torch.ones(3)")
    assert run_.kwargs["flips"].shape == (3,)


def test_mcmc_magic_returns_the_mcmc_object(shell):
    run_cell(shell, COIN)
    engine.set_rng_seed(1)
    mcmc = run_cell(shell, "%mcmc coin --samples 200 --warmup 100 --chains 2")
    assert isinstance(mcmc, MCMC)
    assert shell.magics_manager.registry["PPLMagics"].session.mcmc_runs == [("coin", mcmc)]
    p = mcmc.get_samples(group_by_chain=True)["p"]
    assert p.shape == (2, 200)
    assert abs(p.mean().item() - 8 / 12) < 0.1


def test_trace_magic_shows_the_inspector(shell):
    run_cell(shell, COIN)
    inspector = run_cell(shell, "%trace coin --guide auto_normal")
    assert isinstance(inspector, TraceInspector)
    rows = {row["site"]: row for row in inspector.sites}
    assert rows["obs"]["observed"] and rows["obs"]["log_prob"] == "(8,)"
    assert rows["p"]["log_prob_sum"] is not None


def test_trace_graph_shows_the_model_graph(shell):
    run_cell(shell, COIN)
    graph = run_cell(shell, "%trace coin --graph")
    assert isinstance(graph, ModelGraph) and graph.edges == [("p", "obs")]
    assert graph.plates[0]["name"] == "flips" and graph.plates[0]["sites"] == ["obs"]
    shown, _ = shell.display_formatter.format(graph)  # the cell's result, as a kernel sends it
    assert GRAPH_MIME in shown and "ppl-graph" in shown["text/html"]
    assert shown["text/plain"].startswith("ModelGraph('graph of coin'")
    with pytest.raises(Exception, match="drop --guide"):
        run_cell(shell, "%trace coin --graph --guide auto_normal")


def test_ppl_lists_and_resets(shell, capsys):
    run_cell(shell, COIN)
    run_cell(shell, "%svi coin --steps 3")
    run_cell(shell, "%ppl")
    out = capsys.readouterr().out
    assert "coin (v1)" in out and "SviRun 'coin'" in out and "MCMC runs: none" in out
    run_cell(shell, "%ppl reset")
    assert len(engine.get_param_store()) == 0
    with pytest.raises(Exception, match="No model named 'coin'"):
        run_cell(shell, "%svi coin")


def test_changed_model_marks_its_runs_stale(shell, capsys):
    run_cell(shell, COIN)
    first = run_cell(shell, "%svi coin --steps 2")
    run_cell(shell, COIN.replace("Beta(2.0, 2.0)", "Beta(1.0, 1.0)"))
    assert first.stale and "redefined" in first.stale
    run_cell(shell, "%svi step 1")  # the stale run can go on, and says it is stale
    assert "was redefined after this run started" in capsys.readouterr().out
    second = run_cell(shell, "%svi coin --steps 2")
    assert second is not first and not second.stale


# -- errors: a short message, and nothing lost ------------------------------------------------


def error_of(shell, cell, capsys):
    before = dict(engine.get_param_store().items())
    result = shell.run_cell(cell)
    shown = capsys.readouterr()
    assert result.error_in_exec is not None or result.error_before_exec is not None
    after = dict(engine.get_param_store().items())
    assert before.keys() == after.keys()
    return shown.out + shown.err


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("%svi coin --steps -3", "must be a positive integer"),
        ("%svi coin --optim rmsprop", "invalid choice: 'rmsprop'"),
        ("%svi nope", "No model named 'nope'"),
        ("%svi coin --guide missing_guide", "No guide named 'missing_guide'"),
        ("%svi coin --elbo exact", "invalid choice: 'exact'"),
        ("%svi coin --args flips", "NAME=EXPR"),
        ("%mcmc coin --kernel gibbs", "invalid choice: 'gibbs'"),
        ("%ppl what", "takes nothing or `reset`"),
    ],
)
def test_bad_magic_lines_give_one_short_message(shell, capsys, cell, expected):
    run_cell(shell, COIN)
    earlier = run_cell(shell, "%svi coin --steps 2")
    before = {name: value.detach().clone() for name, value in earlier.params.items()}
    shown = error_of(shell, cell, capsys)
    assert expected in shown
    assert "Traceback" not in shown and "File " not in shown
    after = dict(earlier.params.items())  # the earlier run's params are as they were
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_shape_error_in_a_model_is_short_and_names_the_site(shell, capsys):
    shown = error_of(
        shell,
        "%%model bad(flips)\n"
        'p = ppl.sample("p", dist.Beta(2.0, 2.0))\n'
        'with ppl.plate("flips", len(flips)):\n'
        '    ppl.sample("obs", dist.Bernoulli(p), obs=flips.unsqueeze(-1))\n',
        capsys,
    )
    assert shown.startswith("ShapeError: Observed site 'obs'")
    assert "Traceback" not in shown


def test_model_guide_mismatch_is_reported_by_site(shell, capsys):
    run_cell(shell, COIN)
    run_cell(shell, '%%guide empty_guide(flips)\nppl.param("unused", torch.tensor(0.0))\n')
    shown = error_of(shell, "%svi coin --guide empty_guide --steps 1", capsys)
    assert "ModelGuideMismatchError" in shown and "'p'" in shown


def test_nan_during_svi_is_short_and_keeps_the_run(shell, capsys):
    run_cell(shell, COIN)
    run_cell(
        shell,
        "%%guide nan_guide(flips)\n"
        'a = ppl.param("a", torch.tensor(2.0))\n'
        'ppl.sample("p", dist.Beta(a * float("nan"), 2.0))\n',
    )
    engine.enable_validation(False)
    try:
        shown = error_of(shell, "%svi coin --guide nan_guide --steps 1", capsys)
    finally:
        engine.enable_validation(True)
    assert "NonFiniteError" in shown and "No parameter was changed" in shown


def test_syntax_error_in_a_model_cell(shell, capsys):
    shown = error_of(shell, "%%model broken(x)\nreturn (x\n", capsys)
    assert shown.startswith("SyntaxError: Syntax error at line")


def test_keyboard_interrupt_during_svi_keeps_the_steps_taken(shell):
    run_cell(shell, COIN)
    run_ = run_cell(shell, "%svi coin --steps 3")
    calls = {"n": 0}
    original = run_.svi.step

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    run_.svi.step = interrupted
    run_cell(shell, "%svi step 100")
    assert len(run_.losses) == 3 + 4


def test_inspector_escapes_user_strings(shell):
    run_cell(
        shell, "%%model xss()\nppl.sample('<img src=x onerror=alert(1)>', dist.Normal(0.0, 1.0))\n"
    )
    html = shell.displayed[-1]["text/html"]
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_mcmc_runs_in_the_background_and_can_be_stopped(shell):
    run_cell(shell, COIN)
    mcmc = run_cell(shell, "%mcmc coin --samples 100000 --warmup 10 --chains 2")
    assert "application/vnd.jupyter.widget-view+json" in shell.displayed[-1]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        draws = mcmc.draws_so_far()
        if draws is not None and draws.shape[1] >= 5:
            break
        time.sleep(0.02)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        mcmc.request_stop()
        samples = mcmc.get_samples(group_by_chain=True)["p"]
    assert mcmc.interrupted and 5 <= samples.shape[1] < 100000


def test_a_rerun_data_cell_starts_a_new_run(shell):
    run_cell(shell, COIN)
    first = run_cell(shell, "%svi coin --steps 2")
    run_cell(shell, "flips = torch.tensor([1.0, 0.0, 1.0])")  # new data: a new tensor object
    second = run_cell(shell, "%svi coin --steps 2")
    assert second is not first and second.kwargs["flips"].shape == (3,)


def test_step_while_running_in_the_background_pauses_the_run_first(shell):
    run_cell(shell, COIN)
    run_ = run_cell(shell, "%svi coin --steps 2")
    run_.monitor.run()
    deadline = time.monotonic() + 10
    while run_.step_count < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    run_cell(shell, "%svi step 5")
    assert run_.monitor.status == "paused"
    taken = run_.step_count
    time.sleep(0.05)
    assert run_.step_count == taken and len(run_.losses) == taken


def test_reset_stops_a_background_run(shell):
    run_cell(shell, COIN)
    run_ = run_cell(shell, "%svi coin --steps 2")
    run_.monitor.run()
    run_cell(shell, "%svi reset")
    taken = run_.step_count
    time.sleep(0.05)
    assert run_.step_count == taken
    assert not any(name.startswith("AutoNormal") for name in engine.get_param_store())


def test_mcmc_with_a_broken_model_fails_at_once_in_one_line(shell, capsys):
    run_cell(shell, "%%model later_broken(n)\nppl.sample('x', dist.Normal(torch.zeros(n), 1.0))\n")
    shown = error_of(shell, "%mcmc later_broken --samples 10 --args n=-1", capsys)
    assert "RuntimeError: zeros: Dimension size must be non-negative" in shown
    assert "Traceback" not in shown


def test_inspector_shows_a_zero_density_as_minus_infinity(shell):
    run_cell(
        shell,
        "%%model impossible()\nppl.sample('u', dist.Uniform(0.0, 1.0), obs=torch.tensor(1.0))\n",
    )
    assert "-inf" in shell.displayed[-1]["text/html"]


def test_args_naming_no_argument_of_the_model_is_refused(shell, capsys):
    run_cell(shell, COIN)
    shown = error_of(shell, "%svi coin --steps 1 --args flip=torch.ones(3)", capsys)
    assert "--args flip: 'coin' has no such argument (its arguments: flips)" in shown


def test_an_error_in_the_models_own_code_names_the_cell_line(shell, capsys):
    cell = (
        '%%model typo(flips)\np = ppl.sample("p", dist.Beta(2.0, 2.0))\nq = p.no_such_attribute\n'
    )
    out = error_of(shell, cell, capsys)  # the cell runs the model at once: flips is defined
    assert out.startswith("AttributeError") and "(%%model typo, line 2 of the cell)" in out
    assert "Traceback" not in out


def test_mcmc_magic_sums_out_enumerated_sites(shell):
    run_cell(shell, "data = torch.tensor([-0.2, 0.1, 3.1, 2.8])")
    run_cell(
        shell,
        "%%model mixture(data)\n"
        "mu = ppl.sample('mu', dist.Normal(0.0, 3.0))\n"
        "with ppl.plate('data', len(data)):\n"
        "    z = ppl.sample('z', dist.Bernoulli(0.5), infer={'enumerate': 'parallel'})\n"
        "    ppl.sample('obs', dist.Normal(mu + 3.0 * z, 1.0), obs=data)\n",
    )
    engine.set_rng_seed(1)
    mcmc = run_cell(shell, "%mcmc mixture --samples 50 --warmup 50")
    assert set(mcmc.get_samples()) == {"mu"}
