"""The runner of Pyro's unit tests (``benchmarks/pyro_unit_tests.py``), on a small checkout written
here in the shape of Pyro's: a ``tests/`` package with a conftest that imports ``pyro``, files that
pass, fail, skip, fail to import and outlast the timeout."""

import json
import textwrap
from pathlib import Path

import pytest

from benchmarks.pyro_unit_tests import area_files, main

FILES = {
    "tests/__init__.py": "",
    "tests/conftest.py": "import pyro\n\n\ndef pytest_runtest_setup(item):\n"
    "    pyro.clear_param_store()\n",
    "tests/infer/__init__.py": "",
    "tests/infer/test_mixed.py": """
        import pytest
        import pyro


        def test_alias_is_the_engine():
            import engine
            assert pyro is engine and pyro.infer.SVI is engine.infer.SVI

        @pytest.mark.parametrize("value", [1, 2, 3])
        def test_sometimes(value):
            assert value != 3, "three is refused"

        @pytest.mark.skip(reason="not here")
        def test_skipped():
            pass
    """,
    "tests/poutine/__init__.py": "",
    "tests/poutine/test_missing.py": "from pyro.poutine.no_such_module import thing\n",
    "tests/distributions/__init__.py": "",
    "tests/distributions/test_all_skipped.py": """
        import pytest

        pytestmark = pytest.mark.skip(reason="needs a GPU")

        def test_one():
            pass
    """,
    "tests/infer/mcmc/test_mcmc_util.py": "def test_internal():\n    pass\n",
    "tests/test_primitives.py": "def test_fine():\n    pass\n",
    "tests/nn/test_elsewhere.py": "def test_not_an_area():\n    pass\n",
}


def write_checkout(root: Path) -> Path:
    for relative, text in FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_files_are_the_areas_less_the_internals(tmp_path):
    checkout = write_checkout(tmp_path / "pyro")
    assert area_files(checkout, ()) == [
        "tests/distributions/test_all_skipped.py",
        "tests/infer/test_mixed.py",
        "tests/poutine/test_missing.py",
        "tests/test_primitives.py",
    ]
    assert area_files(checkout, ["tests/poutine"]) == ["tests/poutine/test_missing.py"]


def test_rates_per_file_and_their_mean(tmp_path, capsys):
    checkout = write_checkout(tmp_path / "pyro")
    report = tmp_path / "report.json"
    main(
        ["--pyro-checkout", str(checkout), "--timeout", "600", "--jobs", "2", "--json", str(report)]
    )
    table = capsys.readouterr().out
    assert "| tests/infer/test_mixed.py | 75% (3/4) |" in table
    assert "| tests/poutine/test_missing.py | import fails |" in table
    assert "| tests/distributions/test_all_skipped.py | n/a (0/0) |" in table
    # (0.75 + 0 + 1) / 3 files in which something ran
    assert "engine: mean per-file pass rate 58.3% over 3 files" in table
    counts = {r["path"]: r for r in json.loads(report.read_text())["engine"]}
    assert counts["tests/infer/test_mixed.py"]["skipped"] == 1
    assert counts["tests/infer/test_mixed.py"]["first_failures"] == [
        "tests/infer/test_mixed.py::test_sometimes[3]: AssertionError: three is refused"
    ]
    assert counts["tests/poutine/test_missing.py"]["first_failures"][0].endswith(
        "No module named 'pyro.poutine.no_such_module'"
    )


@pytest.mark.slow  # waits for the 45 s timeout
def test_a_file_cut_off_by_the_timeout_counts_its_unrun_tests_as_failed(tmp_path, capsys):
    checkout = tmp_path / "pyro"
    (checkout / "tests").mkdir(parents=True)
    (checkout / "tests" / "test_primitives.py").write_text(
        "import time\n\n\ndef test_quick():\n    pass\n\n\n"
        "def test_forever():\n    time.sleep(3600)\n\n\ndef test_never_reached():\n    pass\n"
    )
    main(["--pyro-checkout", str(checkout), "--timeout", "45"])
    table = capsys.readouterr().out
    assert "| tests/test_primitives.py | 33% (1/3) (timed out) |" in table


INTERNALS_FILE = """
import pytest
from pyro.ops.gaussian import Gaussian
from pyro.poutine.runtime import _NOT_IN_THE_ENGINE
import pyro


def test_public():
    assert pyro.poutine.trace is not None


def test_calls_an_internal():
    Gaussian(1.0)


def test_checks_against_an_internal():
    assert not isinstance(1.0, _NOT_IN_THE_ENGINE)


def test_a_private_name_read_in_a_function_is_missing():
    with pytest.raises(AttributeError):
        pyro.poutine.runtime._ALSO_NOT_IN_THE_ENGINE
"""


@pytest.mark.parametrize("stand_ins", [True, False])
def test_pyro_internals_get_stand_ins_that_fail_the_tests_using_them(tmp_path, capsys, stand_ins):
    checkout = tmp_path / "pyro"
    (checkout / "tests").mkdir(parents=True)
    (checkout / "tests" / "test_primitives.py").write_text(INTERNALS_FILE)
    report = tmp_path / "report.json"
    flags = [] if stand_ins else ["--without-stand-ins"]
    main(["--pyro-checkout", str(checkout), "--json", str(report), *flags])
    table = capsys.readouterr().out
    (result,) = json.loads(report.read_text())["engine"]
    if stand_ins:
        assert "| tests/test_primitives.py | 50% (2/4) |" in table
        assert result["stand_ins"] == [
            "pyro.ops.gaussian",
            "pyro.ops.gaussian.Gaussian",
            "pyro.poutine.runtime._NOT_IN_THE_ENGINE",
        ]
        assert "PyroInternal: pyro.ops.gaussian.Gaussian is a Pyro internal" in " ".join(
            result["first_failures"]
        )
    else:
        assert "| tests/test_primitives.py | import fails |" in table
        assert result["stand_ins"] == []
