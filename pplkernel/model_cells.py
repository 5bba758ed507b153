"""Turning a ``%%model`` / ``%%guide`` cell into a Python function.

Two forms (shared/DESIGN.md section 4):

* ``%%model NAME(ARGS)``: the cell body is the body of ``def NAME(ARGS):``;
* ``%%model`` alone: the cell holds ordinary code that defines one function (the last one it
  defines is the model).

In both forms the compiled code numbers its lines as the cell body does (line 1 is the first
line below the magic line), so a syntax error and a runtime error on the same line report the
same number. The code is named ``<%%model NAME>`` (or ``<%%guide NAME>``): a traceback frame
with such a name is a cell line, see :func:`pplkernel.magics.engine_errors`.

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
import io
import keyword
import linecache
import re
import textwrap
import tokenize
import types
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pplkernel.errors import CellError, MagicError

_FORM = "the magic line takes `NAME(ARGS)`, for example `coin(flips)`"


@dataclass(frozen=True)
class Header:
    """``NAME(ARGS)`` from the magic line; ``name`` is None for the plain-``def`` form."""

    name: str | None
    params: str


def parse_header(line: str) -> Header:
    """Read the magic line: ``NAME(ARGS)``, ``NAME`` (no arguments) or nothing.

    >>> parse_header("  "), parse_header("model")
    (Header(name=None, params=''), Header(name='model', params=''))
    >>> parse_header("coin(flips) extra")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pplkernel.errors.CellError: Unexpected 'extra' after `coin(flips)` on the magic line...
    """
    text = line.strip()
    if not text:
        return Header(None, "")
    head = re.match(r"[^\s(]*", text).group()
    rest = text[len(head) :].strip()
    name = _function_name(head, rest)
    if not rest:
        return Header(name, "")
    if not rest.startswith("("):
        raise CellError(
            f"Unexpected '{rest}' after the name '{name}' on the magic line: the arguments go "
            f"in parentheses, `{name}({rest.strip(':').strip()})`."
        )
    end = _closing_paren(rest)
    if end is None:
        fix = f" Write `{name}{rest})`." if ")" not in rest else ""
        raise CellError(
            f"The argument list of '{name}' is not closed on the magic line `{text}`: every "
            f"'(', '[' and '{{' needs its partner.{fix}"
        )
    after = rest[end:].strip()
    if after == ":":
        raise CellError(
            f"Drop the ':' at the end of the magic line: write `{name}{rest[:end]}` (the "
            "magic line is not a `def`)."
        )
    if after:
        raise CellError(
            f"Unexpected '{after}' after `{name}{rest[:end]}` on the magic line: it holds only "
            "NAME(ARGS); the code goes in the cell below it."
        )
    params = rest[1 : end - 1]
    _check_params(name, params)
    return Header(name, params)


def _function_name(head: str, rest: str) -> str:
    """The model's name from the magic line, checked (and NFKC-normalised, as Python does)."""
    if not head:
        raise CellError(f"The name is missing before '(' on the magic line: {_FORM}.")
    if head.startswith("@"):
        raise CellError(
            f"A decorator ('{head}') cannot go on the magic line. Use the plain form: the "
            f"magic alone on the first line, then `{head}` and `def NAME(ARGS):` in the cell."
        )
    if head == "def" and rest:
        raise CellError(
            f"Leave out `def` (and the ':'): {_FORM}. Or put the whole `def` in the cell, "
            "below the magic alone."
        )
    if keyword.iskeyword(head):
        raise CellError(
            f"'{head}' is a Python keyword and cannot name a function: choose another name, "
            f"for example `{head}_model`."
        )
    if not head.isidentifier():
        fix = re.sub(r"\W", "_", head)
        fix = fix if fix.isidentifier() else f"m_{fix}"
        fix = f"; here perhaps `{fix}`" if re.search(r"[^\W_]", fix) else ""
        raise CellError(
            f"'{head}' is not a valid function name (a Python name is letters, digits and '_', "
            f"and does not start with a digit): {_FORM}{fix}."
        )
    return unicodedata.normalize("NFKC", head)


def _closing_paren(text: str) -> int | None:
    """The index just after the ``)`` that closes the ``(`` at ``text[0]`` (None: never closed);
    brackets inside strings and defaults are skipped, as Python reads them."""
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth -= 1
                if depth == 0:
                    return token.end[1]
    except (tokenize.TokenError, SyntaxError):
        return None
    return None


def _check_params(name: str, params: str) -> None:
    """The argument list must be one Python accepts, with every argument named: the magics
    pass arguments by name (notebook variables or ``--args``), so ``*args``/``**kwargs``
    would never receive anything."""
    try:
        tree = ast.parse(f"def {name}({params}): pass")
    except SyntaxError as error:
        word = _keyword_parameter(params)
        if word is not None:
            raise CellError(
                f"'{word}' is a Python keyword and cannot name an argument of '{name}': "
                f"rename it, for example `{word}_`."
            ) from None
        raise CellError(
            f"The arguments of '{name}' do not parse: `({params})`: {error.msg}."
        ) from None
    arguments = tree.body[0].args
    for star, gathered in (("*", arguments.vararg), ("**", arguments.kwarg)):
        if gathered is not None:
            raise CellError(
                f"'{name}' takes {star}{gathered.arg}, which the magics never fill: they pass "
                "arguments by name (notebook variables, or `--args NAME=EXPR`). Name each "
                f"argument instead, for example `{name}(flips, n=10)`."
            )


