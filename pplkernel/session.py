"""The notebook's inference state: the models and guides defined by cells, and the runs.

A re-run cell with an unchanged body keeps everything as it is; a changed body registers a new
version, and the runs built on the old one are marked stale (they keep working on the old
function, and say so).

>>> session = Session()
>>> def coin(flips):
...     pass
>>> entry, changed = session.register("model", coin)
>>> entry.version, changed, session.register("model", coin)[1]
(1, True, False)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pplkernel.errors import MagicError, did_you_mean
from pplkernel.model_cells import source_digest


@dataclass
class CellFunction:
    """A model or guide function defined by a `%%model` or `%%guide` cell, as the session keeps
    it: its kind, name, the function, a digest of the cell's body and a version."""

    kind: str
    name: str
    fn: Callable
    digest: str
    version: int = 1


@dataclass
class Session:
    """Models, guides and runs of one notebook (kernel)."""

    models: dict[str, CellFunction] = field(default_factory=dict)
    guides: dict[str, CellFunction] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)
    latest_run: str | None = None
    mcmc_runs: list[tuple[str, Any]] = field(default_factory=list)  # (model name, MCMC)

    def register(self, kind: str, fn: Callable) -> tuple[CellFunction, bool]:
        """Register ``fn`` as a model or guide under its name; returns the entry and whether it
        changed (a new name, or a new body)."""
        table = self.models if kind == "model" else self.guides
        digest = source_digest(fn)
        old = table.get(fn.__name__)
        if old is not None and old.digest == digest:
            old.fn = fn
            return old, False
        version = 1 if old is None else old.version + 1
        entry = CellFunction(kind, fn.__name__, fn, digest, version)
        table[fn.__name__] = entry
        if old is not None:
            for run in self.runs.values():
                run.mark_stale_if_built_on(old)
        return entry, True

    def model(self, name: str) -> CellFunction:
        return self._lookup(self.models, "model", name)

    def guide(self, name: str) -> CellFunction:
        return self._lookup(self.guides, "guide", name)

    def _lookup(self, table: dict[str, CellFunction], kind: str, name: str) -> CellFunction:
        if name not in table:
            known = ", ".join(sorted(table)) or "none yet"
            raise MagicError(
                f"No {kind} named '{name}' (defined {kind}s: {known}).{did_you_mean(name, table)} "
                f"Define it in a `%%{kind} {name}(...)` cell first.",
                "NameError",
            )
        return table[name]

    def add_run(self, run: Any) -> None:
        """Record ``run`` under its name; it becomes the latest."""
        self.runs[run.name] = run
        self.latest_run = run.name

    def discard(self, run: Any) -> None:
        """Forget ``run``: its background stepping stops, and its params go with it."""
        run.close()
        if self.runs.get(run.name) is run:
            del self.runs[run.name]
        if self.latest_run == run.name:
            self.latest_run = next(reversed(self.runs), None)

    def latest(self) -> Any:
        if self.latest_run is None or self.latest_run not in self.runs:
            raise MagicError("There is no SVI run yet: start one with `%svi MODEL`.", "UsageError")
        return self.runs[self.latest_run]

    def reset(self) -> None:
        """Forget everything (background MCMC runs are stopped first)."""
        for _, mcmc in self.mcmc_runs:
            mcmc.request_stop()
        self.mcmc_runs.clear()
        self.models.clear()
        self.guides.clear()
        self.runs.clear()
        self.latest_run = None


def bind_arguments(
    fn: Callable, namespace: dict[str, Any], given: dict[str, Any]
) -> tuple[tuple, dict[str, Any]] | list[str]:
    """Arguments for ``fn``: each parameter from ``given`` (``--args``), else from the notebook
    variable of the same name, else its default. Returns ``(args, kwargs)``, or the list of
    parameters that have no value. A ``**kwargs`` parameter receives the ``given`` names that
    match no other parameter (nothing given is dropped).

    >>> def model(x, y=None, scale=1.0):
    ...     pass
    >>> bind_arguments(model, {"x": 3}, {"scale": 2.0})
    ((), {'x': 3, 'y': None, 'scale': 2.0})
    >>> bind_arguments(model, {}, {})
    ['x']
    >>> def open_model(x, **options):
    ...     pass
    >>> bind_arguments(open_model, {}, {"x": 1, "depth": 2})
    ((), {'x': 1, 'depth': 2})
    """
    args, kwargs, missing = [], {}, []
    parameters = inspect.signature(fn).parameters
    for param in parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name in given:
            value = given[param.name]
        elif param.name in namespace:
            value = namespace[param.name]
        elif param.default is not param.empty:
            value = param.default
        else:
            missing.append(param.name)
            continue
        if param.kind == param.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[param.name] = value
    if missing:
        return missing
    if any(param.kind == param.VAR_KEYWORD for param in parameters.values()):
        kwargs.update((name, value) for name, value in given.items() if name not in parameters)
    return tuple(args), kwargs
