"""The JupyterLab extension Jupyter loads is the one built from the current sources.

``pip install -e .`` builds labextension/ into labextension/dist and copies it into
``share/jupyter/labextensions``; a standard build skips the build when labextension/dist exists,
and neither notices a later edit of the TypeScript or CSS. This test does: it fails when the
sources changed after the build, or the installed copy is not that build.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "labextension"
NAME = json.loads((PACKAGE / "package.json").read_text())["name"]
INSTALLED = pathlib.Path(sys.prefix) / "share" / "jupyter" / "labextensions" / NAME
REBUILD = "rebuild and reinstall it: pip install -e '.[test]'"


def _sources() -> list[pathlib.Path]:
    files = [PACKAGE / name for name in ("package.json", "tsconfig.json", "yarn.lock")]
    for folder in ("src", "style"):
        files += [path for path in (PACKAGE / folder).rglob("*") if path.is_file()]
    return files


def _build_of(package_json: pathlib.Path) -> dict:
    """What ``jupyter labextension build`` recorded: the hashed file names of that build."""
    return json.loads(package_json.read_text())["jupyterlab"]["_build"]


def test_the_installed_labextension_is_built_from_the_current_sources():
    built = PACKAGE / "dist" / "package.json"
    assert built.exists(), f"labextension/dist is missing: {REBUILD}"
    newest = max(_sources(), key=lambda path: path.stat().st_mtime)
    assert built.stat().st_mtime >= newest.stat().st_mtime, (
        f"{newest.relative_to(ROOT)} changed after the extension was built: {REBUILD}"
    )
    installed = INSTALLED / "package.json"
    assert installed.exists(), f"{NAME} is not installed in {sys.prefix}: {REBUILD}"
    assert _build_of(installed) == _build_of(built), (
        f"the installed {NAME} is an older build: {REBUILD}"
    )
    assert (INSTALLED / "install.json").exists()
