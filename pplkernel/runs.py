"""What ``%svi`` returns: one SVI run bound to its model, guide and arguments.

``run = %svi coin --steps 200`` gives an :class:`SviRun`: ``run.losses``, ``run.guide``,
``run.params``, ``run.step(n)``, ``run.predictive()``, ``run.plot_posterior()``,
``run.save(path)``. It keeps the model and guide functions it was built on, so redefining the
model cell does not change a run under way: the run is marked stale instead.

Each run owns its params: a param store of its own (seeded with a copy of the notebook's store
when the run starts), under Pyro's names. Stepping, ``run.guide`` and its methods,
``run.predictive()`` and saving all work in it, so two runs of one model (two learning rates,
say) never move each other's params, and the notebook's own ``ppl.get_param_store()`` is left
alone.

While the monitor's Run button steps a run in the background, a cell may step it, save it or
read it: each holds the run's lock (:class:`~widgets.run_lock.RunLock`), so it sees, and saves,
the params after a whole step.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import Trace_ELBO
>>> from engine.infer.autoguide import AutoNormal
>>> from engine.optim import Adam
>>> from pplkernel.session import CellFunction
>>> engine.clear_param_store()  # a run starts from a copy of the notebook's store
>>> def coin(flips):
...     p = engine.sample("p", dist.Beta(2.0, 2.0))
...     with engine.plate("n", len(flips)):
...         engine.sample("obs", dist.Bernoulli(p), obs=flips)
>>> model = CellFunction("model", "coin", coin, "digest")
>>> run = SviRun("coin", model, AutoNormal(coin), None, Adam({"lr": 0.05}), Trace_ELBO(),
...              (), {"flips": torch.ones(5)})
>>> len(run.step(3).losses)
3
>>> sorted(run.params.keys()), "AutoNormal.locs.p" in engine.get_param_store()
(['AutoNormal.locs.p', 'AutoNormal.scales.p'], False)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

from engine.infer import SVI, Predictive
from engine.infer.autoguide import AutoGuide
from engine.infer.elbo import ELBO
from engine.params import ParamStoreDict, get_param_store, param_store_scope
from engine.poutine.handlers import block, trace
from pplkernel.session import CellFunction
from widgets.posterior_plot import FIGURE_SAMPLES, plot_posterior
from widgets.run_lock import RunLock
from widgets.svi_monitor import SviMonitor


class RunGuide:
    """A run's guide, working in the run's own param store: calling it, or calling any of its
    methods (``median()``, ``quantiles(...)``, ...), happens inside the run's scope (holding the
    run's ``lock``, when given, so a background Run is not halfway through a step). Other
    attributes are the guide's own.

    >>> import torch, engine
    >>> own = ParamStoreDict()
    >>> own["loc"] = torch.tensor(3.0)
    >>> guide = RunGuide(lambda: engine.param("loc").item(), own)
    >>> guide()
    3.0
    """

    def __init__(self, guide: Callable, store: ParamStoreDict, lock: RunLock | None = None):
        self._guide = guide
        self._store = store
        self._lock = lock

    @contextlib.contextmanager
    def _in_run(self) -> Iterator[None]:
        held = self._lock.hold() if self._lock else contextlib.nullcontext()
        with held, param_store_scope(self._store):
            yield

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._in_run():
            return self._guide(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._guide, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def in_scope(*args: Any, **kwargs: Any) -> Any:
            with self._in_run():
                return attribute(*args, **kwargs)

        return in_scope

    def __repr__(self) -> str:
        return f"RunGuide({self._guide!r})"


class SviRun:
    """An SVI run started by ``%svi``; continue it with :meth:`step` or ``%svi step N``."""

    def __init__(
        self,
        name: str,
        model: CellFunction,
        guide: Any,
        guide_entry: CellFunction | None,
        optim: Any,
        loss: ELBO,
        args: tuple,
        kwargs: dict[str, Any],
        settings: dict[str, Any] | None = None,
    ):
        self.name = name
        self.model_entry = model
        self.guide_entry = guide_entry
        self.args, self.kwargs = args, kwargs
        self.settings = dict(settings or {})
        self.params: ParamStoreDict = get_param_store().copy()
        self.svi = SVI(model.fn, guide, optim, loss, param_store=self.params)
        self.lock = RunLock()  # shared with the monitor's background Run
        self.guide = RunGuide(guide, self.params, self.lock)
        self.stale: str | None = None
        with param_store_scope(self.params):
            if isinstance(guide, AutoGuide):  # its parameters exist from here on
                guide.setup(*args, **kwargs)
            # This run's own params are the ones its guide reads. Reset deletes them (the guide
            # makes them again from their init values on the next step) and takes a fresh
            # optimizer.
            self.param_names = _guide_params(guide, args, kwargs)
        self._fresh_optim = copy.deepcopy(optim)
        self.display_handle: Any = None
        self.monitor = SviMonitor(
            self.svi,
            args,
            kwargs,
            title=f"SVI run '{name}'",
            on_reset=self.reset,
            param_source=self.own_params,
            lock=self.lock,
        )

    @property
    def model(self) -> Any:
        return self.model_entry.fn

    @property
    def losses(self) -> list[float]:
        """Every step's loss (negative ELBO), in order."""
        return self.svi.losses

    @property
    def step_count(self) -> int:
        return self.svi.step_count

    def step(self, num_steps: int = 1) -> SviRun:
        """Take ``num_steps`` more SVI steps, shown live on :attr:`monitor` (a background Run
        of the monitor is paused first)."""
        try:
            self.monitor.step(num_steps)
        finally:
            if self.display_handle is not None:  # the static fallback shows the new state
                self.display_handle.update(self.monitor)
        return self

    def own_params(self) -> dict[str, Any]:
        """The params this run's guide reads, by name, constrained."""
        return {name: self.params[name] for name in self.param_names if name in self.params}

    def reset(self) -> None:
        """Back to the start: this run's params re-initialised, a fresh optimizer, no steps."""
        with self.lock.hold():
            for name in self.param_names:
                if name in self.params:
                    del self.params[name]
            self.svi.optim = copy.deepcopy(self._fresh_optim)
            self.svi.losses.clear()
            self.svi.step_count = 0

    def predictive(self, num_samples: int = 100, **kwargs: Any) -> dict[str, Any]:
        """Posterior predictive draws of every site, from the fitted guide."""
        predictive = Predictive(self.model, guide=self.svi.guide, num_samples=num_samples, **kwargs)
        with self.lock.hold(), param_store_scope(self.params):
            return predictive(*self.args, **self.kwargs)

    def plot_posterior(self, num_samples: int = FIGURE_SAMPLES, seed: int = 0) -> Any:
        """A matplotlib figure of each latent site's marginal under the fitted guide, with its
        prior behind it (:func:`widgets.plot_posterior`, in this run's params and with its model
        arguments); a notebook shows it as a PNG."""
        with self.lock.hold():  # the params of one whole step
            return plot_posterior(
                self.model,
                self.svi.guide,
                *self.args,
                num_samples=num_samples,
                seed=seed,
                param_store=self.params,
                title=f"SVI run '{self.name}', step {self.step_count}",
                **self.kwargs,
            )

    def save(self, filename: str | os.PathLike[str]) -> None:
        """Write this run's state (its params, optimizer, step, random state) to ``filename``;
        :meth:`load` continues from it."""
        with self.lock.hold():  # params and optimizer of one and the same step
            self.svi.save(filename)

    def load(self, filename: str | os.PathLike[str]) -> None:
        """Continue from a state written by :meth:`save` (of this run or one like it)."""
        with self.lock.hold():
            self.svi.load(filename)

    def close(self) -> None:
        """Stop a background Run and detach the monitor (the run's params go with the run)."""
        self.monitor.close()

    def mark_stale_if_built_on(self, entry: CellFunction) -> None:
        for own in (self.model_entry, self.guide_entry):
            if own is entry:
                self.stale = (
                    f"{entry.kind} '{entry.name}' was redefined after this run started; the run "
                    f"still uses version {entry.version}. Start a new one with `%svi`."
                )

    def __repr__(self) -> str:
        last = f", last loss {self.losses[-1]:.4g}" if self.losses else ""
        stale = " (stale)" if self.stale else ""
        return f"<SviRun '{self.name}'{stale}: {self.step_count} steps{last}>"


def _guide_params(guide: Any, args: tuple, kwargs: dict[str, Any]) -> list[str]:
    """The names of the params one run of ``guide`` reads (creating them if new)."""
    with block():
        param_trace = trace(guide, param_only=True).get_trace(*args, **kwargs)
    return [name for name, site in param_trace.nodes.items() if site["type"] == "param"]
