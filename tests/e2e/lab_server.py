"""What the browser tests share: a real ``jupyter lab`` (or Notebook 7) server in its own process
group and directories, running every cell of a notebook from the browser, reading the charts the
monitors draw, and writing small notebooks for the installed "Python 3 (pplkernel)" kernel.

The server's kernels inherit its environment, so ``PYTHONPATH`` decides which checkout they
import. The test modules import this one by name (pytest puts ``tests/e2e`` on the path, as it
does ``tests/notebooks`` for ``notebook_runs``).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A jupyter server (``lab`` or ``notebook``) in its own process group and directories.

    ``settings`` adds user settings, by plugin (``"@jupyterlab/notebook-extension/tracker"``)."""

    def __init__(self, app: str, tmp: pathlib.Path, settings: dict[str, dict] | None = None):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.root = tmp / "root"
        self.root.mkdir()
        shutil.copy(ROOT / "notebooks" / "magics_tour.ipynb", self.root)
        quiet = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false"}}
        quiet["@jupyterlab/apputils-extension/notification"]["checkForUpdates"] = False
        for plugin, values in {**quiet, **(settings or {})}.items():
            path = tmp / "settings" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"))
        env["JUPYTER_RUNTIME_DIR"] = str(tmp / "runtime")
        app_class = "LabApp" if app == "lab" else "JupyterNotebookApp"
        command = [
            sys.executable,
            "-m",
            "jupyterlab" if app == "lab" else "notebook",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--{app_class}.user_settings_dir={tmp / 'settings'}",
            f"--{app_class}.workspaces_dir={tmp / 'workspaces'}",
            f"--{app_class}.expose_app_in_browser=True",
        ]
        if app == "lab":
            command.append("--LabApp.news_url=None")
        self.log = open(tmp / f"{app}.log", "w")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter exited early; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError("jupyter did not start")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def wait_for_kernel(page) -> None:
    """Waits until the open notebook's kernel has started and is idle."""
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
        " === 'idle'",
        timeout=120_000,
    )


def run_cell(page, index: int) -> None:
    """Runs the open notebook's code cell ``index`` alone and waits until it is done (the
    frontend has had the outputs and messages it sent before the kernel went idle)."""
    wait_for_kernel(page)
    page.evaluate(
        """(index) => {
            window.jupyterapp.shell.currentWidget.content.activeCellIndex = index;
            return window.jupyterapp.commands.execute('notebook:run-cell');
        }""",
        index,
    )
    page.wait_for_function(
        """(index) => {
            const panel = window.jupyterapp.shell.currentWidget;
            const cell = panel.content.widgets[index];
            return cell.model.executionCount !== null
                && panel.sessionContext.session.kernel.status === 'idle';
        }""",
        arg=index,
        timeout=120_000,
    )


def run_all_cells(page) -> None:
    wait_for_kernel(page)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # Done when every code cell has an execution count and the kernel is idle again.
    page.wait_for_function(
        """() => {
            const panel = window.jupyterapp.shell.currentWidget;
            const cells = panel.content.widgets.filter((cell) => cell.model.type === 'code');
            const counted = cells.every((cell) => cell.model.executionCount !== null);
            return counted && panel.sessionContext.session.kernel.status === 'idle';
        }""",
        timeout=300_000,
    )


# Reads a chart the monitors draw: each axis (its data attributes, and per tick the value, the
# label and the place along the axis), every plotted point of its polylines, and its size.
READ_CHART = """(svg) => {
    const axis = (name) => {
        const group = svg.querySelector(`g.ppl-axis[data-axis='${name}']`);
        if (!group) return null;
        const texts = [...group.querySelectorAll("text")];
        return {
            scale: group.dataset.scale,
            count: Number(group.dataset.ticks),
            values: texts.map((text) => Number(text.dataset.value)),
            labels: texts.map((text) => text.textContent),
            places: texts.map((text) => Number(text.getAttribute(name))),
        };
    };
    const points = [...svg.querySelectorAll("polyline")].flatMap((line) =>
        line.getAttribute("points").split(" ").filter(Boolean).map((p) => p.split(",").map(Number))
    );
    const size = { x: Number(svg.getAttribute("width")), y: Number(svg.getAttribute("height")) };
    return { x: axis("x"), y: axis("y"), points, size };
}"""


