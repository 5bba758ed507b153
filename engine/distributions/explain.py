"""Turn torch's terse validation ``ValueError`` into errors a modeller can act on.

torch already checks arguments (in ``Distribution.__init__``) and scored values (in
``_validate_sample``); the engine does not check twice. Only once torch has raised do these
functions look again at the offending tensor, to name the distribution, the parameter, its shape,
the constraint in plain words, how many entries break it, the first few of them, and the fix.

The same goes for dtypes torch does not handle: a bool or integer value that a density cannot do
float arithmetic with, and complex values or parameters (which torch scores into a complex
log-density, or fails on inside a constraint check).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from engine.errors import (
    ArgumentError,
    DistributionArgumentError,
    PPLError,
    ShapeError,
    SupportError,
    fmt_shape,
)

_MAX_SHOWN = 3
_VALIDATING_CODE = torch.distributions.Distribution.__init__.__code__
_MAX_EVENT_ENTRIES = 6

# torch keeps its constraint classes private; the public instances give us their types.
_Real = type(constraints.real)
_GreaterThan = type(constraints.positive)
_GreaterThanEq = type(constraints.nonnegative)
_LessThan = type(constraints.less_than(0.0))
_Interval = type(constraints.unit_interval)
_HalfOpenInterval = type(constraints.half_open_interval(0.0, 1.0))
_IntegerInterval = type(constraints.integer_interval(0, 1))
_IntegerGreaterThan = type(constraints.nonnegative_integer)
_Boolean = type(constraints.boolean)
_Simplex = type(constraints.simplex)
_LowerCholesky = type(constraints.lower_cholesky)
_CorrCholesky = type(constraints.corr_cholesky)
_PositiveDefinite = type(constraints.positive_definite)
_PositiveSemidefinite = type(constraints.positive_semidefinite)
_Independent = type(constraints.real_vector)


def _num(x: float) -> str:
    return f"{x:.4g}"


def _bound(x: Any) -> str:
    """A constraint's bound for a message, whether a number or a tensor of per-entry bounds."""
    if isinstance(x, torch.Tensor):
        return _num(x.item()) if x.numel() == 1 else f"the per-entry bound {_format_event(x)}"
    return _num(float(x))


def _is_number(text: str) -> bool:
    return not text.startswith("the per-entry bound")


def _param_hint(param: str) -> str:
    """Parameters torch lets you give in another form, where that is the easy fix."""
    if param == "probs":
        return ", or pass logits= instead (any real number)"
    return ""


Advice = tuple[str, str]  # what a constraint demands, and how to get a value that meets it


def _real(constraint: Any, hint: str) -> Advice:
    return (
        "a real number (not NaN)",
        "a NaN usually comes from an earlier computation (0/0, the log of a negative number, "
        "a diverged optimizer); find where it first appears, e.g. with "
        "torch.autograd.set_detect_anomaly(True)",
    )


def _greater_than(constraint: Any, hint: str) -> Advice:
    lb = _bound(constraint.lower_bound)
    if lb == "0":
        return (
            "positive",
            "pass a positive tensor, e.g. via torch.nn.functional.softplus or a param with "
            "constraint=constraints.positive",
        )
    how = f"greater_than({lb})" if _is_number(lb) else "greater_than(lower)"
    return (
        f"greater than {lb}",
        f"pass e.g. lower + softplus(x), or a param with constraint=constraints.{how}",
    )


def _greater_than_eq(constraint: Any, hint: str) -> Advice:
    lb = _bound(constraint.lower_bound)
    if lb == "0":
        return (
            "non-negative",
            "pass e.g. x.abs() or softplus(x), or a param with constraint=constraints.positive",
        )
    how = f"greater_than_eq({lb})" if _is_number(lb) else "greater_than_eq(lower)"
    return (
        f"at least {lb}",
        f"pass e.g. lower + softplus(x), or a param with constraint=constraints.{how}",
    )


def _less_than(constraint: Any, hint: str) -> Advice:
    ub = _bound(constraint.upper_bound)
    how = f"less_than({ub})" if _is_number(ub) else "less_than(upper)"
    return (
        f"less than {ub}",
        f"pass e.g. upper - softplus(x), or a param with constraint=constraints.{how}",
    )


