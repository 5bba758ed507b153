"""Constraints as plain data, so a saved param store loads with ``torch.load(weights_only=True)``.

A constraint is encoded as a dict of strings, numbers, lists and tensors: ``{"singleton": name}``
for a named constraint object (``constraints.positive``) and ``{"class": name, "args": {...}}`` for
a parameterised one (``constraints.interval(0., 1.)``). Decoding only ever looks names up in the two
tables below, so a file cannot make it build anything else.

>>> from torch.distributions import constraints
>>> encode_constraint(constraints.positive)
{'singleton': 'positive'}
>>> decode_constraint(encode_constraint(constraints.interval(0.0, 2.0)))
Interval(lower_bound=0.0, upper_bound=2.0)
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.constraints import Constraint

from engine.errors import ParamError

# The parameterised constraint classes, keyed by the public name that builds them, with their
# constructor arguments (each is also the attribute the instance keeps it under).
_CLASSES: dict[str, tuple[type, tuple[str, ...]]] = {
    "interval": (constraints.interval, ("lower_bound", "upper_bound")),
    "half_open_interval": (constraints.half_open_interval, ("lower_bound", "upper_bound")),
    "greater_than": (constraints.greater_than, ("lower_bound",)),
    "greater_than_eq": (constraints.greater_than_eq, ("lower_bound",)),
    "less_than": (constraints.less_than, ("upper_bound",)),
    "integer_interval": (constraints.integer_interval, ("lower_bound", "upper_bound")),
    "integer_greater_than": (type(constraints.nonnegative_integer), ("lower_bound",)),
    "independent": (constraints.independent, ("base_constraint", "reinterpreted_batch_ndims")),
    "multinomial": (constraints.multinomial, ("upper_bound",)),
    "cat": (constraints.cat, ("cseq", "dim", "lengths")),
    "stack": (constraints.stack, ("cseq", "dim")),
}
_CLASS_NAMES: dict[type, str] = {cls: name for name, (cls, _) in _CLASSES.items()}

_SINGLETONS: dict[str, Constraint] = {}
_SINGLETON_NAMES: dict[int, str] = {}

# Pyro's extra constraints (softplus_positive, sphere, ...) live in
# engine.distributions.constraints, which may be imported after this module (or not at all): it is
# scanned on the first name this module does not know.
_EXTENSION_MODULE = "engine.distributions.constraints"
_extension_scanned = False


def _scan(module: Any) -> None:
    for name in sorted(dir(module)):
        obj = getattr(module, name)
        if name.startswith("_") or not isinstance(obj, Constraint):
            continue
        if name not in _SINGLETONS and id(obj) not in _SINGLETON_NAMES:
            _SINGLETONS[name] = obj
            _SINGLETON_NAMES[id(obj)] = name


_scan(constraints)


def _scan_extension_module() -> bool:
    """Scan engine.distributions.constraints once; return whether anything new may be known."""
    global _extension_scanned
    if _extension_scanned:
        return False
    _extension_scanned = True
    try:
        module = importlib.import_module(_EXTENSION_MODULE)
    except ImportError:
        return False
    _scan(module)
    return True


def register_constraint(name: str, constraint: Constraint) -> None:
    """Make a constraint object of your own savable under ``name``.

    Registering the same object twice is harmless; another object under a taken name is an error.

    >>> from torch.distributions import constraints
    >>> class Even(constraints.Constraint):
    ...     def check(self, value):
    ...         return value % 2 == 0
    >>> even = Even()
    >>> register_constraint("doc_example_even", even)
    >>> encode_constraint(even)
    {'singleton': 'doc_example_even'}
    """
    if not isinstance(constraint, Constraint):
        raise TypeError(
            f"register_constraint({name!r}, ...) needs a Constraint, got {constraint!r}"
        )
    taken = _SINGLETONS.get(name)
    if taken is constraint:
        return
    if taken is not None:
        raise ValueError(
            f"the constraint name {name!r} is already registered for {taken!r}; pick another name"
        )
    _SINGLETONS[name] = constraint
    _SINGLETON_NAMES.setdefault(id(constraint), name)


def _values_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, Constraint) or isinstance(b, Constraint):
        return isinstance(a, Constraint) and isinstance(b, Constraint) and constraints_equal(a, b)
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return (
            isinstance(a, list | tuple)
            and isinstance(b, list | tuple)
            and len(a) == len(b)
            and all(_values_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        ta = torch.as_tensor(a)
        tb = torch.as_tensor(b, device=ta.device)
        return ta.shape == tb.shape and bool((ta == tb).all())
    return a == b


def constraints_equal(a: Constraint, b: Constraint) -> bool:
    """Whether two constraints are the same: same class and equal parameters.

    Tensor and number parameters compare by value, so a bound of ``torch.tensor(1.)`` equals ``1.``.

    >>> from torch.distributions import constraints
    >>> constraints_equal(constraints.interval(0, 1), constraints.interval(0, 1))
    True
    >>> constraints_equal(constraints.positive, constraints.greater_than(1.0))
    False
    """
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    va, vb = vars(a), vars(b)
    return va.keys() == vb.keys() and all(_values_equal(va[k], vb[k]) for k in va)


def _singleton_name(c: Constraint) -> str | None:
    name = _SINGLETON_NAMES.get(id(c))
    if name is not None:
        return name
    # A fresh instance of a parameterless class (``_Simplex()``) is the same constraint.
    for candidate_name, candidate in _SINGLETONS.items():
        if type(candidate) is type(c) and constraints_equal(candidate, c):
            return candidate_name
    return None


def _encode_arg(value: Any, where: str) -> Any:
    if isinstance(value, Constraint):
        return encode_constraint(value)
    if isinstance(value, list | tuple):
        return [_encode_arg(v, where) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, bool | int | float):
        return value
    raise ParamError(f"cannot save {where}: its value {value!r} is not a number or tensor")


def encode_constraint(c: Constraint) -> dict[str, Any]:
    """Encode a constraint as plain data (strings, numbers, lists, tensors).

    Raises :class:`~engine.errors.ParamError` naming the constraint when it is not known: register
    your own with :func:`register_constraint`.

    >>> from torch.distributions import constraints
    >>> encode_constraint(constraints.independent(constraints.real, 1))["class"]
    'independent'
    """
    name = _SINGLETON_NAMES.get(id(c))
    if name is not None:
        return {"singleton": name}
    class_name = _CLASS_NAMES.get(type(c))
    if class_name is not None:
        arg_names = _CLASSES[class_name][1]
        return {
            "class": class_name,
            "args": {
                arg: _encode_arg(getattr(c, arg), f"argument {arg!r} of {c!r}") for arg in arg_names
            },
        }
    name = _singleton_name(c)
    if name is None and _scan_extension_module():
        name = _singleton_name(c)
    if name is not None:
        return {"singleton": name}
    raise ParamError(
        f"cannot save the constraint {c!r} (class {type(c).__module__}.{type(c).__qualname__}): "
        "it is neither a constraint object of torch.distributions.constraints nor one of its "
        f"parameterised classes ({', '.join(_CLASSES)}). Register it first with "
        "engine.constraint_codec.register_constraint('some_name', your_constraint)."
    )


def _decode_arg(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return decode_constraint(value)
    if isinstance(value, list):
        return [_decode_arg(v, where) for v in value]
    if isinstance(value, torch.Tensor | bool | int | float):
        return value
    raise ParamError(f"malformed constraint data: {where} holds a {type(value).__name__}")


def decode_constraint(d: dict[str, Any]) -> Constraint:
    """Rebuild a constraint from :func:`encode_constraint`'s output; only known classes are built.

    >>> from torch.distributions import constraints
    >>> decode_constraint({"singleton": "simplex"}) is constraints.simplex
    True
    """
    if not isinstance(d, dict):
        raise ParamError(f"malformed constraint data: expected a dict, got {d!r}")
    if set(d) == {"singleton"}:
        name = d["singleton"]
        if not isinstance(name, str):
            raise ParamError(f"malformed constraint data: {d!r}")
        if name not in _SINGLETONS:
            _scan_extension_module()
        if name not in _SINGLETONS:
            raise ParamError(
                f"unknown constraint {name!r} in saved data; known names: "
                f"{', '.join(sorted(_SINGLETONS))}. If it is your own constraint, register it with "
                "engine.constraint_codec.register_constraint before loading."
            )
        return _SINGLETONS[name]
    if set(d) == {"class", "args"} and isinstance(d["args"], dict):
        class_name = d["class"]
        if class_name not in _CLASSES:
            raise ParamError(
                f"unknown constraint class {class_name!r} in saved data; known classes: "
                f"{', '.join(_CLASSES)}"
            )
        cls, arg_names = _CLASSES[class_name]
        args = d["args"]
        if set(args) != set(arg_names):
            raise ParamError(
                f"malformed constraint data for {class_name}: arguments {sorted(args)}, expected "
                f"{list(arg_names)}"
            )
        return cls(
            **{k: _decode_arg(v, f"argument {k!r} of {class_name}") for k, v in args.items()}
        )
    raise ParamError(f"malformed constraint data: {d!r}")


def _describe_arg(value: Any) -> str:
    if isinstance(value, Constraint):
        return describe_constraint(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_describe_arg(v) for v in value) + "]"
    if isinstance(value, torch.Tensor):
        if value.numel() <= 4:
            return f"tensor({value.detach().cpu().tolist()})"
        return f"tensor of shape {tuple(value.shape)}"
    return repr(value)


def describe_constraint(c: Constraint) -> str:
    """Name a constraint the way users write it, for error messages.

    >>> from torch.distributions import constraints
    >>> describe_constraint(constraints.positive), describe_constraint(constraints.interval(0, 1))
    ('constraints.positive', 'constraints.interval(0, 1)')
    """
    name = _SINGLETON_NAMES.get(id(c))
    if name is not None:
        return f"constraints.{name}"
    class_name = _CLASS_NAMES.get(type(c))
    if class_name is not None:
        args = ", ".join(_describe_arg(getattr(c, a)) for a in _CLASSES[class_name][1])
        return f"constraints.{class_name}({args})"
    return repr(c)
