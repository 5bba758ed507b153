"""The param store: every ``param`` lives here, by name, as an unconstrained leaf tensor.

Optimizers update the unconstrained leaf; models read the constrained value, recomputed from the
leaf on each access so gradients reach it. Pyro's ``ParamStoreDict`` API, with errors that say what
went wrong instead of silently producing NaN, and save files that load with ``weights_only=True``.

>>> import torch
>>> from torch.distributions import constraints
>>> store = ParamStoreDict()
>>> scale = store.get_param("scale", torch.ones(2), constraint=constraints.positive)
>>> scale.tolist(), scale.requires_grad
([1.0, 1.0], True)
>>> scale.unconstrained()
tensor([0., 0.], requires_grad=True)
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import os
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, KeysView, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions import constraints, transform_to
from torch.distributions.constraints import Constraint
from torch.distributions.transforms import Transform

from engine.atomic_file import (
    atomic_torch_save,
    content_error,
    load_state_file,
    warn_replaced_shapes,
)
from engine.constraint_codec import (
    constraints_equal,
    decode_constraint,
    describe_constraint,
    encode_constraint,
)
from engine.errors import MissingParamError, ParamError, SupportError, fmt_shape

__all__ = [
    "MODULE_DIVIDER",
    "MissingParamError",
    "ParamSnapshot",
    "ParamStoreDict",
    "clear_param_store",
    "get_param_store",
    "module_from_param_with_module_name",
    "param_store_scope",
    "param_with_module_name",
    "user_param_name",
]

# engine.module stores a torch module's parameters as "<module name>$$$<parameter path>", as Pyro
# does; these three functions (Pyro's names) are the one place that knows it.
MODULE_DIVIDER = "$$$"


def param_with_module_name(module_name: str, param_name: str) -> str:
    """The store name of parameter ``param_name`` of the module registered as ``module_name``.

    >>> param_with_module_name("net", "0.weight")
    'net$$$0.weight'
    """
    return f"{module_name}{MODULE_DIVIDER}{param_name}"


def module_from_param_with_module_name(name: str) -> str:
    """The module part of a module parameter's store name (the whole name otherwise).

    >>> [module_from_param_with_module_name(n) for n in ("net$$$0.weight", "loc")]
    ['net', 'loc']
    """
    return name.partition(MODULE_DIVIDER)[0]


def user_param_name(name: str) -> str:
    """The parameter part of a module parameter's store name (the whole name otherwise).

    >>> user_param_name("net$$$0.weight"), user_param_name("loc")
    ('0.weight', 'loc')
    """
    return name.rpartition(MODULE_DIVIDER)[2]


InitValue = torch.Tensor | float | int | Callable[[], torch.Tensor | float | int]

_FILE_FORMAT = "pplkernel-param-store-1"


class _UnconstrainedLink:
    """What ``value.unconstrained`` holds: calling it returns the param's unconstrained leaf.

    The link is weak, so a leaf that carries its own link (real params) makes no reference cycle.
    """

    __slots__ = ("_ref",)

    def __init__(self, leaf: torch.Tensor):
        self._ref = weakref.ref(leaf)

    def __call__(self) -> torch.Tensor | None:
        return self._ref()

    def __reduce__(self) -> tuple[type, tuple]:
        # torch.save pickles a tensor's attributes, and a weakref cannot be pickled (in Pyro,
        # torch.save of a param value or of a module given to pyro.module fails for this reason).
        # A link to a live leaf means nothing once saved; it is written as an empty set, which every
        # loader accepts, including torch.load(weights_only=True).
        return (set, ())

    def __deepcopy__(self, memo: dict) -> _UnconstrainedLink:
        return self


class _Param:
    """One stored param: the leaf, its constraint, the cached transform, and metadata."""

    __slots__ = ("constraint", "event_dim", "leaf", "link", "transform")

    def __init__(
        self,
        leaf: torch.Tensor,
        constraint: Constraint,
        transform: Transform,
        event_dim: int | None,
    ):
        self.leaf = leaf
        self.constraint = constraint
        self.transform = transform
        self.event_dim = event_dim
        self.link = _UnconstrainedLink(leaf)


def _transform_for(name: str, constraint: Any) -> Transform:
    if not isinstance(constraint, Constraint):
        raise ParamError(
            f"param {name!r}: constraint must be a torch.distributions constraint such as "
            f"constraints.positive, got {constraint!r} ({type(constraint).__name__})"
        )
    try:
        return transform_to(constraint)
    except NotImplementedError:
        raise ParamError(
            f"param {name!r}: {describe_constraint(constraint)} has no transform from "
            "unconstrained space, so no param can live in it (params are continuous and are "
            "optimised without bounds). Use a continuous constraint such as constraints.real, "
            "constraints.positive or constraints.interval(low, high)."
        ) from None


def _as_value(name: str, init: Any) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        if not init.is_floating_point():
            raise ParamError(
                f"param {name!r}: the initial value has dtype {init.dtype}, but a param must be "
                "floating point to be optimised. Pass e.g. init.float() or "
                "torch.tensor(..., dtype=torch.float32)."
            )
        return init
    if isinstance(init, int | float):
        return torch.tensor(float(init), dtype=torch.get_default_dtype())
    raise ParamError(
        f"param {name!r}: the initial value must be a tensor, a number, or a function of no "
        f"arguments returning one; got a {type(init).__name__}"
    )


def _warn_if_init_ignored(name: str, init: Any, value: torch.Tensor) -> None:
    """Warn when an existing param is declared with an initial value of another shape."""
    if isinstance(init, torch.Tensor):
        shape = init.shape
    elif isinstance(init, int | float):
        shape = torch.Size()
    else:
        return
    if shape == value.shape:
        return
    warnings.warn(
        f"param {name!r} already exists with shape {fmt_shape(value.shape)}; the initial value "
        f"given now has shape {fmt_shape(shape)} and is ignored (an existing param keeps its "
        "value). If the model changed, remove the old value first: "
        f"del pyro.get_param_store()[{name!r}], or pyro.clear_param_store().",
        UserWarning,
        stacklevel=3,
    )


def _fmt_values(values: torch.Tensor) -> str:
    def fmt(x: Any) -> str:
        return "[" + ", ".join(fmt(v) for v in x) + "]" if isinstance(x, list) else f"{x:.4g}"

    return fmt(values.detach().cpu().tolist())


def _support_problem(name: str, value: torch.Tensor, constraint: Constraint) -> str | None:
    """What lies outside ``constraint`` in the initial ``value``, in words (None when nothing)."""
    event_dim = constraint.event_dim
    described = describe_constraint(constraint)
    if value.dim() < event_dim:
        raise ParamError(
            f"param {name!r}: {described} constrains the last {event_dim} dims of a value "
            f"(event_dim={event_dim}), but the initial value has shape {fmt_shape(value.shape)}. "
            f"Give an initial value with at least {event_dim} dims."
        )
    with torch.no_grad():
        try:
            ok = constraint.check(value)
        except (RuntimeError, ValueError, IndexError) as err:
            raise ParamError(
                f"param {name!r}: the initial value of shape {fmt_shape(value.shape)} cannot be "
                f"checked against {described}: {err}"
            ) from err
        if bool(ok.all()):
            return None
        bad = ~ok
        event_shape = value.shape[value.dim() - event_dim :]
        # Tensor bounds can broadcast the check wider than the value itself.
        bad_values = value.expand(bad.shape + event_shape)[bad]
        count, total = int(bad.sum()), bad.numel()
    if event_dim == 0:
        what = f"{count} of {total} entries"
        shown = f"first bad values: {_fmt_values(bad_values[:5])}"
    else:
        what = f"{count} of {total} events (each of shape {fmt_shape(event_shape)})"
        shown = f"first bad event: {_fmt_values(bad_values[0])}"
    nan_hint = " NaN lies outside every support." if bool(bad_values.isnan().any()) else ""
    return (
        f"param {name!r}: {what} of the initial value (shape {fmt_shape(value.shape)}) lie "
        f"outside the support of {described}; {shown}.{nan_hint}"
    )


def _weights_for_simplex(value: torch.Tensor, constraint: Constraint) -> bool:
    """Whether ``value`` holds finite non-negative weights, each event with a positive sum, for
    a simplex constraint."""
    if not isinstance(constraint, type(constraints.simplex)) or value.dim() < 1:
        return False
    with torch.no_grad():
        finite_weights = torch.isfinite(value).all() and (value >= 0).all()
        return bool(finite_weights and (value.sum(-1) > 0).all())


def _new_leaf(
    name: str, value: torch.Tensor, constraint: Constraint, transform: Transform
) -> torch.Tensor:
    """The unconstrained leaf for a constrained value, after checking the value may live there.

    As in Pyro, an initial value outside the support that the constraint's transform still
    maps to a finite unconstrained value is accepted, with a warning: the param starts at the
    point of the support the transform maps it to. One it cannot map is an error naming the
    param. Non-negative weights for a simplex are accepted silently: they map to themselves
    divided by their sum, which is what such weights mean (``torch.ones(3)`` starts at thirds).
    """
    problem = (
        None
        if _weights_for_simplex(value, constraint)
        else _support_problem(name, value, constraint)
    )
    with torch.no_grad():
        unconstrained = transform.inv(value)
        finite = torch.isfinite(unconstrained)
        if problem is not None:
            if not bool(finite.all()):
                raise SupportError(
                    f"{problem} The constraint's transform cannot map it into the support. Pass "
                    "an initial value inside the support, or declare the param with a "
                    "constraint that admits it."
                )
            mapped = transform(unconstrained)
            warnings.warn(
                f"{problem} It was mapped into the support, as Pyro does: the param starts at "
                f"{_fmt_values(mapped.reshape(-1)[:6])}"
                f"{' ...' if mapped.numel() > 6 else ''}. Pass a value inside the support to "
                "start exactly where you mean.",
                UserWarning,
                stacklevel=5,
            )
        elif not bool(finite.all()):
            count = int((~finite).sum())
            raise SupportError(
                f"param {name!r}: the initial value (shape {fmt_shape(value.shape)}) lies on the "
                f"boundary of {describe_constraint(constraint)} or is infinite, so {count} of "
                f"{finite.numel()} entries of its unconstrained value are infinite or NaN and "
                "every gradient would be NaN. Move the initial value strictly inside the support "
                "(e.g. 0.999 instead of 1 for constraints.unit_interval)."
            )
    if unconstrained is value and value.is_leaf and value.requires_grad:
        # An nn.Parameter (or any grad-requiring leaf) under an identity transform is stored as
        # itself, as Pyro does: pyro.module and user code then share one tensor with the store.
        return value
    leaf = unconstrained.detach()
    if leaf.untyped_storage().data_ptr() == value.untyped_storage().data_ptr():
        # The optimiser updates the leaf in place; that must not write into the caller's tensor.
        leaf = leaf.clone(memory_format=torch.contiguous_format)
    return leaf.contiguous().requires_grad_(True)


def _make_param(name: str, init: Any, constraint: Constraint, event_dim: int | None) -> _Param:
    if event_dim is not None and not (isinstance(event_dim, int) and event_dim >= 0):
        raise ParamError(
            f"param {name!r}: event_dim must be None or an int >= 0, got {event_dim!r}"
        )
    transform = _transform_for(name, constraint)
    value = _as_value(name, init)
    return _Param(_new_leaf(name, value, constraint, transform), constraint, transform, event_dim)


@dataclass(frozen=True)
class ParamSnapshot:
    """A store's contents at one moment, by value: what :meth:`ParamStoreDict.transaction`
    restores. ``params`` are the stored entries (in order), ``values`` copies of their leaves.
    """

    params: dict[str, _Param]
    values: dict[str, torch.Tensor]


class ParamStoreDict:
    """A mapping from param names to constrained values, stored as unconstrained leaves.

    Reading (``store[name]``, ``values()``, ``items()``, ``get_param``) returns the constrained
    value, recomputed from the leaf each time so gradients flow to it; the value's
    ``.unconstrained()`` returns the leaf. A call that raises leaves the store as it was.

    >>> import torch
    >>> store = ParamStoreDict()
    >>> store["loc"] = torch.zeros(3)
    >>> list(store.keys()), store["loc"].shape
    (['loc'], torch.Size([3]))
    """

    def __init__(self) -> None:
        self._params: dict[str, _Param] = {}
        self._name_by_leaf_id: dict[int, str] = {}

    def _unlink(self, name: str, old: _Param | None) -> None:
        if old is not None and self._name_by_leaf_id.get(id(old.leaf)) == name:
            del self._name_by_leaf_id[id(old.leaf)]

    def _commit(self, name: str, param: _Param) -> None:
        # Assigning over an existing key keeps the param's place in the iteration order.
        self._unlink(name, self._params.get(name))
        self._params[name] = param
        self._name_by_leaf_id[id(param.leaf)] = name

    def _missing(self, name: str, creating: bool) -> MissingParamError:
        if creating:
            message = (
                f"param {name!r} does not exist and no initial value was given to create it. "
                f"Give it one on first use, e.g. pyro.param({name!r}, torch.zeros(3)) or "
                f"pyro.param({name!r}, lambda: torch.randn(3))."
            )
        else:
            message = f"param {name!r} is not in the param store."
        close = difflib.get_close_matches(name, list(self._params), n=3)
        if close:
            message += f" Did you mean {', '.join(repr(c) for c in close)}?"
        elif self._params:
            names = list(self._params)
            listed = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
            message += f" The store holds {len(names)} params: {listed}."
        else:
            message += (
                " The param store is empty (a fresh session, or after pyro.clear_param_store())."
            )
        return MissingParamError(message, name)

    def _constrained(self, param: _Param) -> torch.Tensor:
        value = param.transform(param.leaf)
        value.unconstrained = param.link
        return value

    def get_param(
        self,
        name: str,
        init_tensor: InitValue | None = None,
        constraint: Constraint | None = None,
        event_dim: int | None = None,
    ) -> torch.Tensor:
        """Return the constrained value of param ``name``, creating it from ``init_tensor`` if new.

        ``init_tensor`` is a tensor, a number, or a function of no arguments called only when the
        param does not exist yet. An existing param keeps its value and ignores ``init_tensor``,
        as in Pyro; when the ignored initial value has another shape than the stored value (the
        model changed, or a store was loaded), a ``UserWarning`` names the param and both shapes.
        It is a warning, not an error, because Pyro code that re-declares a param this way still
        runs with the stored value.
        ``constraint=None`` means unspecified: ``constraints.real`` for a new param, no check for
        an existing one; an explicit constraint must equal the one the param was created with.
        ``event_dim`` is kept as metadata of a new param (see :meth:`get_event_dim`).

        Raises :class:`MissingParamError` for a new param without ``init_tensor``,
        :class:`~engine.errors.ParamError` for another constraint than the stored one, and
        :class:`~engine.errors.SupportError` for an initial value outside the constraint.

        >>> import torch
        >>> from torch.distributions import constraints
        >>> store = ParamStoreDict()
        >>> store.get_param("p", lambda: torch.tensor(0.5), constraints.unit_interval).item()
        0.5
        >>> store.get_param("p", torch.tensor(0.9)).item()  # exists: the init is ignored
        0.5
        """
        param = self._params.get(name)
        if param is None:
            if init_tensor is None:
                raise self._missing(name, creating=True)
            if callable(init_tensor):
                init_tensor = init_tensor()
            param = _make_param(
                name, init_tensor, constraints.real if constraint is None else constraint, event_dim
            )
            self._commit(name, param)
        elif (
            constraint is not None
            and constraint is not param.constraint
            and not constraints_equal(constraint, param.constraint)
        ):
            raise ParamError(
                f"param {name!r} already exists with constraint "
                f"{describe_constraint(param.constraint)} (value shape "
                f"{fmt_shape(self._constrained(param).shape)}), and was now declared with "
                f"{describe_constraint(constraint)}. A param keeps the constraint it was created "
                "with. Declare it with the same constraint, or remove the old one first: "
                f"del pyro.get_param_store()[{name!r}], or pyro.clear_param_store()."
            )
        value = param.transform(param.leaf)
        value.unconstrained = param.link
        if init_tensor is not None and not callable(init_tensor):
            _warn_if_init_ignored(name, init_tensor, value)
        return value

    def get_event_dim(self, name: str) -> int | None:
        """The ``event_dim`` param ``name`` was created with (None when not given).

        >>> import torch
        >>> store = ParamStoreDict()
        >>> _ = store.get_param("w", torch.zeros(2, 3), event_dim=1)
        >>> store.get_event_dim("w")
        1
        """
        param = self._params.get(name)
        if param is None:
            raise self._missing(name, creating=False)
        return param.event_dim

    def setdefault(
        self,
        name: str,
        init_constrained_value: InitValue,
        constraint: Constraint = constraints.real,
    ) -> torch.Tensor:
        """Create param ``name`` unless it exists; return its constrained value.

        As in Pyro, an existing param is returned unchanged and ``constraint`` is not checked
        against it; ``init_constrained_value`` may be a function of no arguments.

        >>> import torch
        >>> store = ParamStoreDict()
        >>> store.setdefault("a", torch.ones(2))
        tensor([1., 1.], requires_grad=True)
        """
        param = self._params.get(name)
        if param is None:
            if callable(init_constrained_value):
                init_constrained_value = init_constrained_value()
            param = _make_param(name, init_constrained_value, constraint, None)
            self._commit(name, param)
        return self._constrained(param)

    def __getitem__(self, name: str) -> torch.Tensor:
        param = self._params.get(name)
        if param is None:
            raise self._missing(name, creating=False)
        return self._constrained(param)

    def __setitem__(self, name: str, new_constrained_value: torch.Tensor | float) -> None:
        """Set a param's constrained value; an existing param keeps its constraint, a new one is
        real. The stored leaf is a new tensor (an optimizer holding the old leaf no longer sees it).
        """
        old = self._params.get(name)
        if old is None:
            param = _make_param(name, new_constrained_value, constraints.real, None)
        else:
            value = _as_value(name, new_constrained_value)
            leaf = _new_leaf(name, value, old.constraint, old.transform)
            param = _Param(leaf, old.constraint, old.transform, old.event_dim)
        self._commit(name, param)

    def __delitem__(self, name: str) -> None:
        if name not in self._params:
            raise self._missing(name, creating=False)
        self._unlink(name, self._params.pop(name))

    def __contains__(self, name: object) -> bool:
        return name in self._params

    def __len__(self) -> int:
        return len(self._params)

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __repr__(self) -> str:
        if not self._params:
            return "ParamStoreDict (empty)"
        width = max(len(n) for n in self._params)
        with torch.no_grad():
            lines = [
                f"  {name:<{width}}  {fmt_shape(param.transform(param.leaf).shape):<12}  "
                f"{describe_constraint(param.constraint)}"
                for name, param in self._params.items()
            ]
        return f"ParamStoreDict with {len(lines)} params:\n" + "\n".join(lines)

    def keys(self) -> KeysView[str]:
        """The param names, in creation order."""
        return self._params.keys()

    def values(self) -> Iterator[torch.Tensor]:
        """The constrained values, in creation order."""
        return (self._constrained(p) for p in list(self._params.values()))

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, constrained value)`` pairs, in creation order."""
        return ((n, self._constrained(p)) for n, p in list(self._params.items()))

    def snapshot(self) -> ParamSnapshot:
        """The store's params and a copy of every value (see :meth:`restore`)."""
        with torch.no_grad():
            values = {name: p.leaf.detach().clone() for name, p in self._params.items()}
        return ParamSnapshot(dict(self._params), values)

    def restore(self, snapshot: ParamSnapshot) -> None:
        """Put the store back to ``snapshot`` bit for bit: params created since are removed,
        replaced ones come back, and every value is written back into its own leaf tensor (so
        an optimizer or a model holding the leaf sees the restored value).

        >>> import torch
        >>> store = ParamStoreDict()
        >>> store["x"] = torch.zeros(2)
        >>> saved = store.snapshot()
        >>> with torch.no_grad():
        ...     _ = store["x"].unconstrained().add_(1.0)
        >>> store["y"] = torch.ones(1)
        >>> store.restore(saved)
        >>> list(store.keys()), store["x"].tolist()
        (['x'], [0.0, 0.0])
        """
        with torch.no_grad():
            for name, param in snapshot.params.items():
                saved = snapshot.values[name]
                if param.leaf.shape != saved.shape or param.leaf.dtype != saved.dtype:
                    # Changed in place beyond a copy (resize_, set_): give back a new leaf.
                    param.leaf = saved.clone().requires_grad_(True)
                    param.link = _UnconstrainedLink(param.leaf)
                else:
                    param.leaf.copy_(saved)
                param.leaf.grad = None
        self._params = dict(snapshot.params)
        self._name_by_leaf_id = {id(p.leaf): name for name, p in self._params.items()}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[ParamSnapshot]:
        """Undo everything done to the store inside the block when the block raises (an
        exception, a ``KeyboardInterrupt``): values, new params, replaced and deleted ones.

        This is the one rollback of the engine: SVI steps, ``SVI.set_state``, loading files and
        the notebook's magics all run inside it.

        >>> import torch
        >>> store = ParamStoreDict()
        >>> store["x"] = torch.zeros(1)
        >>> try:
        ...     with store.transaction():
        ...         store["x"] = torch.ones(1)
        ...         store["new"] = torch.ones(1)
        ...         raise RuntimeError("a step failed")
        ... except RuntimeError:
        ...     pass
        >>> list(store.keys()), store["x"].item()
        (['x'], 0.0)
        """
        saved = self.snapshot()
        try:
            yield saved
        except BaseException:
            self.restore(saved)
            raise

    def copy(self) -> ParamStoreDict:
        """A new store holding copies of this one's params (same names, constraints and
        values; new leaf tensors, so changing one store never moves the other).

        >>> import torch
        >>> store = ParamStoreDict()
        >>> store["x"] = torch.zeros(1)
        >>> other = store.copy()
        >>> with torch.no_grad():
        ...     _ = other["x"].unconstrained().add_(1.0)
        >>> store["x"].item(), other["x"].item()
        (0.0, 1.0)
        """
        other = ParamStoreDict()
        with torch.no_grad():
            for name, p in self._params.items():
                leaf = p.leaf.detach().clone().requires_grad_(True)
                other._commit(name, _Param(leaf, p.constraint, p.transform, p.event_dim))
        return other

    def clear(self) -> None:
        """Remove every param."""
        self._params.clear()
        self._name_by_leaf_id.clear()

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, unconstrained leaf)`` pairs: the tensors an optimizer updates.

        >>> import torch
        >>> from torch.distributions import constraints
        >>> store = ParamStoreDict()
        >>> _ = store.get_param("s", torch.ones(1), constraints.positive)
        >>> dict(store.named_parameters())
        {'s': tensor([0.], requires_grad=True)}
        """
        return ((n, p.leaf) for n, p in list(self._params.items()))

    def leaves(self, names: Sequence[str]) -> list[torch.Tensor]:
        """The unconstrained leaves of the params ``names``, in that order (KeyError if one is
        missing).

        >>> import torch
        >>> store = ParamStoreDict()
        >>> _ = store.get_param("a", torch.ones(2))
        >>> store.leaves(["a"])[0] is store.get_param("a").unconstrained()
        True
        """
        params = self._params
        return [params[name].leaf for name in names]

    def with_leaves(self, leaves: dict[str, torch.Tensor]) -> ParamStoreDict:
        """A new store whose params named in ``leaves`` read their value from the given tensors,
        the others being this store's own (the same leaves). This store is not changed, so other
        threads never see the stand-ins: recording an SVI step as a plan
        (:mod:`engine.infer.svi_step_plan`) runs the model on them in a
        :func:`param_store_scope`.

        >>> import torch
        >>> from torch.distributions import constraints
        >>> store = ParamStoreDict()
        >>> _ = store.get_param("s", torch.ones(1), constraints.positive)
        >>> round(store.with_leaves({"s": torch.tensor([2.0])})["s"].item(), 4), store["s"].item()
        (7.3891, 1.0)
        """
        other = ParamStoreDict()
        for name, p in self._params.items():
            leaf = leaves.get(name, p.leaf)
            other._commit(
                name, p if leaf is p.leaf else _Param(leaf, p.constraint, p.transform, p.event_dim)
            )
        return other

    def get_all_param_names(self) -> list[str]:
        """The param names, as a list."""
        return list(self._params)

    def replace_param(
        self, param_name: str, new_param: torch.Tensor, old_param: torch.Tensor
    ) -> None:
        """Set ``param_name`` to ``new_param`` after checking ``old_param`` is what it holds.

        ``old_param`` is a value read from the store (or its unconstrained leaf).

        >>> import torch
        >>> store = ParamStoreDict()
        >>> old = store.get_param("x", torch.zeros(1))
        >>> store.replace_param("x", torch.ones(1), old)
        >>> store["x"]
        tensor([1.], requires_grad=True)
        """
        param = self._params.get(param_name)
        if param is None:
            raise self._missing(param_name, creating=False)
        link = getattr(old_param, "unconstrained", None)
        old_leaf = link() if callable(link) else old_param
        if old_leaf is not param.leaf:
            raise ParamError(
                f"replace_param({param_name!r}, ...): old_param is not the value the store holds "
                f"for {param_name!r} (it was replaced or reloaded since it was read). Read it "
                f"again with pyro.get_param_store()[{param_name!r}], or just assign "
                f"pyro.get_param_store()[{param_name!r}] = new_value."
            )
        self[param_name] = new_param

    def match(self, name_regex: str) -> dict[str, torch.Tensor]:
        """Constrained values of the params whose names match ``name_regex``.

        As in Pyro the pattern is anchored at the start of the name (``re.match``), not the end:
        add ``$`` to match whole names only.

        >>> import torch
        >>> store = ParamStoreDict()
        >>> for name in ["guide.loc", "guide.scale", "w"]:
        ...     store[name] = torch.zeros(1)
        >>> sorted(store.match("guide"))
        ['guide.loc', 'guide.scale']
        """
        pattern = re.compile(name_regex)
        return {n: self._constrained(p) for n, p in self._params.items() if pattern.match(n)}

    def param_name(self, unconstrained_tensor: torch.Tensor) -> str | None:
        """The name of the param whose unconstrained leaf is ``unconstrained_tensor``, else None.

        >>> import torch
        >>> store = ParamStoreDict()
        >>> leaf = store.get_param("x", torch.zeros(1)).unconstrained()
        >>> store.param_name(leaf), store.param_name(torch.zeros(1))
        ('x', None)
        """
        name = self._name_by_leaf_id.get(id(unconstrained_tensor))
        if name is not None and self._params[name].leaf is unconstrained_tensor:
            return name
        return None

    def get_state(self) -> dict[str, dict[str, Any]]:
        """The store's contents: ``{"params": {name: leaf}, "constraints": {name: constraint},
        "event_dims": {name: event_dim}}``.

        The leaves are the live tensors, not copies: an optimizer step changes them. Clone them
        for a snapshot.

        >>> import torch
        >>> store = ParamStoreDict()
        >>> store["x"] = torch.zeros(1)
        >>> sorted(store.get_state())
        ['constraints', 'event_dims', 'params']
        """
        return {
            "params": {n: p.leaf for n, p in self._params.items()},
            "constraints": {n: p.constraint for n, p in self._params.items()},
            "event_dims": {n: p.event_dim for n, p in self._params.items()},
        }

    def set_state(self, state: dict[str, dict[str, Any]]) -> None:
        """Merge a :meth:`get_state` result into the store: its params replace same-named ones.

        ``"event_dims"`` may be missing (Pyro's states have none). Leaf tensors are stored as they
        are (set to require grad), so ``set_state(get_state())`` keeps every tensor's identity.

        >>> import torch
        >>> a, b = ParamStoreDict(), ParamStoreDict()
        >>> a["x"] = torch.zeros(1)
        >>> b.set_state(a.get_state())
        >>> b["x"] is a["x"]
        True
        """
        if (
            not isinstance(state, dict)
            or not isinstance(state.get("params"), dict)
            or not isinstance(state.get("constraints"), dict)
            or not isinstance(state.get("event_dims", {}), dict)
        ):
            raise ParamError(
                "a param store state is a dict {'params': {name: unconstrained tensor}, "
                "'constraints': {name: constraint}} (plus an optional 'event_dims'); got "
                f"{state!r:.200}"
            )
        params, constraint_map = state["params"], state["constraints"]
        event_dims = state.get("event_dims", {})
        unmatched = sorted(params.keys() ^ constraint_map.keys())
        if unmatched:
            raise ParamError(
                f"malformed param store state: {unmatched} appear in only one of 'params' and "
                "'constraints'; every param needs both."
            )
        staged: list[tuple[str, torch.Tensor, Constraint, Transform, int | None]] = []
        for name, tensor in params.items():
            transform = _transform_for(name, constraint_map[name])
            if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
                raise ParamError(
                    f"param {name!r} in the state is not a floating-point tensor: {tensor!r}"
                )
            leaf = tensor if tensor.is_leaf else tensor.detach().clone()
            staged.append((name, leaf, constraint_map[name], transform, event_dims.get(name)))
        for name, leaf, constraint, transform, event_dim in staged:
            leaf.requires_grad_(True)
            self._commit(name, _Param(leaf, constraint, transform, event_dim))

    def to_payload(self) -> dict[str, Any]:
        """Every param as tensors and plain data only (what :meth:`save` writes).

        >>> store = ParamStoreDict()
        >>> store["x"] = torch.zeros(2)
        >>> sorted(store.to_payload()["params"])
        ['x']
        """
        encoded = {}
        for name, param in self._params.items():
            try:
                encoded[name] = encode_constraint(param.constraint)
            except ParamError as err:
                raise ParamError(f"cannot save param {name!r}: {err.message}") from err
        return {
            "format": _FILE_FORMAT,
            # Plain tensors of their own: no attributes, no subclass, nothing but the numbers,
            # copied so that a payload kept in memory (SVI.get_state) does not move with later
            # steps.
            "params": {
                n: p.leaf.detach().clone().as_subclass(torch.Tensor)
                for n, p in self._params.items()
            },
            "constraints": encoded,
            "event_dims": {n: p.event_dim for n, p in self._params.items()},
        }

    def load_payload(self, payload: Any, source: str = "the payload") -> None:
        """Merge params from :meth:`to_payload`'s output; same-named params are replaced.

        All or nothing: a malformed payload raises :class:`ParamError` naming ``source`` and
        leaves the store as it was.
        """
        if not isinstance(payload, dict) or payload.get("format") != _FILE_FORMAT:
            raise ParamError(
                f"{source} is not a param store file written by ParamStoreDict.save (it lacks "
                "the format marker)."
            )
        for key in ("params", "constraints", "event_dims"):
            if not isinstance(payload.get(key), dict):
                raise ParamError(f"{source} has no {key!r} dict, so it is not a whole param store")
        decoded = {}
        for name, data in payload["constraints"].items():
            try:
                decoded[name] = decode_constraint(data)
            except ParamError as err:
                raise ParamError(
                    f"param {name!r} in {source} has a constraint that cannot be read: "
                    f"{err.message}"
                ) from err
        self.set_state(
            {
                "params": payload["params"],
                "constraints": decoded,
                "event_dims": payload["event_dims"],
            }
        )

    def save(self, filename: str | os.PathLike[str]) -> None:
        """Write every param to ``filename`` atomically, as tensors and plain data only.

        The file is written beside the target and moved over it once complete, so a crash never
        leaves a half-written file. It loads with ``torch.load(filename, weights_only=True)``.

        >>> import os, tempfile, torch
        >>> store = ParamStoreDict()
        >>> store["x"] = torch.zeros(2)
        >>> path = os.path.join(tempfile.mkdtemp(), "params.pt")
        >>> store.save(path)
        >>> sorted(torch.load(path, weights_only=True)["params"])
        ['x']
        """
        atomic_torch_save(self.to_payload(), filename, what="the param store")

    def load(
        self,
        filename: str | os.PathLike[str],
        map_location: str | torch.device | dict | Callable | None = None,
    ) -> None:
        """Merge params saved by :meth:`save` into the store; same-named params are replaced.

        ``map_location`` is passed to ``torch.load`` (e.g. ``"cpu"`` for a file saved on a GPU).
        A file that cannot be read or used raises a :class:`~engine.errors.StateFileError` naming
        it and what is wrong, and the store stays as it was. Replacing a param by one of another
        shape warns.

        >>> import os, tempfile, torch
        >>> store = ParamStoreDict()
        >>> store["x"] = torch.ones(2)
        >>> path = os.path.join(tempfile.mkdtemp(), "params.pt")
        >>> store.save(path)
        >>> store.clear()
        >>> store.load(path, map_location="cpu")
        >>> store["x"]
        tensor([1., 1.], requires_grad=True)
        """
        path = os.fspath(filename)
        payload = load_state_file(path, _FILE_FORMAT, map_location)
        before = self.get_state()["params"]
        try:
            self.load_payload(payload, source="the file")
        except ParamError as err:
            raise content_error(path, _FILE_FORMAT, err.message.rstrip(".")) from err
        warn_replaced_shapes(before, payload["params"], path)


_PARAM_STORE = ParamStoreDict()
# The store ``param`` uses: the global one, unless a ``param_store_scope`` is active in this
# thread (a context variable, so a run stepping in a background thread keeps its own scope).
_ACTIVE_STORE: contextvars.ContextVar[ParamStoreDict] = contextvars.ContextVar(
    "active_param_store", default=_PARAM_STORE
)
# How many scopes are open in all threads. While none is, the global store is the answer
# without reading the context variable, which torch.compile cannot trace (a graph break in
# every compiled guide that reads a param).
_open_scopes = 0
_open_scopes_lock = threading.Lock()


def get_param_store() -> ParamStoreDict:
    """The param store ``param`` reads and writes: the global one, or the store of the
    innermost :func:`param_store_scope`.

    >>> get_param_store() is get_param_store()
    True
    """
    if not _open_scopes:
        return _PARAM_STORE
    return _ACTIVE_STORE.get()


@contextlib.contextmanager
def param_store_scope(store: ParamStoreDict) -> Iterator[ParamStoreDict]:
    """Make ``store`` the param store inside the block, in this thread only.

    Pyro has one global store, so two fits of one model share their params. A scope gives a
    fit its own params under Pyro's names: the notebook's SVI runs each step in their own.

    >>> import torch, engine
    >>> own = ParamStoreDict()
    >>> with param_store_scope(own):
    ...     _ = engine.param("w", torch.zeros(1))
    >>> "w" in own, "w" in get_param_store()
    (True, False)
    """
    if not isinstance(store, ParamStoreDict):
        raise ParamError(f"param_store_scope needs a ParamStoreDict, got {type(store).__name__}")
    global _open_scopes
    with _open_scopes_lock:
        _open_scopes += 1
    token = _ACTIVE_STORE.set(store)
    try:
        yield store
    finally:
        _ACTIVE_STORE.reset(token)
        with _open_scopes_lock:
            _open_scopes -= 1


def clear_param_store() -> None:
    """Remove every param from the param store in use (see :func:`get_param_store`).

    >>> import torch
    >>> get_param_store()["tmp"] = torch.zeros(1)
    >>> clear_param_store()
    >>> len(get_param_store())
    0
    """
    get_param_store().clear()
