"""Running the notebooks as the tests do: under nbclient with the installed "Python 3
(pplkernel)" kernel, saving the widget state, with each exercise's folded solution run as code
cells right after it (the convention of notebooks/README.md: a markdown cell whose
``<details><summary>Solution</summary>`` block holds fenced ```python code, one cell per fence).
"""

import copy
import pathlib
import re

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"
SOLUTION = re.compile(r"<details><summary>Solution</summary>(.*?)</details>", re.DOTALL)
FENCED = re.compile(r"```python\n(.*?)```", re.DOTALL)


def with_solutions(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook with each solution's code cells inserted after its markdown cell."""
    cells = []
    for cell in copy.deepcopy(notebook.cells):
        cells.append(cell)
        if cell.cell_type == "markdown":
            for block in SOLUTION.findall(cell.source):
                cells.extend(new_code_cell(source.rstrip("\n")) for source in FENCED.findall(block))
    result = copy.deepcopy(notebook)
    result.cells = cells
    return result


def execute(name: str, solutions: bool = True) -> nbformat.NotebookNode:
    """``notebooks/NAME`` run top to bottom in its folder (with its solutions, unless told)."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    if solutions:
        notebook = with_solutions(notebook)
    client = NotebookClient(
        notebook,
        kernel_name="pplkernel",
        timeout=600,
        store_widget_state=True,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return notebook


def printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the code cells printed, in order."""
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
    )


def widget_states(notebook: nbformat.NotebookNode) -> list[dict]:
    """The saved state of every widget of the executed notebook."""
    saved = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    return [model["state"] for model in saved["state"].values()]
