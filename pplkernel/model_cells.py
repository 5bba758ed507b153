"""Turning a ``%%model`` / ``%%guide`` cell into a Python function.

Two forms (shared/DESIGN.md section 4):

* ``%%model NAME(ARGS)``: the cell body is the body of ``def NAME(ARGS):``;
* ``%%model`` alone: the cell holds ordinary code that defines one function (the last one it
  defines is the model).

>>> header = parse_header("coin(flips, prior=1.0)")
>>> header.name, header.params
('coin', 'flips, prior=1.0')
>>> fn = function_from_body(header, "return prior * len(flips)", {})
>>> fn([1, 0, 1])
3.0
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import linecache
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class CellError(ValueError):
    """A ``%%model`` or ``%%guide`` cell that does not define a function; the message says why."""


@dataclass(frozen=True)
class Header:
    """``NAME(ARGS)`` from the magic line; ``name`` is None for the plain-``def`` form."""

    name: str | None
    params: str


def parse_header(line: str) -> Header:
    """Read the magic line: ``NAME(ARGS)``, ``NAME`` (no arguments) or nothing.

    >>> parse_header("  "), parse_header("model")
    (Header(name=None, params=''), Header(name='model', params=''))
    """
    text = line.strip()
    if not text:
        return Header(None, "")
    name, paren, rest = text.partition("(")
    name = name.strip()
    if not name.isidentifier():
        raise CellError(
            f"'{name}' is not a valid function name. Write the magic line as `%%model NAME(ARGS)`, "
            "for example `%%model coin(flips)`."
        )
    if paren and not rest.rstrip().endswith(")"):
        raise CellError(f"The argument list of '{name}' is not closed: write `{name}({rest})`.")
    params = rest.rstrip()[:-1] if paren else ""
    try:
        ast.parse(f"def {name}({params}): pass")
    except SyntaxError as error:
        raise CellError(
            f"The arguments of '{name}' do not parse: ({params}): {error.msg}."
        ) from None
    return Header(name, params)


def function_from_body(
    header: Header, body: str, namespace: dict[str, Any], kind: str = "model"
) -> Callable:
    """Define ``def NAME(ARGS):`` with the cell ``body`` in ``namespace`` and return it (its
    code is named ``<%%model NAME>``, or ``<%%guide NAME>``, in tracebacks)."""
    indented = textwrap.indent(textwrap.dedent(body) or "pass", "    ")
    source = f"def {header.name}({header.params}):\n{indented}\n"
    code = _compile(source, f"<%%{kind} {header.name}>")
    exec(code, namespace)
    fn = namespace[header.name]
    fn.__pplkernel_source__ = source
    return fn


def function_from_cell(cell: str, namespace: dict[str, Any]) -> Callable:
    """Run a cell of ordinary code in ``namespace``; return the last function it defines."""
    code = _compile(cell, "<%%model cell>")
    tree = ast.parse(cell)
    names = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    if not names:
        raise CellError(
            "This cell defines no function. Either write `%%model NAME(ARGS)` on the first line "
            "and the model's body below it, or define the model with `def NAME(...):` in the cell."
        )
    exec(code, namespace)
    fn = namespace[names[-1]]
    fn.__pplkernel_source__ = cell
    return fn


def _compile(source: str, filename: str):
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as error:
        where = f"line {error.lineno}" if error.lineno else "the cell"
        raise CellError(f"Syntax error at {where}: {error.msg}.") from None
    # Like IPython for its cells: tracebacks, and the engine's search for the site a failing
    # line was building, can then read the cell's source.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    return code


def source_digest(fn: Callable) -> str:
    """A fingerprint of a function's source: equal bodies give equal digests.

    >>> def f(x):
    ...     return x
    >>> len(source_digest(f))
    16
    """
    source = getattr(fn, "__pplkernel_source__", None)
    if source is None:
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            source = repr(fn)
    return hashlib.sha256(source.encode()).hexdigest()[:16]