def _interval(constraint: Any, hint: str) -> Advice:
    lo, hi = _bound(constraint.lower_bound), _bound(constraint.upper_bound)
    closing = "]" if isinstance(constraint, _Interval) else ")"
    words = f"in [{lo}, {hi}{closing}"
    if (lo, hi) == ("0", "1"):
        return (
            words,
            "pass e.g. torch.sigmoid(x), or a param with constraint=constraints.unit_interval"
            + hint,
        )
    bounds = f"{lo}, {hi}" if _is_number(lo) and _is_number(hi) else "lower, upper"
    return (words, f"pass e.g. a param with constraint=constraints.interval({bounds})" + hint)


def _integer_interval(constraint: Any, hint: str) -> Advice:
    lo, hi = _bound(constraint.lower_bound), _bound(constraint.upper_bound)
    return (f"an integer in [{lo}, {hi}]", "round it (x.round()) or pass whole numbers")


def _integer_greater_than(constraint: Any, hint: str) -> Advice:
    lb = _bound(constraint.lower_bound)
    words = {"0": "a non-negative integer", "1": "a positive integer"}.get(
        lb, f"an integer of at least {lb}"
    )
    return (words, "round it (x.round()) or pass whole numbers")


def _simplex(constraint: Any, hint: str) -> Advice:
    return (
        "a probability vector along the last dim (entries >= 0 that sum to 1)",
        "normalize with x / x.sum(-1, keepdim=True) or torch.softmax(x, -1), or use a param "
        "with constraint=constraints.simplex" + hint,
    )


def _fixed(words: str, how: str) -> Callable[[Any, str], Advice]:
    """Advice that does not depend on the constraint's bounds."""
    return lambda constraint, hint: (words, how)


# By constraint class; a subclass of one of these gets its nearest parent's advice.
_ADVICE: dict[type, Callable[[Any, str], Advice]] = {
    _Real: _real,
    _GreaterThan: _greater_than,
    _GreaterThanEq: _greater_than_eq,
    _LessThan: _less_than,
    _Interval: _interval,
    _HalfOpenInterval: _interval,
    _IntegerInterval: _integer_interval,
    _IntegerGreaterThan: _integer_greater_than,
    _Boolean: _fixed("0 or 1", "pass 0./1. values, e.g. (x > 0).float()"),
    _Simplex: _simplex,
    _CorrCholesky: _fixed(
        "the Cholesky factor of a correlation matrix (lower-triangular, positive diagonal, "
        "rows of unit length)",
        "pass torch.linalg.cholesky(corr) or a param with constraint=constraints.corr_cholesky",
    ),
    _LowerCholesky: _fixed(
        "lower-triangular with a positive diagonal (a Cholesky factor)",
        "pass torch.linalg.cholesky(cov) or a param with constraint=constraints.lower_cholesky",
    ),
    _PositiveDefinite: _fixed(
        "a symmetric positive-definite matrix",
        "pass e.g. A @ A.mT + 1e-6 * I, or a param with constraint=constraints.positive_definite",
    ),
    _PositiveSemidefinite: _fixed(
        "a symmetric positive-semidefinite matrix",
        "pass e.g. A @ A.mT, or a param with constraint=constraints.positive_semidefinite",
    ),
}


def constraint_advice(constraint: constraints.Constraint, param: str = "") -> Advice:
    """What ``constraint`` demands, and how to get a value that meets it, in plain words: a
    message reads "scale must be {words}: {how}". (For the constraint's name as code, see
    :func:`engine.constraint_codec.describe_constraint`.)

    >>> constraint_advice(constraints.positive)[0]
    'positive'
    >>> constraint_advice(constraints.unit_interval, "probs")[1].endswith("(any real number)")
    True
    """
    if isinstance(constraint, _Independent):
        return constraint_advice(constraint.base_constraint, param)
    # Constraints that belong to this package (ordered vectors, ...) describe themselves.
    own = getattr(constraint, "plain_words", None)
    if own is not None:
        return own()
    for kind in type(constraint).__mro__:
        advise = _ADVICE.get(kind)
        if advise is not None:
            return advise(constraint, _param_hint(param))
    return (f"within {constraint!r}", "pass a value that satisfies it")


