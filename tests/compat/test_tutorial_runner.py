"""The runner of Pyro's tutorials (``benchmarks/pyro_tutorials.py``), on a tiny notebook written
here the way Pyro's tutorials are written: magics, a shell line, a version check, ``smoke_test``,
step counts, a download, and cells whose last expression Jupyter would show. Its parts are
checked one by one (conversion, stand-in downloads, the ``pyro`` alias, the subprocess with its
timeout, the number comparison) and together on that notebook."""

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import engine
from benchmarks.pyro_tutorials import format_report, main
from benchmarks.tutorial_runner import prelude
from benchmarks.tutorial_runner.compare import compare_outputs, extract_numbers, numbers_close
from benchmarks.tutorial_runner.execute import run_script
from benchmarks.tutorial_runner.notebook_script import convert_cell, notebook_to_script
from benchmarks.tutorial_runner.pyro_alias import write_alias_package
from benchmarks.tutorial_runner.stand_in_data import (
    RUGGED_URL,
    STAND_INS,
    SUNSPOT_URL,
    stand_ins_used,
    write_stand_ins,
)

ENGINE_ROOT = Path(engine.__file__).resolve().parents[1]


def tiny_notebook():
    cells = [
        nbformat.v4.new_markdown_cell("# A tiny tutorial\nwith `%matplotlib` in prose"),
        nbformat.v4.new_code_cell("!pip install -q pyro-ppl  # for colab\n%matplotlib inline"),
        nbformat.v4.new_code_cell(
            "import os\nimport pandas as pd\nimport torch\n"
            "smoke_test = ('CI' in os.environ)\n"
            "assert torch.__version__.startswith('0.0.1')"
        ),
        nbformat.v4.new_code_cell(
            "%%time\nnum_steps = 2000\nsize = 10\ntotal = 0\n"
            "for step in range(num_steps):\n    total += 1\nprint('steps', total, 'size', size)"
        ),
        nbformat.v4.new_code_cell(
            "def train(lr=0.1, n_steps=501):\n    return n_steps\n"
            "print('trained', train(), train(n_steps=300), 'smoke', smoke_test)"
        ),
        nbformat.v4.new_code_cell(
            f"df = pd.read_csv({SUNSPOT_URL!r}, sep=';', names=['time', 'sunspot.year'],"
            " usecols=[0, 1])\nlen(df), round(float(df['sunspot.year'].mean()), 1)"
        ),
        nbformat.v4.new_code_cell("%time x = torch.tensor([1.5, 2.5])\nx * 2"),
        nbformat.v4.new_code_cell("x.sum();"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.figure()"),
    ]
    return nbformat.v4.new_notebook(cells=cells)


# ---- the conversion ----


def test_magics_and_shell_lines_are_dropped_and_time_keeps_its_statement():
    script = notebook_to_script(tiny_notebook(), title="tiny")
    assert "get_ipython" not in script.source
    assert "pip install" not in script.source.replace("# runner: dropped shell line !pip", "")
    assert "x = torch.tensor([1.5, 2.5])\n" in script.source
    assert "total += 1" in script.source  # the body of the %%time cell is kept
    notes = "\n".join(script.notes)
    assert "code cell 1: dropped shell line !pip install -q pyro-ppl" in notes
    assert "code cell 1: dropped %matplotlib inline" in notes
    assert "code cell 3: %%time dropped, the cell's body kept" in notes
    assert "code cell 6: %time dropped, its statement kept" in notes
    compile(script.source, "tiny.py", "exec")  # the whole script is plain Python


def test_a_version_check_is_dropped():
    cell = convert_cell("import torch\nassert torch.__version__.startswith('1.9.1')\n", 1)
    assert "startswith" not in cell.code
    assert cell.notes == ("dropped version check: assert torch.__version__.startswith('1.9.1')",)


def test_the_last_expression_is_shown_unless_a_semicolon_ends_it():
    assert convert_cell("x = 1\nx + 1", 1).code == "x = 1\n_tutorial_show(x + 1)\n"
    assert convert_cell("x = 1\nx + 1;", 1).code == "x = 1\nx + 1;\n"
    assert convert_cell("x = 1\nprint(x)", 1).code == "x = 1\nprint(x)\n"
    assert convert_cell("x = 1\nx, 2", 1).code == "x = 1\n_tutorial_show((x, 2))\n"
    assert convert_cell("(1, 2)", 1).code == "_tutorial_show((1, 2))\n"
    multi_line = convert_cell("f(1,\n  2)  # comment", 1).code
    assert multi_line == "_tutorial_show(f(1,\n  2))  # comment\n"


def test_smoke_mode_shortens_long_step_counts_only():
    source = textwrap.dedent(
        """\
        num_steps = 10
        n_steps = 2000
        def train(model, n_iter=1500):
            pass
        train(None, n_iter=800)
        mcmc = MCMC(kernel, num_samples=1000, warmup_steps=200)
        predictive = Predictive(model, num_samples=800)
        n_steps = 2 if smoke_test else 2000
        """
    )
    cell = convert_cell(source, 4, smoke=True)
    assert "num_steps = 10\n" in cell.code  # a sequence length in the enumeration tutorial
    assert "n_steps = 2\n" in cell.code
    assert "def train(model, n_iter=2):" in cell.code
    assert "train(None, n_iter=2)" in cell.code
    assert "MCMC(kernel, num_samples=50, warmup_steps=50)" in cell.code
    assert "Predictive(model, num_samples=800)" in cell.code  # not a step count
    assert "n_steps = 2 if smoke_test else 2000" in cell.code  # the tutorial's own smoke mode
    assert convert_cell(source, 4, smoke=False).code == source
    kept = convert_cell(source, 4, smoke=True, keep={"n_iter", "num_samples"}).code
    assert "def train(model, n_iter=1500):" in kept and "n_steps = 2\n" in kept
    assert "MCMC(kernel, num_samples=1000, warmup_steps=50)" in kept


def test_a_cell_that_does_not_parse_stops_the_run_there():
    cell = convert_cell("def broken(:\n    pass", 7)
    with pytest.raises(SyntaxError, match="code cell 7 does not parse"):
        exec(cell.code, {})
    assert convert_cell("%%html\n<b>hi</b>", 2).code == "pass\n"


def test_script_lines_map_back_to_code_cells():
    script = notebook_to_script(tiny_notebook())
    lines = script.source.splitlines()
    line_of_sum = next(i for i, line in enumerate(lines, start=1) if "x.sum();" in line)
    assert script.cell_at(line_of_sum) == 7
    assert script.cell_at(1) is None


# ---- the stand-in downloads ----


def test_every_stand_in_has_the_columns_the_tutorials_read(tmp_path):
    paths = write_stand_ins(list(STAND_INS.values()), tmp_path)
    rugged = pd.read_csv(paths[RUGGED_URL], encoding="ISO-8859-1")
    assert tuple(rugged.columns) == STAND_INS[RUGGED_URL].columns
    assert {"cont_africa", "rugged", "rgdppc_2000"} <= set(rugged.columns)
    assert set(rugged["cont_africa"].unique()) == {0, 1}
    # The tutorials drop countries without GDP; some must be left, and enough of them.
    assert 100 < rugged["rgdppc_2000"].notna().sum() < len(rugged)
    sunspots = pd.read_csv(
        paths[SUNSPOT_URL], sep=";", names=["time", "sunspot.year"], usecols=[0, 1]
    )
    assert len(sunspots.columns) == 2 and len(sunspots) > 300
    assert (sunspots["sunspot.year"] >= 0).all()
    assert len(pd.read_csv(paths[SUNSPOT_URL], sep=";", header=None).columns) == len(
        STAND_INS[SUNSPOT_URL].columns
    )


def test_only_the_registered_urls_are_redirected(tmp_path):
    assert [s.url for s in stand_ins_used(f"x = '{RUGGED_URL}'")] == [RUGGED_URL]
    local = tmp_path / "other.csv"
    local.write_text("a,b\n1,2\n")
    paths = write_stand_ins([STAND_INS[RUGGED_URL]], tmp_path)
    prelude.install(paths)
    try:
        assert "rugged" in pd.read_csv(RUGGED_URL, encoding="ISO-8859-1").columns
        assert list(pd.read_csv(str(local)).columns) == ["a", "b"]  # not a registered URL
        assert list(pd.read_csv(io.StringIO("c\n3\n")).columns) == ["c"]
    finally:
        prelude.uninstall()
    assert not hasattr(pd.read_csv, "_tutorial_original")


# ---- the numbers ----


def test_numbers_are_read_in_order_without_names_and_addresses():
    text = "[iteration 0050] loss: 3179.7852\nLine2D at 0x7f00ab tau_0 tensor([-1.5e-3, nan])"
    assert extract_numbers(text)[:3] == [50.0, 3179.7852, -0.0015]
    assert len(extract_numbers(text)) == 4


def test_the_agreement_rule():
    # within 0.1 absolutely or 10 % of the larger magnitude
    assert numbers_close(0.0, 0.1) and not numbers_close(0.0, 0.11)
    assert numbers_close(50.0, 55.0) and not numbers_close(50.0, 56.0)
    assert numbers_close(float("nan"), float("nan")) and not numbers_close(float("nan"), 1.0)
    assert compare_outputs("loss 10.0\nloss 5.0", "loss 10.5\nloss 5.2").summary() == "yes (2)"
    differs = compare_outputs("loss 10.0\nloss 5.0", "loss 10.5\nloss 7.0")
    assert differs.summary() == "no (1 of 2 differ)" and differs.differing == ((1, 5.0, 7.0),)
    assert compare_outputs("1 2", "1 2 3").summary() == "no (count 2 vs 3)"


# ---- the alias package and the subprocess ----


def test_the_alias_package_hands_out_the_engine_modules(tmp_path):
    write_alias_package(tmp_path)
    probe = textwrap.dedent(
        """\
        import engine, pyro
        import pyro.distributions as dist
        from pyro.infer.autoguide import AutoNormal
        import engine.infer.autoguide
        assert pyro is engine and dist is engine.distributions
        assert AutoNormal is engine.infer.autoguide.AutoNormal
        try:
            import pyro.no_such_module
        except ModuleNotFoundError as error:
            print(error)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ENGINE_ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "No module named 'pyro.no_such_module'\n"


def test_a_run_past_its_timeout_is_killed_and_keeps_its_output(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    result = run_script(
        script, python=sys.executable, path_entries=[], cwd=tmp_path, env={}, timeout=1
    )
    assert result.timed_out and not result.ok and result.seconds < 30
    assert result.stdout == "started\n"
    assert result.status().startswith("timed out")


# ---- the whole runner on the tiny notebook ----


@pytest.mark.slow  # four fresh interpreters that import torch and pandas: about 30 s here
def test_the_runner_on_a_tiny_checkout(tmp_path, capsys):
    source = tmp_path / "checkout" / "tutorial" / "source"
    source.mkdir(parents=True)
    nbformat.write(tiny_notebook(), source / "tiny.ipynb")
    failing = tiny_notebook()
    failing.cells.insert(3, nbformat.v4.new_code_cell("from pyro.no_such_module import x"))
    nbformat.write(failing, source / "needs_more.ipynb")
    # A stand-in Pyro for the "pyro" side: a package that only says what it is.
    fake = tmp_path / "fake_pyro" / "pyro"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = 'reference'\n")
    main(
        [
            "--pyro-checkout",
            str(tmp_path / "checkout"),
            "--only",
            "tiny",
            "needs_more",
            "--smoke",
            "--timeout",
            "120",
            "--pyro-path",
            str(tmp_path / "fake_pyro"),
            "--keep",
            str(tmp_path / "work"),
        ]
    )
    report = capsys.readouterr().out
    rows = {line.split(" | ")[0]: line for line in report.splitlines() if line.startswith("| ")}
    tiny = rows["| tiny"]
    assert tiny.count("ok (") == 2 and "yes (" in tiny
    assert "synthetic (SN_y_tot_V2.0.csv)" in tiny
    needs_more = rows["| needs_more"]
    assert "code cell 3: ModuleNotFoundError: No module named 'pyro.no_such_module'" in needs_more
    stdout = (tmp_path / "work" / "tiny" / "engine" / "tiny.stdout").read_text()
    # smoke mode: CI=1 for the tutorial, and the long step counts are shortened
    assert "steps 2 size 10\ntrained 2 2 smoke True\n" in stdout
    assert "(324, " in stdout  # the synthetic sunspot years were read
    assert "tensor([3., 5.])\n" in stdout  # the last expression is shown...
    assert "tensor(4.)" not in stdout  # ...unless a semicolon ends it
    assert "Figure" not in stdout  # a figure is not data


def test_the_report_lists_differing_numbers_and_failures_on_pyro():
    from benchmarks.pyro_tutorials import TutorialResult
    from benchmarks.tutorial_runner.execute import RunResult

    ok = RunResult(True, 1.0, 0, False, "loss 1.0", "", None)
    other = RunResult(True, 2.0, 0, False, "loss 3.0", "", None)
    failed = RunResult(False, 1.0, 1, False, "", "", "code cell 2: ValueError: a | b")
    results = [
        TutorialResult("a", [], [], {"pyro": ok, "engine": other}, compare_outputs("1.0", "3.0")),
        TutorialResult("b", [], [], {"pyro": failed, "engine": failed}, compare_outputs("", "")),
    ]
    report = format_report(results, ("pyro", "engine"))
    assert "- a (1 vs 1 numbers): #0: 1 vs 3" in report
    assert "- b: code cell 2: ValueError: a | b" in report
    assert "code cell 2: ValueError: a \\| b |" in report  # escaped inside the table
