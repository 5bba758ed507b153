"""Pointing at the user's code: the line of a model that raised, and the site it was building.

An error raised inside ``engine`` or ``torch`` is most useful when it names the line of the
model or guide where it started, and, for a distribution whose arguments are invalid, the sample
site that distribution was built for. The distribution is constructed (and checked) before
``sample`` ever sees it, so that site is read off the source: the ``sample(...)`` call that
encloses the failing constructor call, or the ``sample(name, d)`` that uses the variable ``d``
the failing line assigns. Everything here runs only once something went wrong.

How a location is worded can be specialised by a front end (the notebook magics word the lines
of a ``%%model`` cell); see :func:`register_location_namer`.

>>> describe_location("model.py", 12)
'line 12 of model.py'
"""

from __future__ import annotations

import ast
import contextlib
import functools
import linecache
import os
import sys
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Any

import torch

from engine.runtime import Message, Messenger

Location = tuple[str, int]

_LIBRARY_DIRS = tuple(
    os.path.dirname(path) + os.sep for path in (__file__, torch.__file__, contextlib.__file__)
)
_NAMERS: list[Callable[[str, int], str | None]] = []


def is_user_code(filename: str) -> bool:
    """Whether code from ``filename`` is the user's (not the engine's, torch's or Python's).

    >>> is_user_code(__file__), is_user_code("<%%model coin>")
    (False, True)
    """
    return not filename.startswith(_LIBRARY_DIRS)


def register_location_namer(namer: Callable[[str, int], str | None]) -> None:
    """Let ``namer(filename, lineno)`` word the code locations it recognises (returning None for
    the others); the latest registered is asked first. Registering the same namer twice keeps
    one copy."""
    if namer in _NAMERS:
        _NAMERS.remove(namer)
    _NAMERS.insert(0, namer)


def describe_location(filename: str, lineno: int) -> str:
    """A code location in words, e.g. ``line 12 of model.py``."""
    for namer in _NAMERS:
        words = namer(filename, lineno)
        if words:
            return words
    return f"line {lineno} of {filename}"


# -- tracebacks ------------------------------------------------------------------------------


def user_frames(tb: TracebackType | None) -> list[tuple[FrameType, int, int]]:
    """The user's frames of a traceback as ``(frame, lineno, lasti)``, innermost first."""
    found = []
    while tb is not None:
        if is_user_code(tb.tb_frame.f_code.co_filename):
            found.append((tb.tb_frame, tb.tb_lineno, tb.tb_lasti))
        tb = tb.tb_next
    found.reverse()
    return found


def site_being_built(frames: list[tuple[FrameType, int, int]]) -> tuple[str, ast.Call] | None:
    """The name of the sample site whose distribution was being built when these frames (from
    :func:`user_frames`) raised, and its ``sample(...)`` call; None when the source does not say.

    Each frame, innermost first, is asked for the ``sample`` call that encloses the call it was
    making (``sample("y", Normal(loc, s))``), then for a ``sample(name, d)`` after the line
    that assigned ``d``.
    """
    for frame, lineno, lasti in frames:
        found = _site_in_frame(frame, lineno, lasti)
        if found is not None:
            return found
    return None


