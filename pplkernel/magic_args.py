"""The flags of ``%svi``, ``%mcmc``, ``%trace``, ``%ppc`` and ``%prior`` (shared/DESIGN.md
section 4), read into plain namespaces, and the ``--args NAME=EXPR`` pairs evaluated in the
notebook.

Every mistake is one :class:`~pplkernel.errors.MagicError` that names the flag and the value
and says what is allowed: an unknown flag (with the closest known one), a missing value, a flag
given twice, a number out of range, an unknown choice (with the valid ones), a stray word.
Flags are spelt out in full (``--step`` is not taken for ``--steps``); ``--flag=value`` works
too.

>>> options = parse_svi("coin --steps 50 --lr 0.1 --guide auto_delta")
>>> options.model, options.steps, options.lr, options.guide
('coin', 50, 0.1, 'auto_delta')
>>> parse_svi("step 20").command, parse_svi("reset").command
('step', 'reset')
>>> parse_svi("coin --step 50")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pplkernel.errors.MagicError: %svi: unknown flag '--step'. Did you mean '--steps'? ...
"""

from __future__ import annotations

import ast
import keyword
import math
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from pplkernel.errors import MagicError, did_you_mean
from pplkernel.magic_choices import ELBOS, KERNELS, OPTIMIZERS

# A reader turns a flag's text into its value, or raises ValueError with the rest of the
# sentence that starts with the flag's name ("must be ..., got 'abc'").
Reader = Callable[[str], Any]
_LONG_DASHES = "\u2014\u2013"  # em and en dash


