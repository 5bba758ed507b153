"""The flags of ``%svi``, ``%mcmc`` and ``%trace`` (shared/DESIGN.md section 4), parsed into
plain namespaces; a bad flag is a :class:`~pplkernel.session.MagicError` that says what is
allowed.

>>> options = parse_svi("coin --steps 50 --lr 0.1 --guide auto_delta")
>>> options.model, options.steps, options.lr, options.guide
('coin', 50, 0.1, 'auto_delta')
>>> parse_svi("step 20").command, parse_svi("reset").command
('step', 'reset')
"""

from __future__ import annotations

import argparse
import ast
import shlex
from typing import Any

from pplkernel.session import MagicError

AUTOGUIDES = ("auto_normal", "auto_delta", "auto_diag", "auto_mvn", "auto_lowrank")
OPTIMIZERS = ("adam", "clipped_adam", "sgd")
ELBOS = ("trace", "meanfield", "tracegraph", "enum")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise MagicError(f"{self.prog}: {message}.\n{self.format_usage().strip()}", "UsageError")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _split(line: str, prog: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as error:
        raise MagicError(f"{prog}: cannot read the line: {error}.", "UsageError") from None


def _with_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--args",
        nargs="+",
        default=[],
        metavar="NAME=EXPR",
        help="model arguments (default: notebook variables of the same name)",
    )


def parse_svi(line: str) -> argparse.Namespace:
    """``%svi MODEL [flags]``, ``%svi step [N]`` or ``%svi reset``."""
    words = _split(line, "%svi")
    if words[:1] == ["reset"]:
        if len(words) > 1:
            raise MagicError("%svi reset takes no arguments.", "UsageError")
        return argparse.Namespace(command="reset")
    if words[:1] == ["step"]:
        if len(words) > 2:
            raise MagicError("%svi step takes at most one number: `%svi step 100`.", "UsageError")
        steps = _parse_with(_step_parser(), words[1:]).steps
        return argparse.Namespace(command="step", steps=steps)
    options = _parse_with(_svi_parser(), words)
    options.command = "start"
    return options


def _step_parser() -> _Parser:
    parser = _Parser(prog="%svi step", add_help=False)
    parser.add_argument("steps", nargs="?", type=_positive_int, default=1)
    return parser


def _svi_parser() -> _Parser:
    parser = _Parser(prog="%svi", add_help=False)
    parser.add_argument("model")
    parser.add_argument("--guide", default="auto_normal", help=f"a %%guide name or {AUTOGUIDES}")
    parser.add_argument("--steps", type=_positive_int, default=1000)
    parser.add_argument("--lr", type=_positive_float, default=0.01)
    parser.add_argument("--optim", choices=OPTIMIZERS, default="adam")
    parser.add_argument("--elbo", choices=ELBOS, default="trace")
    parser.add_argument("--particles", type=_positive_int, default=1)
    parser.add_argument("--name", default=None)
    _with_args(parser)
    return parser


def parse_mcmc(line: str) -> argparse.Namespace:
    """``%mcmc MODEL [--kernel nuts|hmc] [--samples N] [--warmup N] [--chains K]``."""
    parser = _Parser(prog="%mcmc", add_help=False)
    parser.add_argument("model")
    parser.add_argument("--kernel", choices=("nuts", "hmc"), default="nuts")
    parser.add_argument("--samples", type=_positive_int, default=1000)
    parser.add_argument("--warmup", type=_non_negative_int, default=None)
    parser.add_argument("--chains", type=_positive_int, default=4)
    _with_args(parser)
    return _parse_with(parser, _split(line, "%mcmc"))


def parse_trace(line: str) -> argparse.Namespace:
    """``%trace MODEL [--guide G] [--graph]``.

    >>> parse_trace("coin --graph").graph, parse_trace("coin").graph
    (True, False)
    """
    parser = _Parser(prog="%trace", add_help=False)
    parser.add_argument("model")
    parser.add_argument("--guide", default=None)
    parser.add_argument("--graph", action="store_true", help="show the model graph instead")
    _with_args(parser)
    options = _parse_with(parser, _split(line, "%trace"))
    if options.graph and options.guide is not None:
        raise MagicError(
            "%trace --graph draws the model's own structure from one run of it; a guide does "
            "not change it: drop --guide.",
            "UsageError",
        )
    return options


def _parse_with(parser: _Parser, words: list[str]) -> argparse.Namespace:
    if not words and any(action.required for action in parser._actions):
        parser.error("the model name is missing")
    return parser.parse_args(words)


def evaluate_args(pairs: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """``["n=10", "x=data[:5]"]`` -> values, each expression evaluated in the notebook.

    >>> evaluate_args(["n=2 + 3", "x=y"], {"y": [1]})
    {'n': 5, 'x': [1]}
    """
    values = {}
    for pair in pairs:
        name, equals, expression = pair.partition("=")
        if not equals or not name.isidentifier():
            raise MagicError(
                f"--args takes NAME=EXPR pairs, got '{pair}' (for example `--args n=100`).",
                "UsageError",
            )
        try:
            ast.parse(expression, mode="eval")
            values[name] = eval(expression, namespace)  # the user's own notebook expression
        except Exception as error:
            raise MagicError(
                f"--args {name}={expression}: {type(error).__name__}: {error}", "UsageError"
            ) from error
    return values
