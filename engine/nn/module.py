"""``PyroModule``: a ``torch.nn.Module`` whose attributes are Pyro params and sample sites.

Attributes of a ``PyroModule`` are named by their path from the root module
(``model.linear.weight`` is ``"linear.weight"``; a root built as ``PyroModule("net")`` prefixes
``"net."``), and reading them inside a call of the module is an effect:

- an ``nn.Parameter`` or a :class:`~engine.nn.declarations.PyroParam` is a ``param`` site, kept in
  the active param store as the module's own tensor (see :mod:`engine.nn.store_sync`);
- a :class:`~engine.nn.declarations.PyroSample` is a ``sample`` site drawn from its prior, once
  per call of the outermost module (reading it twice in one call gives the same draw);
- a plain ``nn.Module`` child is registered with :func:`engine.module` (``"child$$$weight"``).

Outside a call the attributes read as plain values: a constrained param value, a fresh draw
from the prior. ``PyroModule[nn.Linear]`` makes a ``PyroModule`` of any ``torch.nn`` class, and
:func:`to_pyro_module_` converts an existing module tree in place.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> engine.clear_param_store()
>>> class Regression(PyroModule):
...     def __init__(self):
...         super().__init__()
...         self.linear = PyroModule[torch.nn.Linear](2, 1)
...         self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 2]).to_event(2))
...     def forward(self, x):
...         return self.linear(x).squeeze(-1)
>>> trace = poutine.trace(Regression()).get_trace(torch.ones(3, 2))
>>> [(name, site["type"]) for name, site in trace.nodes.items() if site["type"] != "args"][:2]
[('linear.weight', 'sample'), ('linear.bias', 'param')]
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch.distributions import transform_to
from torch.distributions.constraints import Constraint, real

from engine.errors import ModuleError
from engine.nn.context import CallContext
from engine.nn.declarations import PyroParam, PyroSample, is_distribution
from engine.nn.store_sync import bind_to_store, drop_from_store, drop_subtree_from_store
from engine.params import ParamStoreDict, get_param_store
from engine.primitives import deterministic, param, sample
from engine.primitives import module as register_module

__all__ = [
    "PyroModule",
    "PyroModuleList",
    "PyroParam",
    "PyroSample",
    "clear",
    "pyro_method",
    "to_pyro_module_",
]

_UNCONSTRAINED = "_unconstrained"
_F = TypeVar("_F", bound=Callable[..., Any])


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _init_pyro_state(module: torch.nn.Module, name: str) -> None:
    # Written into __dict__ directly: this runs before nn.Module.__init__ (and in
    # to_pyro_module_ on a live module), where setattr would go through __setattr__.
    module.__dict__.update(
        _pyro_name=name,
        _pyro_context=CallContext(),
        _pyro_params={},  # attribute name -> (constraint, event_dim)
        _pyro_samples={},  # attribute name -> prior
        _pyro_module_wins=set(),  # parameter keys just loaded by load_state_dict
        _pyro_store_of={},  # parameter key -> weakref of the param store holding it
    )


def _new_mixin_instance(base: type[torch.nn.Module]) -> PyroModule:
    """An empty instance of ``PyroModule[base]``, for unpickling (``torch.load``, deepcopy)."""
    cls = PyroModule[base]
    return cls.__new__(cls)


class _PyroModuleMeta(type):
    """Gives ``PyroModule[SomeModule]``: the class mixing ``PyroModule`` into ``SomeModule``."""

    _mixins: dict[type, type] = {}

    def __getitem__(cls, base: type[torch.nn.Module]) -> type[PyroModule]:
        if not (isinstance(base, type) and issubclass(base, torch.nn.Module)):
            raise ModuleError(
                f"PyroModule[...] takes a torch.nn.Module subclass such as nn.Linear or "
                f"nn.Sequential, got {base!r}. To convert a module instance, use "
                "to_pyro_module_(module)."
            )
        if issubclass(base, PyroModule):
            return base
        if base is torch.nn.Module:
            return PyroModule
        mixin = _PyroModuleMeta._mixins.get(base)
        if mixin is None:
            # Every nn.Module base becomes a PyroModule too, so PyroModule[nn.GRU] is a subclass
            # of PyroModule[nn.RNNBase], as the torch hierarchy has it.
            pyro_bases = tuple(
                PyroModule[b] for b in base.__bases__ if issubclass(b, torch.nn.Module)
            )

            def __reduce_ex__(self: PyroModule, protocol: Any) -> Any:
                # The class is made at run time, so pickle cannot find it by name: rebuild it
                # from the torch class it mixes into (a user's subclass pickles as usual).
                if type(self) is _PyroModuleMeta._mixins.get(base):
                    return _new_mixin_instance, (base,), self.__getstate__()
                return object.__reduce_ex__(self, protocol)

            namespace = {"__reduce_ex__": __reduce_ex__, "__module__": __name__}
            mixin = type(cls)(f"Pyro{base.__name__}", (base, *pyro_bases), namespace)
            mixin.__qualname__ = f"PyroModule[{base.__qualname__}]"
            _PyroModuleMeta._mixins[base] = mixin
        return mixin


class PyroModule(torch.nn.Module, metaclass=_PyroModuleMeta):
    """A ``torch.nn.Module`` whose ``nn.Parameter``, ``PyroParam`` and ``PyroSample``
    attributes are params and sample sites named by their attribute path (see the module
    docstring). ``name`` prefixes the names of a root module; a submodule takes its name from
    the attribute it is assigned to.

    The parameters are the param store's tensors: setting an attribute, reading it in a call and
    deleting it keep the module and the active store in step (a store entry of the same name,
    loaded from a file or left by another module of the same names, gives the module its value).
    ``state_dict()`` holds the unconstrained tensors (``bias_unconstrained`` for a
    ``PyroParam``); ``load_state_dict`` values win over the store at the next call.

    >>> import torch
    >>> from torch.distributions import constraints
    >>> import engine
    >>> engine.clear_param_store()
    >>> class Scale(PyroModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = PyroParam(torch.tensor(2.0), constraints.positive)
    ...     def forward(self, x):
    ...         return self.scale * x
    >>> m = Scale()
    >>> m(torch.tensor(1.5)).item(), list(engine.get_param_store().keys())
    (3.0, ['scale'])
    """

    def __init__(self, name: str = "") -> None:
        _init_pyro_state(self, name)
        super().__init__()

    # -- naming --------------------------------------------------------------------------------

    def _pyro_fullname(self, name: str) -> str:
        return _join(self.__dict__["_pyro_name"], name)

    def _pyro_attach(self, name: str, context: CallContext) -> None:
        """Name this module ``name`` inside a tree whose calls share ``context``."""
        self._pyro_check_attachable(name, context)
        self._pyro_rename(name, context)

    def _pyro_rename(self, name: str, context: CallContext) -> None:
        self.__dict__["_pyro_name"] = name
        self.__dict__["_pyro_context"] = context
        for key, child in self._modules.items():
            if isinstance(child, PyroModule):
                child._pyro_rename(_join(name, key), context)

    def _pyro_check_attachable(self, name: str, context: CallContext) -> None:
        # As Pyro does, a module may join a tree after being called on its own, but not one whose
        # PyroModule submodules were: their sites already ran under other names.
        for key, child in self._modules.items():
            if not isinstance(child, PyroModule):
                continue
            if child._pyro_context.used and child._pyro_context is not context:
                raise ModuleError(
                    f"PyroModule {_join(name, key)!r} ({type(child).__name__}) was already "
                    "called on its own, so its params and sites are in use under its old names; "
                    "a module tree is named once, from its root. Build the submodules inside the "
                    "parent (or assign them to it) before calling them."
                )
            child._pyro_check_attachable(_join(name, key), context)

    def add_module(self, name: str, module: torch.nn.Module | None) -> None:
        """Register a child module; a ``PyroModule`` child joins this tree's names and calls."""
        if isinstance(module, PyroModule):
            module._pyro_attach(self._pyro_fullname(name), self.__dict__["_pyro_context"])
        super().add_module(name, module)

    def named_pyro_params(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, value)`` of the params, constrained and under their attribute names
        (``"bias"``, not ``"bias_unconstrained"``).

        >>> import torch
        >>> m = PyroModule()
        >>> m.loc = torch.nn.Parameter(torch.zeros(1))
        >>> m.scale = PyroParam(torch.ones(1), torch.distributions.constraints.positive)
        >>> [name for name, _ in m.named_pyro_params()]
        ['loc', 'scale']
        """
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        seen: set[int] = set()
        for module_prefix, module in modules:
            declared = module.__dict__.get("_pyro_params", {})
            for key, tensor in module._parameters.items():
                if tensor is None or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                name = key[: -len(_UNCONSTRAINED)] if key.endswith(_UNCONSTRAINED) else key
                if name != key and name in declared:
                    yield _join(module_prefix, name), getattr(module, name)
                else:
                    yield _join(module_prefix, key), tensor

    # -- calls ---------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.__dict__["_pyro_context"]:
            return super().__call__(*args, **kwargs)

    # -- reading attributes --------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__
        declared = state.get("_pyro_params")
        if declared is not None and name in declared:
            constraint, event_dim = declared[name]
            return self._pyro_param(name, name + _UNCONSTRAINED, constraint, event_dim)
        samples = state.get("_pyro_samples")
        if samples is not None and name in samples:
            return self._pyro_sample(name, samples[name])
        result = super().__getattr__(name)
        if isinstance(result, torch.nn.Parameter):
            if name.endswith(_UNCONSTRAINED) and name[: -len(_UNCONSTRAINED)] in (declared or ()):
                return result  # a PyroParam's storage, read as such
            return self._pyro_param(name, name, real, None)
        if isinstance(result, PyroModule):
            if not result.__dict__["_pyro_name"]:
                # Converted in place after it was registered here (to_pyro_module_ on a child).
                result._pyro_attach(self._pyro_fullname(name), state["_pyro_context"])
        elif isinstance(result, torch.nn.Module) and state["_pyro_context"].active:
            register_module(self._pyro_fullname(name), result)
        return result

    def _pyro_param(
        self, name: str, key: str, constraint: Constraint, event_dim: int | None
    ) -> torch.Tensor:
        """The value of the param attribute ``name`` stored as ``self._parameters[key]``."""
        if self.__dict__["_pyro_context"].active:
            fullname = self._pyro_fullname(name)
            wins = self.__dict__.get("_pyro_module_wins", set())
            if bind_to_store(self, key, fullname, constraint, event_dim, key in wins):
                wins.discard(key)
                return param(fullname, event_dim=event_dim)
        leaf = self._parameters[key]
        return leaf if constraint is real else transform_to(constraint)(leaf)

    def _pyro_sample(self, name: str, prior: Any) -> torch.Tensor:
        """The value of the random attribute ``name``: one draw per outermost call."""
        context = self.__dict__["_pyro_context"]
        if not context.active:
            fn = self._pyro_prior(name, prior)
            if isinstance(fn, torch.Tensor):
                return fn
            return fn.rsample() if fn.has_rsample else fn.sample()
        fullname = self._pyro_fullname(name)
        value = context.get(fullname)
        if value is None:
            fn = self._pyro_prior(name, prior)
            if isinstance(fn, torch.Tensor):
                value = deterministic(fullname, fn)
            else:
                value = sample(fullname, fn)
            context.set(fullname, value)
        return value

    def _pyro_prior(self, name: str, prior: Any) -> Any:
        if is_distribution(prior):
            return prior
        fn = prior(self)
        if not (is_distribution(fn) or isinstance(fn, torch.Tensor)):
            raise ModuleError(
                f"PyroSample {self._pyro_fullname(name)!r} of {type(self).__name__}: its prior "
                f"function returned {type(fn).__name__} {fn!r:.80}, but it must return a "
                "distribution (to draw from) or a tensor (a deterministic value)."
            )
        return fn

    # -- setting and deleting attributes -------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, PyroModule):
            self._pyro_forget(name)
            self.add_module(name, value)
        elif isinstance(value, PyroParam):
            self._pyro_forget(name)
            self._pyro_set_param(name, value)
        elif isinstance(value, PyroSample):
            self._pyro_forget(name)
            self.__dict__["_pyro_samples"][name] = value.prior
        elif isinstance(value, torch.nn.Parameter):
            self._pyro_forget(name)
            super().__setattr__(name, value)
            if self.__dict__["_pyro_context"].active:
                # Inside a call the param store decides, as on a read: its entry wins.
                bind_to_store(self, name, self._pyro_fullname(name), real, None, False)
        elif isinstance(value, torch.Tensor) and name in self.__dict__.get("_pyro_params", ()):
            # A new value for a declared PyroParam (checked against its constraint) replaces the
            # data of its unconstrained tensor, which the store shares: the store sees it too.
            constraint, event_dim = self._pyro_params[name]
            fresh = _unconstrained_leaf(
                self._pyro_fullname(name), value.detach(), constraint, event_dim
            )
            self._parameters[name + _UNCONSTRAINED].data = fresh.detach()
        else:
            state = self.__dict__
            if name in state.get("_pyro_params", ()) or name in state.get("_pyro_samples", ()):
                self._pyro_forget(name)  # a plain value replaces the declaration
            super().__setattr__(name, value)

    def _pyro_set_param(self, name: str, declared: PyroParam) -> None:
        init, constraint, event_dim = declared
        fullname = self._pyro_fullname(name)
        if init is None:
            raise ModuleError(
                f"PyroParam {fullname!r} has no initial value: give a tensor, or a function of "
                "no arguments returning one (PyroParam(torch.zeros(3)))."
            )
        active = self.__dict__["_pyro_context"].active
        store = get_param_store()
        if active and fullname in store:
            # Inside a call an existing store entry wins (its init is not even evaluated).
            leaf = store.get_param(fullname, constraint=constraint).unconstrained()
        else:
            leaf = _unconstrained_leaf(fullname, init, constraint, event_dim)
        key = name + _UNCONSTRAINED
        self._pyro_params[name] = (constraint, event_dim)
        parameter = leaf if isinstance(leaf, torch.nn.Parameter) else torch.nn.Parameter(leaf)
        super().__setattr__(key, parameter)
        if active:
            # The store holds the module's Parameter itself (sharing memory with its entry).
            bind_to_store(self, key, fullname, constraint, event_dim, True)

    def _pyro_forget(self, name: str) -> None:
        """Remove whatever ``name`` holds, as ``del`` would, before something else replaces it."""
        with contextlib.suppress(AttributeError):
            delattr(self, name)

    def __delattr__(self, name: str) -> None:
        state = self.__dict__
        used = state["_pyro_context"].used
        if name in self._parameters:
            del self._parameters[name]
            if used:
                drop_from_store(self._pyro_fullname(name))
        elif name in state["_pyro_params"]:
            del self._parameters[name + _UNCONSTRAINED]
            del state["_pyro_params"][name]
            if used:
                drop_from_store(self._pyro_fullname(name))
        elif name in state["_pyro_samples"]:
            del state["_pyro_samples"][name]
        elif name in self._modules:
            del self._modules[name]
            if used:
                drop_subtree_from_store(self._pyro_fullname(name))
        else:
            super().__delattr__(name)

    # -- state_dict and pickling ---------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        # Which param store holds each tensor is a set of weak references, meaningless in a copy.
        return {k: v for k, v in state.items() if k != "_pyro_store_of"}

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        # The loaded values are what the user asked for: at the next call they replace what the
        # param store holds under these names (otherwise the store would win, as in Pyro).
        loaded = {key for key in self._parameters if prefix + key in state_dict}
        self.__dict__.setdefault("_pyro_module_wins", set()).update(loaded)


def _unconstrained_leaf(
    fullname: str, init: Any, constraint: Constraint, event_dim: int | None
) -> torch.Tensor:
    """The unconstrained tensor for ``init``, with every check the param store makes (a value
    outside the constraint, a non-float tensor, ...): a scratch store runs them, so a module
    attribute set outside a call is held to the same rules as ``pyro.param``."""
    scratch = ParamStoreDict()  # held here: the value links to its leaf only weakly
    return scratch.get_param(fullname, init, constraint, event_dim).unconstrained()


def pyro_method(fn: _F) -> _F:
    """Make a method other than ``forward`` a call of its ``PyroModule``: its reads are sites,
    and its draws are cached as in ``forward``.

    >>> import engine.distributions as dist
    >>> class Prior(PyroModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.z = PyroSample(dist.Normal(0.0, 1.0))
    ...     @pyro_method
    ...     def twice(self):
    ...         return self.z, self.z
    >>> first, second = Prior().twice()
    >>> bool(first == second)
    True
    """

    @functools.wraps(fn)
    def in_call(self: PyroModule, *args: Any, **kwargs: Any) -> Any:
        with self.__dict__["_pyro_context"]:
            return fn(self, *args, **kwargs)

    return in_call  # type: ignore[return-value]


def clear(module: PyroModule) -> None:
    """Remove the params, plain parameters and submodules of ``module``, here and in the param
    store (so a module built again under the same names starts from its initial values).

    >>> import torch
    >>> m = PyroModule()
    >>> m.w = torch.nn.Parameter(torch.zeros(1))
    >>> clear(m); list(m.parameters())
    []
    """
    if not isinstance(module, PyroModule):
        raise ModuleError(f"clear() takes a PyroModule, got {type(module).__name__}")
    for name in list(module._pyro_params):
        delattr(module, name)
    for name in list(module._parameters):
        delattr(module, name)
    for name in list(module._modules):
        delattr(module, name)


def to_pyro_module_(m: torch.nn.Module, recurse: bool = True) -> None:
    """Turn the module ``m`` (and, with ``recurse``, its submodules) into ``PyroModule``s in
    place: ``m`` becomes an instance of ``PyroModule[type(m)]``, keeping its parameters.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
    >>> to_pyro_module_(net)
    >>> type(net).__name__, type(net[0]).__name__, net[0]._pyro_name
    ('PyroSequential', 'PyroLinear', '0')
    """
    if not isinstance(m, torch.nn.Module):
        raise ModuleError(f"to_pyro_module_ takes an nn.Module instance, got {type(m).__name__}")
    if isinstance(m, PyroModule):
        if recurse:
            for name, child in list(m._modules.items()):
                if child is not None:
                    to_pyro_module_(child)
                    setattr(m, name, child)
        return
    m.__class__ = PyroModule[type(m)]
    _init_pyro_state(m, "")
    # Registered again through PyroModule.__setattr__, so they join its names and the store.
    for name, parameter in list(m._parameters.items()):
        setattr(m, name, parameter)
    for name, child in list(m._modules.items()):
        if recurse and child is not None:
            to_pyro_module_(child)
        setattr(m, name, child)


class _FlatWeights:
    """``torch.nn.RNNBase`` caches its weights in ``_flat_weights``; a weight that is a
    ``PyroSample`` or ``PyroParam`` must be read afresh on each use, so the list is rebuilt from
    the attributes on every access (and assignments to it are ignored)."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return [getattr(obj, name) for name in obj._flat_weights_names]

    def __set__(self, obj: Any, value: Any) -> None:
        return None  # the list is derived from the attributes; nothing to keep


PyroModule[torch.nn.RNNBase]._flat_weights = _FlatWeights()  # type: ignore[attr-defined]


class PyroModuleList(torch.nn.ModuleList, PyroModule):
    """``PyroModule[nn.ModuleList]``: a slice of it is a plain ``nn.ModuleList`` of the same
    modules, which keep their names in the parent tree.

    >>> layers = PyroModuleList([PyroModule(), PyroModule()])
    >>> type(layers[:1]).__name__, layers[1]._pyro_name
    ('ModuleList', '1')
    """

    def __init__(self, modules: Any = None):
        super().__init__(modules)

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            # ModuleList would build type(self)(...) around the slice, renaming the modules.
            return torch.nn.ModuleList(list(self._modules.values())[idx])
        return self._modules[self._get_abs_string_index(idx)]


_PyroModuleMeta._mixins[torch.nn.ModuleList] = PyroModuleList
