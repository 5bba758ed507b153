"""The magics: ``%%model``, ``%%guide``, ``%svi``, ``%mcmc``, ``%trace``, ``%ppc``, ``%prior``
and ``%ppl`` (shared/DESIGN.md section 4 is the grammar; ``%trace MODEL --graph`` shows the
model graph).

Each magic turns its line into engine calls and shows a widget; anything that goes wrong
becomes a :class:`~pplkernel.session.MagicError`, shown as one short message (see
:mod:`pplkernel.extension`), with the session, the param store and earlier runs untouched.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from IPython import get_ipython
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display

import engine
from engine.distributions.validation import structure_checks_enabled
from engine.errors import PPLError
from engine.infer import (
    MCMC,
)
from engine.infer.guide_then_model import guide_and_model_traces
from engine.infer.model_guide_checks import check_model_guide_match
from engine.infer.util import inspection_trace
from engine.params import param_store_scope
from engine.source_lines import register_location_namer
from pplkernel import model_cells, predictive
from pplkernel.errors import CellError, did_you_mean
from pplkernel.magic_args import (
    evaluate_args,
    parse_mcmc,
    parse_ppc,
    parse_prior,
    parse_svi,
    parse_trace,
)
from pplkernel.magic_choices import AUTOGUIDES, ELBOS, KERNELS, OPTIMIZERS
from pplkernel.runs import SviRun
from pplkernel.session import CellFunction, MagicError, Session, bind_arguments
from widgets import McmcMonitor, ModelGraph, TraceInspector
from widgets.predictive_check import PredictiveCheck
from widgets.predictive_draws import PredictiveDraws, choose_covariate, replicate
from widgets.prior_explorer import PriorExplorer


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Re-raise the engine's errors, and the model's own, as one-message MagicErrors; an error
    raised in a ``%%model``/``%%guide`` cell's code says which cell line raised it."""
    try:
        yield
    except (MagicError, KeyboardInterrupt):
        raise
    except Exception as error:
        if isinstance(error, PPLError):
            # The engine words the line itself (through _cell_location), before its site table.
            cell = _innermost_cell_frame(error.__traceback__)
            if cell is not None:
                error.locate(*cell)
            where = ""
        else:
            where = _cell_line(error.__traceback__)
        raise MagicError(f"{error}{where}", type(error).__name__) from error


