"""A Jupyter notebook as one plain Python script that runs its code cells in order.

What a notebook does that a script does not is handled here, and every change is noted in the
script next to its cell:

- IPython syntax goes through IPython's own input transformer, then: ``%time``/``%timeit`` keep
  their statement; every other line magic (``%matplotlib inline``, ``%reset``, ``%config``) and
  every shell line (``!pip install ...``) is dropped. The cell magics ``%%time``, ``%%timeit`` and
  ``%%capture`` keep their body; a cell under any other cell magic is dropped whole.
- A cell whose last statement is an expression shows its value, as Jupyter does, unless a ``;``
  ends it: the script calls the prelude's ``show`` on it (which prints only plain data).
- ``assert pyro.__version__...`` is dropped: the tutorials pin the release their docs were built
  with, which is neither the Pyro reference nor the engine.
- ``smoke=True`` shortens the tutorials that have no smoke mode of their own: an integer literal of
  100 or more bound to a well-known step-count name (``num_steps``, ``n_steps``, ``n_iter``, ...;
  an assignment, a parameter default or a keyword argument) becomes 2, and ``num_samples`` /
  ``warmup_steps`` of 100 or more given to ``MCMC(...)`` become 50. Smaller literals are left alone:
  in Pyro's tutorials they are sizes (the enumeration tutorial's ``num_steps = 10`` is a sequence
  length), not training lengths. Names in ``keep`` are never shortened (for a tutorial whose later
  code needs the full length).
- A cell that does not parse becomes ``raise SyntaxError(...)``, so the run stops there as
  "Run all" in Jupyter would.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager

STEP_NAMES = frozenset(
    {
        "num_steps",
        "n_steps",
        "steps",
        "max_steps",
        "num_iterations",
        "n_iterations",
        "num_iters",
        "n_iters",
        "n_iter",
        "num_epochs",
        "n_epochs",
    }
)
"""Names whose integer literal is a training length that ``smoke=True`` shortens."""

SMOKE_THRESHOLD = 100
"""Literals below this are left alone: in the tutorials they are sizes, not training lengths."""

SMOKE_STEPS = 2
"""What a step count becomes in smoke mode (the value Pyro's own smoke mode uses)."""

SMOKE_MCMC = 50
"""What ``MCMC(num_samples=..., warmup_steps=...)`` literals become in smoke mode."""

MCMC_COUNT_NAMES = frozenset({"num_samples", "warmup_steps"})

KEPT_CELL_MAGICS = frozenset({"time", "timeit", "capture"})
KEPT_LINE_MAGICS = frozenset({"time", "timeit"})

PRELUDE_MODULE = "_tutorial_prelude"
SHOW_NAME = "_tutorial_show"


@dataclass(frozen=True)
class CellScript:
    """One code cell as plain Python, with what the conversion changed in it.

    >>> CellScript(1, "x = 1\\n", ()).code
    'x = 1\\n'
    """

    number: int
    code: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Script:
    """A converted notebook: its source and where each code cell starts.

    >>> s = Script("a\\nb\\nc\\n", ((1, 1), (3, 2)), ())
    >>> s.cell_at(2), s.cell_at(3), s.cell_at(0)
    (1, 2, None)
    """

    source: str
    cell_lines: tuple[tuple[int, int], ...]
    """``(first line in source, code cell number)`` for each cell, in order."""
    notes: tuple[str, ...]

    def cell_at(self, line: int) -> int | None:
        """The code cell number that a line of the script belongs to (``None`` before the first)."""
        found = None
        for first, number in self.cell_lines:
            if first > line:
                break
            found = number
        return found


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


class _Positions:
    """Maps ``ast`` positions (1-based line, UTF-8 byte column) to offsets in the text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, byte_col: int) -> int:
        line = self.lines[lineno - 1] if lineno - 1 < len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode()[:byte_col].decode(errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end


def _ipython_call(node: ast.AST) -> tuple[str, list[Any]] | None:
    """``("run_line_magic", ["time", "x = 1"])`` for ``get_ipython().run_line_magic(...)``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = node.func.value
    if not (
        isinstance(owner, ast.Call)
        and isinstance(owner.func, ast.Name)
        and owner.func.id == "get_ipython"
    ):
        return None
    args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
    return node.func.attr, args


def _magic_edits(tree: ast.Module, pos: _Positions, notes: list[str]) -> list[_Edit]:
    edits = []
    for node in ast.walk(tree):
        value = node.value if isinstance(node, ast.Expr | ast.Assign) else None
        call = _ipython_call(value) if value is not None else None
        if call is None:
            continue
        method, args = call
        start, end = pos.span(node)
        if method == "run_line_magic" and args and args[0] in KEPT_LINE_MAGICS:
            statement = str(args[1]).strip()
            edits.append(_Edit(start, end, statement or "pass"))
            notes.append(f"%{args[0]} dropped, its statement kept")
        elif method == "run_line_magic" and args:
            edits.append(_Edit(start, end, "pass"))
            notes.append(f"dropped %{args[0]} {args[1]}".rstrip())
        elif method in ("system", "getoutput") and args:
            edits.append(_Edit(start, end, "pass"))
            notes.append(f"dropped shell line !{args[0]}")
        else:
            edits.append(_Edit(start, end, "pass"))
            notes.append(f"dropped IPython call {method}")
    return edits


def _version_assert_edits(tree: ast.Module, pos: _Positions, notes: list[str]) -> list[_Edit]:
    edits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and "__version__" in ast.unparse(node.test):
            edits.append(_Edit(*pos.span(node), "pass"))
            notes.append(f"dropped version check: {ast.unparse(node)}")
    return edits


def _big_int(node: ast.AST | None, threshold: int) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value >= threshold


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _smoke_edits(
    tree: ast.Module, pos: _Positions, notes: list[str], keep: Collection[str]
) -> list[_Edit]:
    """Shorten step-count literals (see the module docstring for the rule)."""
    bindings: list[tuple[str, ast.AST | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in STEP_NAMES:
                bindings.append((target.id, node.value, SMOKE_STEPS))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id in STEP_NAMES:
                bindings.append((node.target.id, node.value, SMOKE_STEPS))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            positional = node.args.posonlyargs + node.args.args
            defaults = node.args.defaults
            with_defaults = positional[len(positional) - len(defaults) :]
            for arg, default in zip(with_defaults, defaults, strict=True):
                if arg.arg in STEP_NAMES:
                    bindings.append((arg.arg, default, SMOKE_STEPS))
            for arg, default in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True):
                if arg.arg in STEP_NAMES:
                    bindings.append((arg.arg, default, SMOKE_STEPS))
        elif isinstance(node, ast.Call):
            is_mcmc = _call_name(node) == "MCMC"
            for keyword in node.keywords:
                if keyword.arg in STEP_NAMES:
                    bindings.append((keyword.arg, keyword.value, SMOKE_STEPS))
                elif is_mcmc and keyword.arg in MCMC_COUNT_NAMES:
                    bindings.append((f"MCMC {keyword.arg}", keyword.value, SMOKE_MCMC))
    edits = []
    for name, value, smaller in bindings:
        if name.split()[-1] in keep:
            continue
        threshold = max(SMOKE_THRESHOLD, smaller + 1)
        if _big_int(value, threshold):
            assert isinstance(value, ast.Constant)
            edits.append(_Edit(*pos.span(value), str(smaller)))
            notes.append(f"smoke: {name} {value.value} -> {smaller}")
    return edits


def _show_edits(tree: ast.Module, text: str, pos: _Positions) -> list[_Edit]:
    """Wrap the cell's last expression in ``_tutorial_show(...)``, as Jupyter displays it."""
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return []
    last = tree.body[-1]
    if _ipython_call(last.value) is not None:
        return []
    if isinstance(last.value, ast.Call) and _call_name(last.value) == "print":
        return []  # shows None: nothing to wrap
    start, end = pos.span(last)
    if text[end:].split("\n", 1)[0].lstrip().startswith(";"):
        return []
    # `a, b` unparenthesised would become two arguments: show the tuple, as Jupyter does.
    bare_tuple = isinstance(last.value, ast.Tuple) and text[start] != "("
    opening, closing = ("(", ")") if bare_tuple else ("", "")
    return [_Edit(start, start, f"{SHOW_NAME}({opening}"), _Edit(end, end, f"{closing})")]


def _apply(text: str, edits: list[_Edit]) -> str:
    # Later edits first, so the offsets of earlier ones stay valid; an insertion at an offset where
    # a replacement also starts goes last, so it lands before the replaced text.
    for edit in sorted(edits, key=lambda e: (e.start, e.end > e.start), reverse=True):
        text = text[: edit.start] + edit.text + text[edit.end :]
    return text


def convert_cell(
    source: str, number: int, *, smoke: bool = False, keep: Collection[str] = ()
) -> CellScript:
    """One code cell's source as plain Python (see the module docstring for every rule).

    >>> cell = convert_cell("%matplotlib inline\\nx = 2\\nx * 3", 1)
    >>> print(cell.code, end="")
    pass
    x = 2
    _tutorial_show(x * 3)
    >>> cell.notes
    ('dropped %matplotlib inline',)
    """
    notes: list[str] = []
    first, _, rest = source.lstrip().partition("\n")
    if first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        if magic not in KEPT_CELL_MAGICS:
            return CellScript(number, "pass\n", (f"dropped the whole cell under %%{magic}",))
        notes.append(f"%%{magic} dropped, the cell's body kept")
        source = rest
    try:
        text = TransformerManager().transform_cell(source)
        tree = ast.parse(text)
    except SyntaxError as error:
        message = f"code cell {number} does not parse: {error.msg} (line {error.lineno})"
        return CellScript(number, f"raise SyntaxError({message!r})\n", (message,))
    pos = _Positions(text)
    edits = _magic_edits(tree, pos, notes) + _version_assert_edits(tree, pos, notes)
    if smoke:
        edits += _smoke_edits(tree, pos, notes, keep)
    edits += _show_edits(tree, text, pos)
    code = _apply(text, edits)
    return CellScript(number, code if code.endswith("\n") else code + "\n", tuple(notes))


def code_cells(notebook: Mapping[str, Any]) -> list[str]:
    """The sources of a notebook's code cells, in order (nbformat 4 JSON or ``NotebookNode``).

    >>> code_cells({"cells": [{"cell_type": "markdown", "source": "# hi"},
    ...                       {"cell_type": "code", "source": ["x = 1\\n", "y = 2"]}]})
    ['x = 1\\ny = 2']
    """
    sources = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = cell["source"]
        sources.append("".join(source) if isinstance(source, list) else source)
    return sources


def notebook_to_script(
    notebook: Mapping[str, Any],
    *,
    title: str = "notebook",
    smoke: bool = False,
    keep: Collection[str] = (),
    url_map: Mapping[str, str] | None = None,
) -> Script:
    """The whole notebook as one script; ``url_map`` sends those URLs to local files.

    ``smoke`` and ``keep`` shorten step counts as ``convert_cell`` does (module docstring).

    The script imports the prelude module (``benchmarks/tutorial_runner/prelude.py``, copied
    beside it as ``_tutorial_prelude.py``), which patches the downloads and shows cell values.

    >>> nb = {"cells": [{"cell_type": "code", "source": "n_steps = 2000\\nprint(n_steps)"}]}
    >>> script = notebook_to_script(nb, smoke=True)
    >>> "n_steps = 2\\n" in script.source, script.notes
    (True, ('code cell 1: smoke: n_steps 2000 -> 2',))
    """
    header = [
        f"# {title}: converted from a Jupyter notebook by benchmarks/pyro_tutorials.py",
        f"import {PRELUDE_MODULE}",
        f"{PRELUDE_MODULE}.install({dict(url_map or {})!r})",
        f"from {PRELUDE_MODULE} import show as {SHOW_NAME}",
        "",
    ]
    lines = list(header)
    cell_lines = []
    notes = []
    for number, source in enumerate(code_cells(notebook), start=1):
        cell = convert_cell(source, number, smoke=smoke, keep=keep)
        lines.append(f"# ---- code cell {number} ----")
        lines.extend(f"# runner: {note}" for note in cell.notes)
        notes.extend(f"code cell {number}: {note}" for note in cell.notes)
        cell_lines.append((len(lines) + 1, number))
        lines.extend(cell.code.rstrip("\n").split("\n"))
        lines.append("")
    return Script("\n".join(lines) + "\n", tuple(cell_lines), tuple(notes))
