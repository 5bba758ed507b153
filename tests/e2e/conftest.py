"""The headless Chromium every browser test drives (Debian's, never Playwright's download), a
JupyterLab server shared by the tests of a module, and where the tests save their screenshots.

Screenshots go to the test's temporary folder, so a plain run leaves the git tree as it was;
``PPLKERNEL_SCREENSHOTS=docs pytest -m browser tests/e2e`` writes them into ``docs/`` (any folder,
relative to the repository root) for the README's pictures.
"""

import os
import pathlib

import pytest
from lab_server import ROOT, Server

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One ``jupyter lab`` for a whole test module (starting one takes seconds); each test opens
    its own notebook and ends the kernels it started (``lab_server.shutdown_kernels``). Every
    cell is rendered, not only those in sight, so a locator finds a view below the fold."""
    tracker = {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"}}
    server = Server("lab", tmp_path_factory.mktemp("lab"), settings=tracker)
    yield server
    server.stop()


@pytest.fixture
def screenshots(tmp_path) -> pathlib.Path:
    """The folder a test saves its views' screenshots in: ``$PPLKERNEL_SCREENSHOTS`` (relative to
    the repository root) when set, else the test's own temporary folder."""
    folder = os.environ.get("PPLKERNEL_SCREENSHOTS")
    return ROOT / folder if folder else tmp_path / "screenshots"