def _site_in_frame(frame: FrameType, lineno: int, lasti: int) -> tuple[str, ast.Call] | None:
    filename = frame.f_code.co_filename
    tree = _parse(filename, "".join(linecache.getlines(filename, frame.f_globals)))
    if tree is None:
        return None
    try:
        start, end, col, end_col = list(frame.f_code.co_positions())[lasti // 2]
    except (IndexError, ValueError):
        return None
    if start is None or col is None:
        return None
    parents = _parents(tree)
    failing = next(
        (
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and (node.lineno, node.end_lineno, node.col_offset, node.end_col_offset)
            == (start, end, col, end_col)
        ),
        None,
    )
    if failing is None:
        return None
    node: ast.AST = failing
    while node in parents:
        child, node = node, parents[node]
        if _is_sample_call(node) and child is not _name_argument(node):
            name = _site_name(_name_argument(node), frame)
            return None if name is None else (name, node)
        if isinstance(node, ast.stmt):
            return _site_of_assigned(node, parents, frame)
    return None


@functools.lru_cache(maxsize=32)
def _parse(filename: str, source: str) -> ast.Module | None:
    if not source:
        return None
    try:
        return ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return None


@functools.lru_cache(maxsize=32)
def _parents(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _is_sample_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name == "sample" and _name_argument(node) is not None


def _name_argument(call: ast.Call) -> ast.expr | None:
    if call.args and not isinstance(call.args[0], ast.Starred):
        return call.args[0]
    return next((kw.value for kw in call.keywords if kw.arg == "name"), None)


def _fn_argument(call: ast.Call) -> ast.expr | None:
    if len(call.args) > 1:
        return call.args[1]
    return next((kw.value for kw in call.keywords if kw.arg == "fn"), None)


def _site_of_assigned(
    statement: ast.stmt, parents: dict[ast.AST, ast.AST], frame: FrameType
) -> tuple[str, ast.Call] | None:
    """For ``d = Normal(...)``: the first ``sample(name, d)`` after it in the same function."""
    targets = getattr(statement, "targets", None) or [getattr(statement, "target", None)]
    if len(targets) != 1 or not isinstance(targets[0], ast.Name):
        return None
    variable = targets[0].id
    scope: ast.AST = statement
    while scope in parents and not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
        scope = parents[scope]
    uses = [
        node
        for node in ast.walk(scope)
        if _is_sample_call(node)
        and node.lineno > statement.end_lineno
        and isinstance(fn := _fn_argument(node), ast.Name)
        and fn.id == variable
    ]
    for call in sorted(uses, key=lambda node: (node.lineno, node.col_offset)):
        name = _site_name(_name_argument(call), frame)
        if name is not None:
            return name, call
    return None


def _site_name(node: ast.expr | None, frame: FrameType) -> str | None:
    """A site name written as a literal, a variable, or an f-string of variables (read from the
    frame as it was when the error was raised); None for anything that would need evaluating."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.Name):
        value = _lookup(frame, node.id)
        return value if isinstance(value, str) else None
    if isinstance(node, ast.JoinedStr):
        parts = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                parts.append(str(part.value))
            elif (
                isinstance(part, ast.FormattedValue)
                and isinstance(part.value, ast.Name)
                and part.conversion == -1
                and part.format_spec is None
            ):
                value = _lookup(frame, part.value.id, missing := object())
                if value is missing:
                    return None
                parts.append(format(value))
            else:
                return None
        return "".join(parts)
    return None


def _lookup(frame: FrameType, name: str, default: Any = None) -> Any:
    if name in frame.f_locals:
        return frame.f_locals[name]
    return frame.f_globals.get(name, frame.f_builtins.get(name, default))


def observes(call: ast.Call) -> bool:
    """Whether a ``sample(...)`` call passes ``obs=`` (an observed site)."""
    return any(kw.arg == "obs" for kw in call.keywords)


# -- recording where sites are ---------------------------------------------------------------


class SourceLines(Messenger):
    """Record the user's line that called each sample site of a run, as ``lines[name]``.

    A frame walk per site: meant for a diagnostic re-run (finding a NaN), not the hot path.
    Use it as a wrapper, ``SourceLines()(model)``; the walk stops at the wrapper, so a site
    drawn by engine code (an autoguide) gets no line rather than the line that started the run.

    >>> import engine, engine.distributions as dist
    >>> recorder = SourceLines()
    >>> recorder(lambda: engine.sample("x", dist.Normal(0.0, 1.0)))()  # doctest: +ELLIPSIS
    tensor(...)
    >>> list(recorder.lines)
    ['x']
    """

    def __init__(self) -> None:
        self.lines: dict[str, Location] = {}
        self._boundaries: list[FrameType] = []

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._boundaries.append(sys._getframe())
            try:
                with self:
                    return fn(*args, **kwargs)
            finally:
                self._boundaries.pop()

        return recorded

    def _process_sample(self, msg: Message) -> None:
        boundary = self._boundaries[-1] if self._boundaries else None
        for frame in _outward(sys._getframe(1), boundary):
            if is_user_code(frame.f_code.co_filename):
                self.lines[msg["name"]] = (frame.f_code.co_filename, frame.f_lineno)
                return


def _outward(frame: FrameType | None, boundary: FrameType | None) -> Iterator[FrameType]:
    while frame is not None and frame is not boundary:
        yield frame
        frame = frame.f_back


__all__ = [
    "Location",
    "SourceLines",
    "describe_location",
    "is_user_code",
    "observes",
    "register_location_namer",
    "site_being_built",
    "user_frames",
]