def _keyword_parameter(params: str) -> str | None:
    """A Python keyword written where an argument's name goes (``coin(lambda)``), if any."""
    previous = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(params).readline):
            if (
                token.type == tokenize.NAME
                and keyword.iskeyword(token.string)
                and previous in (None, ",", "*", "**", "/")
            ):
                return token.string
            if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
                previous = token.string
    except (tokenize.TokenError, SyntaxError):
        pass
    return None


def function_from_body(
    header: Header, body: str, namespace: dict[str, Any], kind: str = "model"
) -> Callable:
    """Define ``def NAME(ARGS):`` with the cell ``body`` in ``namespace`` and return it (its
    code is named ``<%%model NAME>``, or ``<%%guide NAME>``, in tracebacks). Nothing is
    defined when the body does not compile or the defaults do not evaluate."""
    _check_free(header.name, namespace, kind)
    dedented = textwrap.dedent(body)
    statements = _parse(dedented).body
    if not statements:
        what = "is empty" if not dedented.strip() else "holds only comments"
        raise CellError(
            f"The cell below `%%{kind} {header.name}(...)` {what}: write the {kind}'s body "
            f"there, or `pass` for a {kind} that does nothing."
        )
    definition = ast.parse(f"def {header.name}({header.params}): pass").body[0]
    definition.body = statements  # numbered from 1 like the body, the `def` shares line 1
    code = _compile(
        ast.Module(body=[definition], type_ignores=[]), f"<%%{kind} {header.name}>", dedented
    )
    try:
        exec(code, namespace)  # runs only the `def`: the defaults and annotations
    except Exception as error:
        raise MagicError(
            f"The magic line `%%{kind} {header.name}({header.params})`: its defaults and "
            f"annotations are evaluated in the notebook, and that raised "
            f"{type(error).__name__}: {error}. Define what they use in an earlier cell, or "
            "change them.",
            type(error).__name__,
        ) from error
    fn = namespace[header.name]
    fn.__pplkernel_source__ = f"def {header.name}({header.params}):\n" + textwrap.indent(
        dedented, "    "
    )
    return fn


def function_from_cell(cell: str, namespace: dict[str, Any], kind: str = "model") -> Callable:
    """Run a cell of ordinary code in ``namespace``; return the last function it defines. An
    error raised by the cell's own code propagates unchanged (the magic reports it with its
    cell line)."""
    tree = _parse(cell)
    names = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    if not names:
        raise CellError(
            "This cell defines no function. Either write `%%model NAME(ARGS)` on the first line "
            "and the model's body below it, or define the model with `def NAME(...):` in the cell."
        )
    exec(_compile(tree, f"<%%{kind} {names[-1]}>", cell), namespace)
    fn = namespace.get(names[-1])
    if not callable(fn):
        raise CellError(
            f"The cell defines `{names[-1]}` and then rebinds that name to something that is "
            "not a function; keep the `def` as the last word on it."
        )
    fn.__pplkernel_source__ = cell
    return fn


def _check_free(name: str, namespace: dict[str, Any], kind: str) -> None:
    """Refuse a name that holds a module, a class or data in the notebook: the new function
    would silently replace it (an earlier function of that name is fine to replace)."""
    if name not in namespace:
        return
    value = namespace[name]
    if isinstance(value, types.ModuleType):
        what = f"the module {value.__name__}"
    elif isinstance(value, type):
        what = f"the class {value.__name__}"
    elif not callable(value):
        what = f"a notebook variable (a {type(value).__name__})"
    else:
        return
    raise MagicError(
        f"'{name}' is already {what} in this notebook; a {kind} called '{name}' would replace "
        f"it. Give the {kind} another name, for example `%%{kind} {name}_{kind}(...)`.",
        "NameError",
    )


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError) as error:
        raise CellError(_syntax_message(error)) from None


def _compile(tree: ast.Module, filename: str, source: str) -> types.CodeType:
    """Compile ``tree`` (parsed from ``source``, whose lines its line numbers count)."""
    try:
        code = compile(tree, filename, "exec")
    except (SyntaxError, ValueError) as error:
        raise CellError(_syntax_message(error)) from None
    # Like IPython for its cells: tracebacks, and the engine's search for the site a failing
    # line was building, can then read the cell's source.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    return code


def _syntax_message(error: SyntaxError | ValueError) -> str:
    """``Syntax error at line N of the cell: what: `the line`.`` (N counts from the line below
    the magic line, as the cell's runtime errors do)."""
    if not isinstance(error, SyntaxError):  # e.g. a NUL character in the cell
        return f"Syntax error in the cell: {error}."
    where = f"at line {error.lineno} of the cell" if error.lineno else "in the cell"
    text = f": `{error.text.strip()}`" if error.text and error.text.strip() else ""
    return f"Syntax error {where}: {error.msg}{text}. Fix that line and run the cell again."


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
