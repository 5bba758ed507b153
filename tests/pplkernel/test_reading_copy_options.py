"""The reading copy's command line refuses what it cannot build, naming it (the build itself is
tested in a real browser: tests/e2e/test_reading_copy.py)."""

import nbformat
import pytest

from pplkernel.reading_copy import main


def test_an_unknown_notebook_name_is_refused_by_name(tmp_path, capsys):
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "00_welcome.ipynb")
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "site"), "--only", "01_modles"])
    assert "no notebook named 01_modles" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_an_empty_folder_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "site")])
    assert "no notebooks in" in capsys.readouterr().err
