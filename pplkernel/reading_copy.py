"""The reading copy: every notebook executed with the "Python 3 (pplkernel)" kernel and written
as static HTML, with an index in curriculum order, for reading without a kernel.

``python -m pplkernel.reading_copy`` builds ``site/`` from ``notebooks/`` (``--help`` for the
options). Each notebook runs top to bottom under nbclient, as the tests run it, and is exported
by nbconvert. One thing differs from ``jupyter nbconvert --execute --to html``: no widget state
is kept, so each view is shown by its static fallback (the HTML, SVG or PNG every view of this
project carries) instead of a widget view whose script must be fetched from the network and
shows nothing without one.

The order is the curriculum's: notebooks named with a two-digit number first (``00_welcome``,
``01_models``, ...), then the others by name. Each page's title is its first heading.

>>> [path.name for path in curriculum_order([
...     pathlib.Path("mixtures.ipynb"), pathlib.Path("01_models.ipynb"),
...     pathlib.Path("00_welcome.ipynb")])]
['00_welcome.ipynb', '01_models.ipynb', 'mixtures.ipynb']
"""

from __future__ import annotations

import argparse
import html
import pathlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

KERNEL = "pplkernel"
_NUMBERED = re.compile(r"^\d\d_")
_HEADING = re.compile(r"^#+\s+(.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Page:
    """One notebook of the reading copy: where it came from, its HTML file and its title."""

    source: pathlib.Path
    filename: str
    title: str


def curriculum_order(paths: Iterable[pathlib.Path]) -> list[pathlib.Path]:
    """Numbered notebooks first, in their order, then the others by name."""
    return sorted(paths, key=lambda path: (not _NUMBERED.match(path.name), path.name))


def title_of(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The text of the notebook's first markdown heading, or ``fallback``.

    >>> notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Models")])
    >>> title_of(notebook, "01_models")
    'Models'
    """
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            heading = _HEADING.search(cell.source)
            if heading:
                return heading.group(1).strip()
    return fallback


def executed(path: pathlib.Path, timeout: int = 600) -> nbformat.NotebookNode:
    """``path`` run top to bottom in its own folder with the pplkernel kernel, without widget
    state (so exporters show each view's static fallback). A cell that raises stops the build
    with nbclient's error, unless the cell is tagged ``raises-exception``."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=timeout,
        store_widget_state=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def build(notebooks: Sequence[pathlib.Path], out: pathlib.Path, timeout: int = 600) -> list[Page]:
    """Execute ``notebooks`` and write each as ``out/NAME.html``, with ``out/index.html``
    listing them in curriculum order. Returns the pages written."""
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    pages = []
    for path in curriculum_order(notebooks):
        notebook = executed(path, timeout)
        page = Page(path, f"{path.stem}.html", title_of(notebook, path.stem))
        body, _ = exporter.from_notebook_node(
            notebook, resources={"metadata": {"name": page.title}}
        )
        (out / page.filename).write_text(body, encoding="utf-8")
        pages.append(page)
        print(f"{path.name} -> {out / page.filename}", flush=True)
    (out / "index.html").write_text(index_html(pages), encoding="utf-8")
    return pages


def index_html(pages: Sequence[Page]) -> str:
    """The index page: the notebooks in order, each a link to its page (titles escaped).

    >>> "&lt;b&gt;" in index_html([Page(pathlib.Path("x.ipynb"), "x.html", "<b>")])
    True
    """
    items = "\n".join(
        f'<li><a href="{html.escape(page.filename)}">{html.escape(page.title)}</a> '
        f"<small>({html.escape(page.source.name)})</small></li>"
        for page in pages
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>pplkernel notebooks</title>"
        "</head>\n<body><h1>pplkernel notebooks</h1>\n<p>A reading copy: each notebook as it "
        f"ran, with every picture in place.</p>\n<ol class='curriculum'>\n{items}\n</ol>\n"
        "</body></html>\n"
    )


def main(argv: Sequence[str] | None = None) -> list[Page]:
    """The command line: ``python -m pplkernel.reading_copy [FOLDER] [--out site] [--only ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pplkernel.reading_copy",
        description="Execute the notebooks and write a static HTML reading copy with an index.",
    )
    parser.add_argument("folder", nargs="?", default="notebooks", type=pathlib.Path)
    parser.add_argument("--out", default="site", type=pathlib.Path, help="where to write it")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="only these notebooks (file names or stems)"
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    options = parser.parse_args(argv)
    notebooks = sorted(options.folder.glob("*.ipynb"))
    if options.only:
        wanted = set(options.only)
        notebooks = [path for path in notebooks if {path.name, path.stem} & wanted]
        missing = wanted - {name for path in notebooks for name in (path.name, path.stem)}
        if missing:
            parser.error(f"no notebook named {', '.join(sorted(missing))} in {options.folder}")
    if not notebooks:
        parser.error(f"no notebooks in {options.folder}")
    return build(notebooks, options.out, options.timeout)


if __name__ == "__main__":
    main()
