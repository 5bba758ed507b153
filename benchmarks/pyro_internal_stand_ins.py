"""A pytest plugin for the engine side of ``pyro_unit_tests.py``: Pyro's internals as stand-ins.

Issue 17 sets Pyro's internals aside as non-goals (``pyro.ops``, contrib, private names such as
``_DIM_ALLOCATOR``, ``torch_item``, ...). Many of Pyro's test files import one of them at module
level for a few of their tests; without it the file does not import and every test of the public
API in it counts as failed. This plugin, loaded only where ``pyro`` is the engine, lets such an
import succeed: the name is bound to a :class:`StandIn` that fails whatever a test does with it
(calling it, reading an attribute, ``isinstance``, subclassing), so the tests that use an
internal still fail and count, and the others run. Nothing here can make a test pass.

What gets a stand-in (and nothing else):
- a module under ``pyro.ops`` or ``pyro.contrib`` that the engine does not have;
- a name missing from an engine module (imported as ``pyro.X``) that is private (one leading
  underscore), in :data:`INTERNAL_NAMES`, or from a module in :data:`INTERNAL_MODULES`,
and only when an import or module-level code asks (a test file's ``from pyro.X import name``):
a probe from a function (pytest's or ``unittest.mock``'s introspection, ``hasattr``) is told the
name is missing.

Every stand-in handed out is recorded as a ``{"kind": "stand_in", "name": ...}`` line in
``$PYRO_UNIT_OUTCOMES``, and the runner lists them per file.

>>> piece = StandIn("pyro.ops.gaussian.Gaussian")
>>> piece(1.0)
Traceback (most recent call last):
...
benchmarks.pyro_internal_stand_ins.PyroInternal: pyro.ops.gaussian.Gaussian is a Pyro internal \
the engine does not provide (a non-goal of issue 17)
>>> wants_stand_in("pyro.poutine.runtime", "_DIM_ALLOCATOR"), wants_stand_in("pyro", "plate")
(True, False)
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
import types
from typing import Any, NoReturn

MODULE_PREFIXES = ("pyro.ops.", "pyro.contrib.")
# Modules whose names beyond the engine's (the documented ones) are Pyro internals (issue 17).
INTERNAL_MODULES = frozenset({"pyro.infer.mcmc.util", "pyro.infer.enum", "pyro.infer.util"})
# Public-looking names of Pyro's that its API documentation does not list (issue 17's non-goals).
INTERNAL_NAMES = frozenset(
    {"torch_item", "torch_isnan", "MultiFrameTensor", "iter_discrete_traces", "adapt_window"}
)


class PyroInternal(NotImplementedError):
    """Raised by every use of a stand-in."""


def _refuse(name: str) -> NoReturn:
    raise PyroInternal(
        f"{name} is a Pyro internal the engine does not provide (a non-goal of issue 17)"
    )


def _record(name: str) -> None:
    target = os.environ.get("PYRO_UNIT_OUTCOMES")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps({"kind": "stand_in", "name": name}) + "\n")


class StandIn:
    """An object in place of a Pyro internal: calling it raises :class:`PyroInternal`;
    ``isinstance`` against it, subclassing it and reading its attributes raise too.

    Attribute reads raise ``AttributeError`` (with the same message) rather than
    ``PyroInternal``, so that introspection (pytest's collection, ``hasattr``) sees an object
    without attributes instead of crashing.
    """

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_stand_in_name", name)

    def __getattr__(self, attribute: str) -> NoReturn:
        raise AttributeError(
            f"{self._stand_in_name}.{attribute}: {self._stand_in_name} is a Pyro internal the "
            "engine does not provide (a non-goal of issue 17)"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self._stand_in_name)

    def __repr__(self) -> str:
        return f"<stand-in for the Pyro internal {self._stand_in_name}>"


def wants_stand_in(module: str, name: str) -> bool:
    """Whether ``from <module> import <name>`` gets a stand-in when the engine lacks the name.

    >>> wants_stand_in("pyro.infer.mcmc.util", "TraceEinsumEvaluator")
    True
    """
    if name.startswith("__"):
        return False
    return (
        name.startswith("_")
        or name in INTERNAL_NAMES
        or module in INTERNAL_MODULES
        or module.startswith(MODULE_PREFIXES)
    )


def _module_getattr(module: types.ModuleType, alias_name: str) -> Any:
    """A module-level ``__getattr__`` for ``module`` (known to tests as ``alias_name``) that
    hands out stand-ins after the module's own ``__getattr__``, if any, has said no."""
    own = module.__dict__.get("__getattr__")

    def __getattr__(name: str) -> Any:
        if own is not None:
            try:
                return own(name)
            except AttributeError:
                pass
        # ``from package import name`` asks through importlib's ``_handle_fromlist``.
        asked_by_an_import = sys._getframe(1).f_code.co_name in ("<module>", "_handle_fromlist")
        if not (asked_by_an_import and wants_stand_in(alias_name, name)):
            raise AttributeError(f"module {alias_name!r} has no attribute {name!r}")
        full = f"{alias_name}.{name}"
        _record(full)
        return StandIn(full)

    __getattr__.stand_ins = True
    return __getattr__


def give_stand_ins(module: types.ModuleType, alias_name: str) -> None:
    """Let ``module`` hand out stand-ins for the internals it lacks (once per module)."""
    current = module.__dict__.get("__getattr__")
    if not getattr(current, "stand_ins", False):
        module.__getattr__ = _module_getattr(module, alias_name)


class _InternalModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on ``sys.meta_path``: a ``pyro.ops.*`` or ``pyro.contrib.*`` module that nothing
    else found becomes an empty module whose every name is a stand-in."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not (fullname + ".").startswith(MODULE_PREFIXES) and fullname not in (
            "pyro.ops",
            "pyro.contrib",
        ):
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        _record(module.__name__)
        module.__path__ = []
        give_stand_ins(module, module.__name__)


def install() -> None:
    """Import the ``pyro`` alias and make its modules, present and future, give stand-ins."""
    import pyro

    alias_finder = next(f for f in sys.meta_path if type(f).__name__ == "_EngineAliasFinder")
    load_alias = alias_finder.exec_module

    def exec_module(module: types.ModuleType) -> None:
        load_alias(module)
        give_stand_ins(sys.modules[module.__name__], module.__name__)

    alias_finder.exec_module = exec_module
    give_stand_ins(pyro, "pyro")
    for name, module in list(sys.modules.items()):
        if name.startswith("pyro."):
            give_stand_ins(module, name)
    sys.meta_path.append(_InternalModuleFinder())


def pytest_load_initial_conftests(early_config: Any, parser: Any, args: Any) -> None:
    """pytest's hook for ``-p`` plugins, run before any conftest (Pyro's imports ``pyro``)."""
    install()