def check_chart(svg, x_range: tuple[int, int] | None = None) -> dict:
    """The chart has drawn x and y axes with labelled ticks placed by their values, and every
    plotted point lies between the first and the last tick of both axes: the ticks' values
    bracket the plotted data. ``x_range``, when the test knows it, is checked by value too."""
    chart = svg.evaluate(READ_CHART)
    assert chart["points"], "nothing plotted"
    for name in ("x", "y"):
        axis = chart[name]
        assert axis is not None, f"no {name} axis"
        assert axis["count"] == len(axis["values"]) >= 2 and all(axis["labels"])
        scale = math.log10 if axis["scale"] == "log" else float
        ends = [scale(axis["values"][0]), scale(axis["values"][-1])]
        first, last = axis["places"][0], axis["places"][-1]
        assert all(0 <= place <= chart["size"][name] for place in axis["places"]), "off the chart"
        for value, place in zip(axis["values"], axis["places"], strict=True):
            expected = first + (scale(value) - ends[0]) / (ends[1] - ends[0]) * (last - first)
            assert abs(place - expected) < 0.2, f"{name} tick {value} is misplaced"
        low, high = sorted((first, last))
        coordinate = 0 if name == "x" else 1
        assert all(low - 0.1 <= point[coordinate] <= high + 0.1 for point in chart["points"])
    assert chart["x"]["places"][0] < chart["x"]["places"][-1]
    assert chart["y"]["places"][0] > chart["y"]["places"][-1]  # the lowest value at the bottom
    if x_range is not None:
        assert chart["x"]["values"][0] <= x_range[0] and chart["x"]["values"][-1] >= x_range[1]
    return chart


def write_notebook(path: pathlib.Path, cells: list[str]) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    notebook = new_notebook(cells=[new_code_cell(cell) for cell in cells])
    notebook.metadata["kernelspec"] = {"name": "pplkernel", "display_name": "Python 3 (pplkernel)"}
    nbformat.write(notebook, path)


def shutdown_kernels(server: Server) -> None:
    """Ends every session and kernel ``server`` runs, so that tests sharing one server do not
    pile up idle kernels (each holds torch in memory)."""
    for kind in ("sessions", "kernels"):
        with urllib.request.urlopen(server.url(f"api/{kind}"), timeout=10) as response:
            running = json.load(response)
        for item in running:
            url = server.url(f"api/{kind}/{item['id']}")
            urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30).close()


# The box an element's content fills: its own left, top and bottom, and the right edge of the
# farthest text, chart, image or control inside (a view's blocks are as wide as the output area,
# its content often narrower).
CONTENT_BOX = """(el) => {
    const own = el.getBoundingClientRect();
    const rights = [];
    const texts = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    while (texts.nextNode()) {
        if (!texts.currentNode.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(texts.currentNode);
        rights.push(range.getBoundingClientRect().right);
    }
    for (const part of el.querySelectorAll("svg, img, canvas, input, button, .noUi-target")) {
        const box = part.getBoundingClientRect();
        if (box.width > 0 && box.height > 0) rights.push(box.right);
    }
    const width = Math.min(own.width, Math.ceil(Math.max(...rights) - own.left) + 6);
    return { x: own.left, y: own.top, width, height: own.height };
}"""


def save_view(view, folder: pathlib.Path, name: str) -> pathlib.Path:
    """A screenshot of the element ``view`` (a Playwright locator, scrolled into sight) as
    ``folder/name.png``, cropped to what the element shows; it must fit the viewport."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    view.scroll_into_view_if_needed()
    box = view.evaluate(CONTENT_BOX)
    viewport = view.page.viewport_size
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], f"{name}: too tall"
    view.page.screenshot(path=str(path), clip=box, animations="disabled")
    return path