def _format_event(value: torch.Tensor) -> str:
    """A scalar, or a (nested) list of at most a few entries, for a message."""
    value = value.detach()
    if value.dim() == 0:
        return _num(value.item())
    if value.numel() <= _MAX_EVENT_ENTRIES**2 and value.dim() <= 2:
        rows = value.tolist()
        if value.dim() == 1:
            return (
                "["
                + ", ".join(_num(x) for x in rows[:_MAX_EVENT_ENTRIES])
                + (", ...]" if len(rows) > _MAX_EVENT_ENTRIES else "]")
            )
        return "[" + ", ".join(_format_event(row) for row in value) + "]"
    flat = ", ".join(_num(x) for x in value.reshape(-1)[:_MAX_EVENT_ENTRIES].tolist())
    return f"tensor of shape {fmt_shape(value.shape)} starting [{flat}, ...]"


def _violations(value: torch.Tensor, ok: torch.Tensor, event_dim: int) -> str:
    """'2 of 6 entries break it; first offending: -1 at (0,), -0.5 at (3,)'."""
    event_shape = value.shape[value.dim() - event_dim :]
    # A constraint with tensor bounds (Uniform's support) can broadcast the check beyond the value.
    batch = torch.broadcast_shapes(ok.shape, value.shape[: value.dim() - event_dim])
    value, bad = value.expand(batch + event_shape), ~ok.bool().expand(batch)
    n_bad, total = int(bad.sum()), bad.numel()
    unit = {0: "entries", 1: "vectors (along the last dim)"}.get(event_dim, "matrices")
    shown = []
    for index in bad.nonzero()[:_MAX_SHOWN].tolist():
        event = value[tuple(index)] if index else value
        where = f" at {tuple(index)}" if index else ""
        shown.append(f"{_format_event(event)}{where}")
    first = "; first offending: " + ", ".join(shown) if shown else ""
    return f"{n_bad} of {total} {unit} break it{first}"


def _first_violation(
    dist: torch.distributions.Distribution,
    init: Callable | None,
    args: tuple,
    kwargs: dict,
) -> tuple[str, torch.Tensor, constraints.Constraint, torch.Tensor] | None:
    """Re-run torch's argument check to find which parameter it rejected.

    torch reads the attributes the constructor has set by the time it validates. When the error
    came from a nested constructor (``LogNormal`` builds a ``Normal`` first) those attributes do
    not exist yet, so the arguments the user passed stand in for them.
    """
    raw: dict[str, Any] = {}
    if init is not None:
        try:
            raw = inspect.signature(init).bind(dist, *args, **kwargs).arguments
        except TypeError:
            raw = {}
    try:
        arg_constraints = dist.arg_constraints
    except (AttributeError, NotImplementedError):
        return None
    for param, constraint in arg_constraints.items():
        if constraints.is_dependent(constraint):
            continue
        passed = raw.get(param)
        checked = _checked_value(dist, param)
        judged = checked if checked is not None else passed
        if judged is None:
            continue
        value = torch.as_tensor(judged).detach()
        ok = constraint.check(value)
        if bool(ok.all()):
            continue
        # torch may have broadcast or normalized the argument by now: show the user's own value
        # when it exhibits the problem as well.
        if passed is not None and judged is not passed:
            try:
                shown = torch.as_tensor(passed).detach()
                ok_shown = constraint.check(shown)
            except (RuntimeError, IndexError, TypeError):
                ok_shown = None
            if ok_shown is not None and not bool(ok_shown.all()):
                return param, shown, constraint, ok_shown
        return param, value, constraint, ok
    return None


def _checked_value(dist: torch.distributions.Distribution, param: str) -> Any:
    """The value torch validated for ``param``, or None where torch skipped it or it is unset."""
    if param in dist.__dict__:
        return dist.__dict__[param]
    if isinstance(getattr(type(dist), param, None), lazy_property):
        return None
    try:
        return getattr(dist, param)
    except AttributeError:
        return None


