"""A ``pyro`` package, written into a temporary folder at run time, that hands out the engine.

Put that folder first on ``sys.path`` (``PYTHONPATH``) and ``import pyro`` gives the ``engine``
module itself, ``import pyro.infer.autoguide`` gives ``engine.infer.autoguide``, and so on: a
finder on ``sys.meta_path`` maps every ``pyro.X`` to the already imported ``engine.X`` module, so
there is one copy of each engine module (and of its classes and state) whichever name imported
it. Where the engine has no ``engine.X``, ``import pyro.X`` fails as it would for a missing Pyro
module: ``ModuleNotFoundError: No module named 'pyro.X'``.

No ``sitecustomize`` is involved, and the package exists only in the temporary folder; the project
never ships a package called ``pyro``.
"""

from __future__ import annotations

from pathlib import Path

ALIAS_PACKAGE_SOURCE = '''"""`import pyro` gives the engine.

Written at run time by benchmarks/tutorial_runner/pyro_alias.py; see its docstring.
"""

import importlib
import importlib.abc
import importlib.util
import sys

import engine

_ALIAS = "pyro"
_TARGET = "engine"


class _EngineAliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `pyro.X` as the module `engine.X`."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(_ALIAS + "."):
            return None
        target_name = _TARGET + fullname[len(_ALIAS):]
        try:
            importlib.import_module(target_name)
        except ModuleNotFoundError as error:
            # Only a missing engine.X means "no such module"; a missing dependency of an existing
            # engine module is a real error and propagates.
            missing = error.name or ""
            if target_name == missing or target_name.startswith(missing + "."):
                return None
            raise
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        # The import system returns whatever sys.modules holds for the name after this call.
        sys.modules[module.__name__] = sys.modules[_TARGET + module.__name__[len(_ALIAS):]]


sys.meta_path.insert(0, _EngineAliasFinder())
sys.modules[__name__] = engine
'''


def write_alias_package(folder: Path) -> Path:
    """Write ``folder/pyro/__init__.py``; put ``folder`` first on the path of the run.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     init = write_alias_package(Path(tmp))
    ...     init.relative_to(tmp).as_posix(), "sys.modules[__name__] = engine" in init.read_text()
    ('pyro/__init__.py', True)
    """
    package = folder / "pyro"
    package.mkdir(parents=True, exist_ok=True)
    init = package / "__init__.py"
    init.write_text(ALIAS_PACKAGE_SOURCE)
    return init
