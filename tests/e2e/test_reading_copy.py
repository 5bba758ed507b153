"""The reading copy (``python -m pplkernel.reading_copy``): notebooks executed with the real
kernel, written as static HTML with an index, and read in headless Chromium with no kernel and no
network: every page shows its pictures (the views' static fallbacks, the figures' PNGs), no raw
widget JSON, no error in a cell."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIRST = """\
data = torch.tensor([1.0, 0.0, 1.0, 1.0])
"""
MODEL = """\
%%model coin(data)
p = ppl.sample("p", dist.Beta(2.0, 2.0))
with ppl.plate("flips", len(data)):
    ppl.sample("obs", dist.Bernoulli(p), obs=data)
"""
FIGURE = """\
import matplotlib.pyplot as plt
plt.plot([0, 1], [1, 0])
plt.show()
"""


def _notebook(path: pathlib.Path, title: str, cells: list[str]) -> None:
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(f"# {title}")]
        + [nbformat.v4.new_code_cell(source) for source in cells],
        metadata={"kernelspec": {"name": "pplkernel", "display_name": "Python 3 (pplkernel)"}},
    )
    nbformat.write(notebook, path)


def test_the_reading_copy_shows_every_picture_without_a_kernel(browser, tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    fitting = [FIRST, MODEL, "%svi coin --steps 30"]
    _notebook(folder / "01_second.ipynb", "Fitting <a> coin", fitting)
    _notebook(folder / "00_first.ipynb", "Looking", [FIRST, MODEL, "%trace coin", FIGURE])
    out = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pplkernel.reading_copy", str(folder), "--out", str(out)],
        check=True,
        timeout=600,
    )
    page = browser.new_page()
    page.goto((out / "index.html").as_uri())
    links = page.locator("ol.curriculum a")
    assert links.all_inner_texts() == ["Looking", "Fitting <a> coin"]  # in order, as text
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert hrefs == ["00_first.html", "01_second.html"]
    for href in hrefs:
        page.goto((out / href).as_uri())
        page.wait_for_load_state("load")
        text = page.inner_text("body")
        assert "model_id" not in text and "widget-view" not in text
        assert page.locator(".jp-OutputArea-output[data-mime-type*='stderr']").count() == 0
        assert "Traceback" not in text
        # Each %%model cell shows the inspector's fallback with its plate diagram.
        assert page.locator(".ppl-inspector svg.ppl-plate-diagram g.ppl-node").count() >= 2
        images = page.evaluate(
            "() => [...document.images].map(image => image.complete && image.naturalWidth > 0)"
        )
        assert all(images)
        if href == "00_first.html":
            assert len(images) == 1  # the matplotlib figure, as a PNG
            assert page.locator(".ppl-inspector").count() == 2  # %%model and %trace
        else:
            assert "SVI run 'coin': 30 steps" in text
            assert page.locator("svg").count() >= 2  # the ELBO chart and the diagram
    page.close()