def _whole(least: int, rule: str) -> Reader:
    def read(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least:
            raise ValueError(f"must be {rule}, got '{text}'")
        return value

    return read


_positive_int = _whole(1, "a positive integer (a whole number, 1 or more)")
_non_negative_int = _whole(0, "a whole number, 0 or more")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        note = " (so large it reads as infinity)" if math.isinf(value) and "inf" not in text else ""
        raise ValueError(f"must be a positive finite number, got '{text}'{note}")
    return value


def _choice(options: Sequence[str]) -> Reader:
    def read(text: str) -> str:
        if text not in options:
            raise ValueError(
                f"got an invalid choice: '{text}' (choose from {', '.join(options)})."
                + did_you_mean(text, options)
            )
        return text

    return read


def _name(text: str) -> str:
    if not text.strip():
        raise ValueError(f"must be a name, got '{text}'")
    return text


@dataclass(frozen=True)
class Flag:
    """One ``--flag`` of a magic: how its value is read, its default, and an example of use."""

    name: str
    read: Reader | None  # None: a switch, which takes no value
    default: Any
    example: str
    many: bool = False  # one or more words (``--args``)

    @property
    def dest(self) -> str:
        return self.name[2:].replace("-", "_")


_ARGS = Flag("--args", str, (), "--args n=100 data=x[:50]", many=True)


def _usage_error(message: str) -> MagicError:
    return MagicError(message, "UsageError")


def _is_flag(word: str) -> bool:
    """``--x``, or ``-x`` that is not a negative number (``-1``, ``-inf`` are values), or a
    flag typed with a long dash (``—steps``, as text editors like to turn ``--`` into)."""
    if word.startswith("--") or word[:1] in _LONG_DASHES:
        return True
    if word.startswith("-") and len(word) > 1:
        try:
            float(word)
        except ValueError:
            return True
    return False


def parse_flags(prog: str, line: str, flags: Sequence[Flag]) -> SimpleNamespace:
    """Read ``line`` as the model's name and ``--flag value`` pairs, in any order.

    >>> steps = Flag("--steps", _positive_int, 10, "--steps 500")
    >>> parse_flags("%demo", "coin --steps=5", [steps])
    namespace(model='coin', steps=5)
    >>> parse_flags("%demo", "coin --steps 5 --steps 6", [steps])
    Traceback (most recent call last):
    ...
    pplkernel.errors.MagicError: %demo --steps is given twice ('5' and '6'): give it once.
    """
    words = _split(line, prog)
    by_name = {flag.name: flag for flag in flags}
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    model: str | None = None
    previous_switch = None
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not _is_flag(word):
            if model is not None:
                raise _stray_word(prog, word, model, previous_switch)
            model = word
            previous_switch = None
            continue
        name, equals, inline = word.partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise _unknown_flag(prog, name, by_name)
        if flag.read is None and equals:
            raise _usage_error(f"{prog} {name} takes no value, got '{word}'.")
        texts_now = [inline] if equals else []
        while (
            flag.read is not None
            and (flag.many or not texts_now)
            and index < len(words)
            and not _is_flag(words[index])
        ):
            texts_now.append(words[index])
            index += 1
        if flag.read is not None and not texts_now:
            raise _usage_error(f"{prog} {name} needs a value, for example `{flag.example}`.")
        if name in values:
            before = f" ('{texts[name]}' and '{' '.join(texts_now)}')" if flag.read else ""
            once = ", with all the pairs after it" if flag.many else ""
            raise _usage_error(f"{prog} {name} is given twice{before}: give it once{once}.")
        texts[name] = " ".join(texts_now)
        values[name] = _read(prog, flag, texts_now)
        previous_switch = name if flag.read is None else None
    if model is None:
        raise _usage_error(
            f"{prog}: the model name is missing: write `{prog} MODEL [flags]`, for example "
            f"`{prog} coin`."
        )
    result = SimpleNamespace(model=model)
    for flag in flags:
        value = values.get(flag.name, flag.default)
        setattr(result, flag.dest, list(value) if flag.many else value)
    return result


def _read(prog: str, flag: Flag, texts: list[str]) -> Any:
    if flag.read is None:
        return True
    if flag.many:
        return texts
    try:
        return flag.read(texts[0])
    except ValueError as error:
        tail = str(error)
        # A choice's message ends with the valid values (a full sentence): no example then.
        example = "" if tail.endswith(("?", ".")) else f". For example `{flag.example}`."
        raise _usage_error(f"{prog} {flag.name} {tail}{example}") from None


def _unknown_flag(prog: str, name: str, by_name: dict[str, Flag]) -> MagicError:
    spelt = "--" + name.lstrip("-" + _LONG_DASHES)  # what a single or long dash probably meant
    hint = did_you_mean(spelt, by_name) or did_you_mean(name, by_name)
    return _usage_error(f"{prog}: unknown flag '{name}'.{hint} Its flags: {', '.join(by_name)}.")


def _stray_word(prog: str, word: str, model: str, switch: str | None) -> MagicError:
    if switch is not None:
        return _usage_error(f"{prog}: unexpected '{word}': {switch} takes no value.")
    return _usage_error(
        f"{prog}: unexpected '{word}' after the model name '{model}': it takes one model; "
        "flags start with '--', and a value with spaces needs quotes."
    )


def _split(line: str, prog: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as error:
        raise _usage_error(
            f"{prog}: cannot read the line: {error} (a quote is not closed)."
        ) from None


_SVI_FLAGS = (
    Flag("--guide", _name, "auto_normal", "--guide auto_delta"),
    Flag("--steps", _positive_int, 1000, "--steps 500"),
    Flag("--lr", _positive_float, 0.01, "--lr 0.01"),
    Flag("--optim", _choice(tuple(OPTIMIZERS)), "adam", "--optim adam"),
    Flag("--elbo", _choice(tuple(ELBOS)), "trace", "--elbo trace"),
    Flag("--particles", _positive_int, 1, "--particles 4"),
    Flag("--name", _name, None, "--name fast"),
    _ARGS,
)

_MCMC_FLAGS = (
    Flag("--kernel", _choice(tuple(KERNELS)), "nuts", "--kernel nuts"),
    Flag("--samples", _positive_int, 1000, "--samples 1000"),
    Flag("--warmup", _non_negative_int, None, "--warmup 500"),
    Flag("--chains", _positive_int, 4, "--chains 4"),
    _ARGS,
)

_TRACE_FLAGS = (
    Flag("--guide", _name, None, "--guide auto_normal"),
    Flag("--graph", None, False, "--graph"),
    _ARGS,
)


_PPC_FLAGS = (
    Flag("--run", _name, None, "--run fast"),
    Flag("--samples", _positive_int, 500, "--samples 500"),
    Flag("--x", _name, None, "--x weight"),
    _ARGS,
)

_PRIOR_FLAGS = (
    Flag("--explore", str, (), "--explore mu0=-5:5 sigma=0.1:3", many=True),
    Flag("--samples", _positive_int, 300, "--samples 300"),
    Flag("--x", _name, None, "--x weight"),
    _ARGS,
)


def parse_svi(line: str) -> SimpleNamespace:
    """``%svi MODEL [flags]``, ``%svi step [N]`` or ``%svi reset``."""
    words = _split(line, "%svi")
    if words[:1] == ["reset"]:
        if len(words) > 1:
            raise _usage_error(
                f"%svi reset takes nothing, got '{' '.join(words[1:])}': it discards the "
                "latest run."
            )
        return SimpleNamespace(command="reset")
    if words[:1] == ["step"]:
        if len(words) > 2 or any(_is_flag(word) for word in words[1:]):
            raise _usage_error(
                f"%svi step takes one number, the steps to take, got '{' '.join(words[1:])}': "
                "for example `%svi step 100`."
            )
        steps = 1
        if len(words) == 2:
            try:
                steps = _positive_int(words[1])
            except ValueError as error:
                raise _usage_error(
                    f"%svi step: the number of steps {error}. For example `%svi step 100`."
                ) from None
        return SimpleNamespace(command="step", steps=steps)
    options = parse_flags("%svi", line, _SVI_FLAGS)
    options.command = "start"
    return options


def parse_mcmc(line: str) -> SimpleNamespace:
    """``%mcmc MODEL [--kernel nuts|hmc] [--samples N] [--warmup N] [--chains K]``."""
    return parse_flags("%mcmc", line, _MCMC_FLAGS)


def parse_trace(line: str) -> SimpleNamespace:
    """``%trace MODEL [--guide G] [--graph]``.

    >>> parse_trace("coin --graph").graph, parse_trace("coin").graph
    (True, False)
    """
    options = parse_flags("%trace", line, _TRACE_FLAGS)
    if options.graph and options.guide is not None:
        raise _usage_error(
            "%trace --graph draws the model's own structure from one run of it; a guide does "
            "not change it: drop --guide."
        )
    return options


def parse_ppc(line: str) -> SimpleNamespace:
    """``%ppc MODEL [--run NAME] [--samples N] [--x NAME]``.

    >>> options = parse_ppc("coin --run fast")
    >>> options.model, options.run, options.samples
    ('coin', 'fast', 500)
    """
    return parse_flags("%ppc", line, _PPC_FLAGS)


def parse_prior(line: str) -> SimpleNamespace:
    """``%prior MODEL --explore name=low:high ... [--samples N] [--x NAME]``; ``explore`` is
    read into ``{name: (low, high)}``.

    >>> parse_prior("heights --explore mu0=150:190 sigma=1:20").explore
    {'mu0': (150.0, 190.0), 'sigma': (1.0, 20.0)}
    >>> parse_prior("heights --explore mu0=190:150")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pplkernel.errors.MagicError: %prior --explore mu0=190:150: the low end must be below the ...
    """
    options = parse_flags("%prior", line, _PRIOR_FLAGS)
    if not options.explore:
        raise _usage_error(
            "%prior needs the hyperparameters to explore: write `%prior MODEL --explore "
            "name=low:high ...`, for example `--explore mu0=-5:5 sigma=0.1:3`."
        )
    ranges: dict[str, tuple[float, float]] = {}
    for pair in options.explore:
        name, low, high = _read_range(pair)
        if name in ranges:
            raise _usage_error(f"%prior --explore {name} is given twice: give each name once.")
        ranges[name] = (low, high)
    options.explore = ranges
    return options


def _read_range(pair: str) -> tuple[str, float, float]:
    """``"mu0=-5:5"`` -> ``("mu0", -5.0, 5.0)``, or the UsageError that says what is wrong."""
    form = "name=low:high, for example `mu0=-5:5`"
    name, equals, span = pair.partition("=")
    name = name.strip()
    if not equals or not name.isidentifier() or keyword.iskeyword(name):
        raise _usage_error(f"%prior --explore takes {form}; got '{pair}'.")
    low_text, colon, high_text = span.partition(":")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        low = high = math.nan
    if not colon or not (math.isfinite(low) and math.isfinite(high)):
        raise _usage_error(
            f"%prior --explore {pair}: the range must be two finite numbers, {form}."
        )
    if low >= high:
        raise _usage_error(
            f"%prior --explore {pair}: the low end must be below the high end; write "
            f"`{name}={min(low, high):g}:{max(low, high):g}`"
            + (" (or widen it)." if low == high else ".")
        )
    return name, low, high


def evaluate_args(pairs: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """``["n=10", "x=data[:5]"]`` -> values, each expression evaluated in the notebook. All
    pairs are checked before any is evaluated.

    >>> evaluate_args(["n=2 + 3", "x=y"], {"y": [1]})
    {'n': 5, 'x': [1]}
    """
    parsed = {}
    for pair in pairs:
        name, expression, tree = _read_pair(pair)
        if name in parsed:
            raise _usage_error(
                f"--args {name} is given twice ('{parsed[name][0]}' and '{expression}'): "
                "give each argument once."
            )
        parsed[name] = (expression, tree)
    values = {}
    for name, (expression, tree) in parsed.items():
        try:
            code = compile(tree, f"--args {name}", "eval")
            values[name] = eval(code, namespace)  # the user's own notebook expression
        except NameError as error:
            raise MagicError(
                f"--args {name}={expression}: {error} in the notebook. Define it in a cell "
                "first, or fix the spelling.",
                "NameError",
            ) from error
        except Exception as error:
            raise MagicError(
                f"--args {name}={expression}: evaluating '{expression}' failed: {error}",
                type(error).__name__,
            ) from error
    return values


def _read_pair(pair: str) -> tuple[str, str, ast.Expression]:
    """``"n=10"`` -> ``("n", "10", its parsed expression)``, or the UsageError saying what is
    wrong with the pair."""
    name, equals, expression = pair.partition("=")
    name, expression = name.strip(), expression.strip()
    if not equals:
        raise _usage_error(
            f"--args takes NAME=EXPR pairs, got '{pair}' (for example `--args n=100`; write "
            "no spaces around '=', and quote an expression with spaces: "
            '`--args "x=data * 2"`).'
        )
    if not name:
        raise _usage_error(f"--args '{pair}': the argument's name before '=' is missing.")
    if keyword.iskeyword(name):
        raise _usage_error(f"--args '{pair}': '{name}' is a Python keyword, not an argument name.")
    if not name.isidentifier():
        raise _usage_error(
            f"--args '{pair}': '{name}' is not a valid argument name (letters, digits and '_', "
            "not starting with a digit)."
        )
    if not expression:
        raise _usage_error(
            f"--args '{pair}': the expression after '=' is missing, for example `{name}=10`."
        )
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise MagicError(
            f"--args {name}={expression}: the expression '{expression}' does not parse: "
            f'{error.msg}. (If it has spaces, quote the whole pair: `--args "{name}=..."`.)',
            "SyntaxError",
        ) from None
    return name, expression, tree