def _from_validation(err: BaseException) -> bool:
    """Whether torch's argument check raised ``err`` (rather than, say, a shape check)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code is _VALIDATING_CODE


def argument_error(
    dist: torch.distributions.Distribution,
    err: ValueError,
    init: Callable | None = None,
    args: tuple = (),
    kwargs: dict | None = None,
) -> Exception:
    """The error to raise in place of ``err``, which torch raised while constructing ``dist``.

    ``init`` with ``args``/``kwargs`` is the constructor call that failed, used to recover the
    user's arguments when the half-built ``dist`` does not hold them yet.

    >>> try:
    ...     torch.distributions.Normal(0.0, -1.0)
    ... except ValueError as err:
    ...     d = torch.distributions.Normal(0.0, 1.0)
    ...     d.scale = torch.tensor(-1.0)
    ...     print(str(argument_error(d, err)).split(" (constraint")[0])
    Normal: parameter 'scale' (shape ()) must be positive
    """
    if isinstance(err, PPLError):
        # A nested constructor failed first (LogNormal builds a Normal): the outermost
        # distribution is the one the user wrote.
        if isinstance(err, DistributionArgumentError):
            err.distribution = dist
        return err
    name = type(dist).__name__
    found = _first_violation(dist, init, args, kwargs or {}) if _from_validation(err) else None
    if found is None:
        error = DistributionArgumentError(f"{name}: {err}")
    else:
        param, value, constraint, ok = found
        words, how = constraint_advice(constraint, param)
        error = DistributionArgumentError(
            f"{name}: parameter '{param}' (shape {fmt_shape(value.shape)}) must be {words} "
            f"(constraint {constraint!r}), but {_violations(value, ok, constraint.event_dim)}.\n"
            f"Fix: {param} must be {words}: {how}."
        )
    error.distribution = dist
    return error


def sample_error(dist: torch.distributions.Distribution, value: Any, err: ValueError) -> Exception:
    """The error to raise in place of ``err``, which torch raised checking a value to score.

    >>> d = torch.distributions.Poisson(1.0)
    >>> type(sample_error(d, torch.tensor(-1.0), ValueError("out of support"))).__name__
    'SupportError'
    """
    if isinstance(err, PPLError):
        return err
    name = type(dist).__name__
    if not isinstance(value, torch.Tensor):
        return DistributionArgumentError(
            f"{name}.log_prob got a {type(value).__name__}, but values to score must be tensors: "
            "wrap it with torch.as_tensor(value)."
        )
    batch, event = dist.batch_shape, dist.event_shape
    expected = fmt_shape(batch + event)
    if value.shape[value.dim() - len(event) :] != event or value.dim() < len(event):
        return ShapeError(
            f"{name} (batch_shape {fmt_shape(batch)}, event_shape {fmt_shape(event)}): the value "
            f"to score has shape {fmt_shape(value.shape)}, whose rightmost dims must equal the "
            f"event_shape {fmt_shape(event)}.\nFix: reshape the value so that it ends in "
            f"{fmt_shape(event)}, or use .to_event(n) so the distribution's event dims match the "
            "data."
        )
    try:
        torch.broadcast_shapes(value.shape, batch + event)
    except RuntimeError:
        return ShapeError(
            f"{name} (batch_shape {fmt_shape(batch)}, event_shape {fmt_shape(event)}): the value "
            f"to score has shape {fmt_shape(value.shape)}, which does not broadcast with "
            f"batch_shape + event_shape = {expected}.\nFix: make the value's rightmost dims match "
            f"{expected} (a dim of 1 broadcasts), e.g. reshape the data, or change the plate sizes "
            "or the parameters' shapes."
        )
    support = dist.support
    ok = support.check(value)
    if bool(ok.all()):
        return DistributionArgumentError(f"{name}: {err}")
    words, _ = constraint_advice(support)
    broken = _violations(value.detach(), ok, support.event_dim)
    return SupportError(
        f"{name}: the value to score (shape {fmt_shape(value.shape)}) must lie in the support, "
        f"{words} (constraint {support!r}), but {broken}.\n"
        f"Fix: pass values inside the support (check the observed data or the value given to "
        f"this site), or choose a distribution whose support contains them."
    )


def complex_value_problem(value: torch.Tensor) -> str:
    """What is wrong with a complex value to score, and the fix, for a message.

    >>> complex_value_problem(torch.zeros(2, dtype=torch.complex64))[:39]
    'the value is complex (dtype complex64, '
    """
    return (
        f"the value is complex (dtype {str(value.dtype).removeprefix('torch.')}, shape "
        f"{fmt_shape(value.shape)}). Densities are defined for real values: torch would score "
        "it and return a complex log-density. Fix: pass a real tensor (value.real, value.abs(), "
        "or the real and imaginary parts as two sites)."
    )


def _complex_arguments(dist: Any, init: Callable | None, args: tuple, kwargs: dict) -> list[str]:
    """The names of the complex tensors among a constructor's arguments (or the built dist's)."""
    named: dict[str, Any] = {}
    if init is not None:
        try:
            named = dict(inspect.signature(init).bind(dist, *args, **kwargs).arguments)
        except TypeError:
            named = {}
    else:
        named = dict(vars(dist))
    return [
        name
        for name, value in named.items()
        if isinstance(value, torch.Tensor) and value.is_complex()
    ]


def _complex_argument_message(name: str, params: list[str]) -> str:
    listed = ", ".join(f"'{p}'" for p in params)
    which = f"parameter {listed} is" if len(params) == 1 else f"parameters {listed} are"
    return (
        f"{name}: {which} complex; distributions take real parameters and "
        "would give a complex log-density. Fix: pass real tensors (x.real, x.abs())."
    )


def complex_argument_error(
    dist: Any, init: Callable, args: tuple, kwargs: dict
) -> ArgumentError | None:
    """The error to raise when constructing ``dist`` failed because an argument is complex
    (torch's constraint checks are not implemented for complex dtypes), else None."""
    params = _complex_arguments(dist, init, args, kwargs)
    if not params:
        return None
    return ArgumentError(_complex_argument_message(type(dist).__name__, params))


def complex_log_prob_error(dist: Any, value: Any) -> ArgumentError:
    """The error for a log-density that came out complex: a complex value or complex parameters.

    >>> d = torch.distributions.Normal(0.0, 1.0)
    >>> str(complex_log_prob_error(d, torch.tensor(1j)))[:38]
    'Normal: the value is complex (dtype co'
    """
    name = type(dist).__name__
    if isinstance(value, torch.Tensor) and value.is_complex():
        return ArgumentError(f"{name}: {complex_value_problem(value)}")
    params = _complex_arguments(dist, None, (), {})
    if not params:
        return ArgumentError(
            f"{name}: the log-density came out complex for a real value, so one of the "
            "parameters is complex. Fix: pass real tensors (x.real, x.abs())."
        )
    return ArgumentError(_complex_argument_message(name, params))


def _floating_dtype(dist: Any) -> torch.dtype:
    """The floating dtype of a distribution's parameters (the default dtype if it has none)."""
    for value in vars(dist).values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype
    return torch.get_default_dtype()


def value_dtype_error(
    dist: Any, value: Any, score: Callable[[torch.Tensor], torch.Tensor]
) -> ArgumentError | None:
    """The error to raise when scoring a bool or integer ``value`` failed because of its dtype
    (torch computes some densities in floating point without converting the value, and fails
    with a message about tensor arithmetic); None when the dtype is not the cause.

    ``score`` is the failed log-density; the dtype is to blame when it succeeds on the value
    converted to the distribution's floating dtype.

    >>> d = torch.distributions.Bernoulli(0.5)
    >>> str(value_dtype_error(d, torch.tensor(True), d.log_prob))[:48]
    'Bernoulli cannot score a value of dtype torch.bo'
    """
    if not isinstance(value, torch.Tensor) or value.is_floating_point() or value.is_complex():
        return None
    dtype = _floating_dtype(dist)
    try:
        score(value.to(dtype))
    except (RuntimeError, TypeError, ValueError):
        return None  # it fails for another reason too: torch's own error says more
    example = "True/False become 1./0." if value.dtype == torch.bool else "same numbers"
    return ArgumentError(
        f"{type(dist).__name__} cannot score a value of dtype {value.dtype} (shape "
        f"{fmt_shape(value.shape)}): torch computes this log-density in floating point and "
        f"does not convert the value. Fix: convert the data to the distribution's dtype, e.g. "
        f"obs=data.to({dtype}) or data.float() ({example})."
    )