def _innermost_cell_frame(tb: Any) -> tuple[str, int] | None:
    """``(filename, line)`` of the innermost frame of a cell-defined function, if any."""
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith("<%%"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _cell_location(filename: str, lineno: int) -> str | None:
    """``%%model NAME, line N of the cell`` for a line of a cell-defined function (None for
    other code)."""
    if not filename.startswith("<%%"):
        return None
    # The cell's code numbers its lines as the cell body does (see model_cells).
    return f"{filename[1:-1]}, line {lineno} of the cell"


def _cell_line(tb: Any) -> str:
    """`` (%%model NAME, line N of the cell)`` for the innermost frame of a cell-defined
    function."""
    cell = _innermost_cell_frame(tb)
    return "" if cell is None else f" ({_cell_location(*cell)})"


def _notebook_cell_location(filename: str, lineno: int) -> str | None:
    """``line N of cell In[K]`` for a line of a notebook cell's own code, as IPython's
    tracebacks name it, instead of the temporary file the kernel compiled it as (None for other
    code)."""
    shell = get_ipython()
    name_of = getattr(getattr(shell, "compile", None), "format_code_name", None)
    named = name_of(filename) if name_of is not None else None
    return None if not named else f"line {lineno} of cell {named[1]}"


register_location_namer(_notebook_cell_location)
register_location_namer(_cell_location)


@magics_class
class PPLMagics(Magics):
    """The pplkernel magics, bound to one IPython shell and one :class:`Session`."""

    def __init__(self, shell: Any, session: Session | None = None):
        super().__init__(shell)
        self.session = Session() if session is None else session

    # -- helpers -----------------------------------------------------------------------------

    @property
    def namespace(self) -> dict[str, Any]:
        return self.shell.user_ns

    def _bound(self, fn: Callable, given: list[str]) -> tuple[tuple, dict[str, Any]]:
        """``fn``'s arguments: ``--args`` pairs, else notebook variables, else defaults."""
        return self._bound_values(fn, evaluate_args(given, self.namespace))

    def _bound_values(self, fn: Callable, values: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        self._check_given(fn, values)
        bound = bind_arguments(fn, self.namespace, values)
        if isinstance(bound, list):
            names = ", ".join(bound)
            raise MagicError(
                f"'{fn.__name__}' needs {names}: define notebook variables of those names, or "
                f"pass them with `--args {bound[0]}=...`.",
                "UsageError",
            )
        return bound

    @staticmethod
    def _check_given(fn: Callable, values: dict[str, Any]) -> None:
        """Refuse ``--args`` names that are not arguments of ``fn``."""
        parameters = inspect.signature(fn).parameters
        gathering = [
            p.name for p in parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
        unknown = [name for name in values if name not in parameters and not takes_any]
        unknown += [name for name in values if name in gathering]
        if unknown:
            raise MagicError(
                f"--args {', '.join(unknown)}: '{fn.__name__}' has no such argument (its "
                f"arguments: {', '.join(parameters) or 'none'})."
                + did_you_mean(unknown[0], [n for n in parameters if n not in gathering]),
                "UsageError",
            )

    # -- %%model and %%guide ---------------------------------------------------------------

    @cell_magic
    def model(self, line: str, cell: str) -> Any:
        """``%%model NAME(ARGS)``: the cell body is the model's body (or a cell with a ``def``)."""
        # A plain-``def`` cell runs its own top-level code: its errors are reported in one
        # line, with the cell line, like the model's.
        with engine_errors():
            return self._define("model", line, cell)

    @cell_magic
    def guide(self, line: str, cell: str) -> Any:
        """``%%guide NAME(ARGS)``: the same for a guide."""
        with engine_errors():
            return self._define("guide", line, cell)

    def _define(self, kind: str, line: str, cell: str) -> Any:
        try:
            header = model_cells.parse_header(line)
            if header.name is None:
                fn = model_cells.function_from_cell(cell, self.namespace, kind)
            else:
                fn = model_cells.function_from_body(header, cell, self.namespace, kind)
        except CellError as error:
            raise MagicError(str(error), "SyntaxError") from error
        entry, changed = self.session.register(kind, fn)
        if not changed:
            return None  # the same body again: nothing to do
        bound = bind_arguments(fn, self.namespace, {})
        if isinstance(bound, list):
            print(
                f"{kind} '{entry.name}' defined (version {entry.version}); it will run once "
                f"{', '.join(bound)} {'is' if len(bound) == 1 else 'are'} defined."
            )
            return None
        if kind == "model":
            # A cell that fails leaves no param behind (one that works keeps those it made).
            with engine_errors(), engine.get_param_store().transaction():
                model_trace = inspection_trace(fn, *bound)
                model_trace.compute_log_prob()
            display(TraceInspector.from_trace(model_trace, title=f"model {entry.name}"))
        return None

    # -- %svi -------------------------------------------------------------------------------

    @line_magic
    def svi(self, line: str) -> Any:
        """``%svi MODEL [flags]`` starts (or continues) a run; ``%svi step [N]``; ``%svi reset``."""
        options = parse_svi(line)
        if options.command == "reset":
            self._reset_latest_run()
            return None
        if options.command == "step":
            run = self.session.latest()
            if run.stale:
                print(f"Note: {run.stale}")
            self._step(run, options.steps)
            return run
        model = self.session.model(options.model)
        self._check_guide(options.guide)
        args, kwargs = self._bound(model.fn, options.args)
        name = options.name or options.model
        settings = {
            key: getattr(options, key) for key in ("guide", "lr", "optim", "elbo", "particles")
        }
        run = self.session.runs.get(name)
        if (
            run is not None
            and not run.stale
            and run.settings == settings
            and run.model_entry is model
            and _same_arguments(run.args, run.kwargs, args, kwargs)
        ):
            self._step(run, options.steps)  # the same run again: it continues
            return run
        return self._start_run(name, model, options, settings, args, kwargs, replacing=run)

    def _start_run(self, name, model, options, settings, args, kwargs, replacing) -> SviRun:
        """A new run, which replaces ``replacing`` only once its first steps worked. The run
        works in its own param store, so a failure leaves nothing behind: the notebook's store
        and ``replacing`` stay as they were."""
        if replacing is not None:
            replacing.monitor.pause()
        run = None
        try:
            with engine_errors():
                run = self._new_run(name, model, options, settings, args, kwargs)
            run.display_handle = display(run.monitor, display_id=True)
            self._step(run, options.steps)
        except BaseException:
            if run is not None:
                run.close()
            raise
        if replacing is not None:
            self.session.discard(replacing)
        self.session.add_run(run)
        return run

    @staticmethod
    def _step(run: SviRun, steps: int) -> None:
        # The notebook's stop button ends the steps here, keeping those taken.
        with engine_errors(), contextlib.suppress(KeyboardInterrupt):
            run.step(steps)

    def _new_run(self, name: str, model: CellFunction, options, settings, args, kwargs) -> SviRun:
        guide, guide_entry = self._guide_for(options.guide, model)
        optim = OPTIMIZERS[options.optim]({"lr": options.lr})
        loss = ELBOS[options.elbo](num_particles=options.particles)
        return SviRun(name, model, guide, guide_entry, optim, loss, args, kwargs, settings)

    def _reset_latest_run(self) -> None:
        run = self.session.latest()
        self.session.discard(run)
        print(f"SVI run '{run.name}' discarded.")

    # -- %mcmc -------------------------------------------------------------------------------

    @line_magic
    def mcmc(self, line: str) -> MCMC:
        """``%mcmc MODEL [--kernel nuts|hmc] [--samples N] [--warmup N] [--chains K]``: starts
        the run with its live monitor and returns the MCMC object at once; its results wait
        for the run to end."""
        options = parse_mcmc(line)
        model = self.session.model(options.model)
        args, kwargs = self._bound(model.fn, options.args)
        kernel = KERNELS[options.kernel](model.fn)
        warmup = options.samples if options.warmup is None else options.warmup
        mcmc = MCMC(kernel, options.samples, warmup, num_chains=options.chains)
        monitor = McmcMonitor(mcmc, title=f"MCMC {model.name}")
        monitor.display_handle = display(monitor, display_id=True)
        # Set up here (a broken model fails now, in one line), then sample in a thread, so the
        # notebook stays free and the monitor's Stop button reaches the run; get_samples(),
        # summary() and the rest wait for it to end.
        with engine_errors():
            mcmc.run_in_background(*args, **kwargs)
        self.session.mcmc_runs.append((model.name, mcmc))
        return mcmc

    # -- %trace and %ppl ---------------------------------------------------------------------

    @line_magic
    def trace(self, line: str) -> TraceInspector | ModelGraph:
        """``%trace MODEL [--guide G]``: the inspector of one run of the model (replayed on one
        draw of the guide when given); ``%trace MODEL --graph``: its model graph. Only a look:
        params the model or guide create for it are removed again."""
        options = parse_trace(line)
        model = self.session.model(options.model)
        if options.guide is not None:
            self._check_guide(options.guide)
        args, kwargs = self._bound(model.fn, options.args)
        store = engine.get_param_store()
        before = store.snapshot()
        with engine_errors(), contextlib.ExitStack() as undo:
            undo.callback(store.restore, before)
            if options.graph:
                return ModelGraph.from_model(model.fn, args, kwargs, title=f"graph of {model.name}")
            if options.guide is None:
                model_trace = inspection_trace(model.fn, args, kwargs)
            else:
                guide, _ = self._guide_for(options.guide, model)
                guide_trace, model_trace = guide_and_model_traces(model.fn, guide, args, kwargs)
                if structure_checks_enabled():  # as SVI would: a mismatch is named by site
                    check_model_guide_match(model_trace, guide_trace)
            model_trace.compute_log_prob()
        return TraceInspector.from_trace(model_trace, title=f"trace of {model.name}")

    # -- %ppc and %prior ---------------------------------------------------------------------

    @line_magic
    def ppc(self, line: str) -> PredictiveCheck:
        """``%ppc MODEL [--run NAME] [--samples N] [--x NAME]``: replicated data against the
        observed data, from the model's latest run (or the run named), or from its prior when
        it has no run. Only a look: the param stores and the runs stay as they were."""
        options = parse_ppc(line)
        model = self.session.model(options.model)
        run = predictive.find_run(self.session, model.name, options.run)
        if run is None:
            args, kwargs = self._bound(model.fn, options.args)
            with engine_errors(), _store_kept():
                draws = replicate(model.fn, args, kwargs, options.samples)
        elif isinstance(run, SviRun):
            if run.stale:
                print(f"Note: {run.stale}")
            kwargs = self._run_arguments(run.model, run.kwargs, options.args)
            source = f"SVI run '{run.name}' ({run.step_count} steps)"
            with engine_errors(), run.lock.hold(), param_store_scope(run.params), _store_kept():
                draws = replicate(
                    run.model, run.args, kwargs, options.samples, guide=run.svi.guide, source=source
                )
        else:
            draws = self._mcmc_draws(model, run, options)
        with engine_errors():
            draws.covariate = choose_covariate(draws.arguments, draws, options.x)
            check = PredictiveCheck(draws, title=f"'{model.name}'")
            check.png()  # drawn now, so a failure is reported by this magic
        return check

    def _run_arguments(self, fn: Callable, kwargs: dict[str, Any], given: list[str]) -> dict:
        """A run's keyword arguments, with ``--args`` replacing some (new inputs, new data)."""
        values = evaluate_args(given, self.namespace)
        self._check_given(fn, values)
        return {**kwargs, **values}

    def _mcmc_draws(self, model: CellFunction, mcmc: MCMC, options: Any) -> PredictiveDraws:
        if mcmc.running:
            raise MagicError(
                f"The MCMC run of '{model.name}' is still sampling: wait for it to end (or stop "
                "it with the monitor's Stop button), then run %ppc again.",
                "UsageError",
            )
        fn, args, kwargs = predictive.mcmc_arguments(mcmc)
        kwargs = self._run_arguments(fn, kwargs, options.args)
        source = f"MCMC ({mcmc.num_chains} chains)"
        with engine_errors(), _store_kept():
            samples = mcmc.get_samples()
            return replicate(
                fn, args, kwargs, options.samples, posterior_samples=samples, source=source
            )

    @line_magic
    def prior(self, line: str) -> PriorExplorer:
        """``%prior MODEL --explore name=low:high ... [--samples N] [--x NAME]``: sliders for
        the named hyperparameters (model arguments, or notebook constants the model reads) over
        the prior predictive, redrawn when a slider moves. A constant is rebound in the
        notebook only while a picture is drawn."""
        options = parse_prior(line)
        model = self.session.model(options.model)
        fn = model.fn
        values = evaluate_args(options.args, self.namespace)
        self._check_given(fn, values)
        parameters = inspect.signature(fn).parameters
        current = {}
        for name in options.explore:
            if name in values:
                current[name] = values[name]
            elif name in self.namespace:
                current[name] = self.namespace[name]
            elif name in parameters and parameters[name].default is not parameters[name].empty:
                current[name] = parameters[name].default
        found = predictive.explored(fn, model.name, options.explore, current)
        sliding = {
            name: e.typed(e.slider.value) for name, e in found.items() if e.kind == "argument"
        }
        args, kwargs = self._bound_values(fn, {**values, **sliding})
        positional = [p.name for p in parameters.values() if p.kind == p.POSITIONAL_ONLY]
        fixed = {**dict(zip(positional, args, strict=True)), **kwargs}
        namespace = getattr(fn, "__globals__", self.namespace)

        def draw(slider_values: dict[str, float]) -> PredictiveCheck:
            typed = {name: found[name].typed(value) for name, value in slider_values.items()}
            arguments = {n: v for n, v in typed.items() if found[n].kind == "argument"}
            constants = {n: v for n, v in typed.items() if found[n].kind == "constant"}
            call_args, call_kwargs = bind_arguments(fn, {}, {**fixed, **arguments})
            with _store_kept(), predictive.rebound(namespace, constants):
                draws = replicate(fn, call_args, call_kwargs, options.samples)
            draws.covariate = choose_covariate(draws.arguments, draws, options.x)
            at = ", ".join(f"{name} = {value:.4g}" for name, value in slider_values.items())
            return PredictiveCheck(draws, title=f"'{model.name}' at {at}")

        with engine_errors():
            return PriorExplorer(
                [e.slider for e in found.values()], draw, title=f"prior predictive of {model.name}"
            )

    def _check_guide(self, name: str) -> None:
        """Refuse a ``--guide`` that is neither an autoguide nor a ``%%guide`` (before anything
        starts), naming both kinds."""
        if name in AUTOGUIDES or name in self.session.guides:
            return
        defined = ", ".join(sorted(self.session.guides)) or "none yet"
        raise MagicError(
            f"No guide named '{name}' (defined guides: {defined}; autoguides: "
            f"{', '.join(AUTOGUIDES)}).{did_you_mean(name, [*self.session.guides, *AUTOGUIDES])}"
            f" Define it in a `%%guide {name}(...)` cell first, or pick an autoguide.",
            "NameError",
        )

    def _guide_for(self, name: str, model: CellFunction) -> tuple[Callable, CellFunction | None]:
        """The guide ``--guide name`` means, and its ``%%guide`` entry (None for an autoguide)."""
        if name in AUTOGUIDES:
            return AUTOGUIDES[name](model.fn), None
        entry = self.session.guide(name)
        return entry.fn, entry

    @line_magic
    def ppl(self, line: str) -> None:
        """``%ppl``: the models, guides and runs; ``%ppl reset``: forget them all, and the
        param store."""
        command = line.strip()
        if command == "reset":
            for run in list(self.session.runs.values()):
                self.session.discard(run)
            self.session.reset()
            engine.clear_param_store()
            print("pplkernel session reset: no models, guides or runs; param store cleared.")
            return
        if command:
            hint = did_you_mean(command, ["reset"])
            raise MagicError(f"%ppl takes nothing or `reset`, got '{command}'.{hint}", "UsageError")
        print(self.describe())

    def describe(self) -> str:
        """The session as text: models, guides, runs."""
        lines = []
        for title, table in (("models", self.session.models), ("guides", self.session.guides)):
            names = [f"{e.name} (v{e.version})" for e in table.values()]
            lines.append(f"{title}: {', '.join(names) or 'none'}")
        runs = [repr(run) for run in self.session.runs.values()]
        lines.append("SVI runs: " + (", ".join(runs) or "none"))
        chains = [
            f"{name} ({'running' if mcmc.running else 'finished'}, {mcmc.num_chains} chains)"
            for name, mcmc in self.session.mcmc_runs
        ]
        lines.append("MCMC runs: " + (", ".join(chains) or "none"))
        return "\n".join(lines)


def inject_names(namespace: dict[str, Any]) -> list[str]:
    """Put ``ppl``, ``dist``, ``constraints`` and ``torch`` into the notebook where those names
    are free; returns the names added."""
    import engine.distributions as dist
    from engine.distributions import constraints

    added = []
    for name, value in (
        ("ppl", engine),
        ("dist", dist),
        ("constraints", constraints),
        ("torch", torch),
    ):
        if name not in namespace:
            namespace[name] = value
            added.append(name)
    return added


__all__ = ["PPLMagics", "engine_errors", "inject_names"]


@contextlib.contextmanager
def _store_kept() -> Iterator[None]:
    """The current param store exactly as before the block, however it ends (a predictive
    check only looks: params a model or guide creates while drawing are removed again)."""
    store = engine.get_param_store()
    before = store.snapshot()
    try:
        yield
    finally:
        store.restore(before)


def _same_arguments(args: tuple, kwargs: dict, new_args: tuple, new_kwargs: dict) -> bool:
    """Whether two bindings hold the very same objects (a re-run data cell makes new ones, and
    tensors cannot be compared with ``==`` anyway).

    >>> data = [1, 2]
    >>> _same_arguments((), {"x": data}, (), {"x": data})
    True
    >>> _same_arguments((), {"x": data}, (), {"x": [1, 2]})
    False
    """
    if len(args) != len(new_args) or kwargs.keys() != new_kwargs.keys():
        return False
    return all(a is b for a, b in zip(args, new_args, strict=True)) and all(
        kwargs[name] is new_kwargs[name] for name in kwargs
    )
