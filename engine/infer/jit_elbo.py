"""``JitTrace_ELBO``, ``JitTraceMeanField_ELBO``, ``JitTraceGraph_ELBO``, ``JitTraceEnum_ELBO``:
the same estimators, with guide, model and ELBO arithmetic compiled by ``torch.compile``.

Pyro's names, our mechanism: where Pyro traces the loss with ``torch.jit``, we hand the whole
gradient-carrying estimate (running the guide, replaying the model, scoring every site) to
``torch.compile``, which removes the Python cost of each site and fuses the tensor arithmetic.
That matters when per-step overhead dominates (small models): a 3-site regression step takes
about a third of the time of the eager step. ``jit_options`` go to ``torch.compile``
(``{"backend": "aot_eager"}`` compiles in seconds instead of tens of seconds, but gains less).

What changes against the eager ELBO:

* The first call with arguments of new shapes runs eagerly: it creates the parameters and checks
  the model and guide with every check the engine has (an autoguide's check of new shapes
  included), so a broken model fails with its usual error before anything is compiled. Later
  calls with those shapes run compiled. Shapes are the *shape signature* of the model's
  arguments (:func:`~engine.infer.shape_signature.shape_signature`: tensor shapes, and the
  values of ints, bools and strings, such as a sequence length passed as a keyword argument
  the way Pyro's JIT tutorial passes it; floats do not count).
* Compiled code cannot raise on a value, so it runs without the value checks of distributions
  (:func:`~engine.distributions.validation.trusted_run`): an invalid scale gives a NaN instead
  of an error, as in Pyro's JIT ELBOs. SVI still stops (or skips) a step with a non-finite loss
  or gradient and names the first site where the NaN appeared. Checks decided by shapes and
  names (model/guide matching, plates) run in the eager call of each new shape, and again
  whenever a structure is compiled.
* Random draws in compiled code come from torch's generators, seeded as usual: runs are
  reproducible with ``set_rng_seed`` (whether they equal an eager run's draws depends on the
  backend).
* ``loss`` and ``evaluate_loss`` (no gradients) run eagerly: no second compilation for them.
* A program that fails while being compiled is run again eagerly, so its error is the engine's
  usual one. If it runs eagerly, the compiler was at fault (no C++ compiler for the default
  backend, say): a warning says so and the ELBO goes on without compiling.

Arguments of several lengths. Each shape signature is compiled at most once, and an ELBO
compiles at most ``max_compiled_shapes`` times (8 unless given): after that, shapes that no
compiled variant fits run eagerly, and one ``RuntimeWarning`` says so (the shapes compiled before
still run compiled). How a new shape is compiled depends on its sites:

* with the sites of a shape compiled before (a plate of another size, other data of the same
  model), the variant is compiled generic in the sizes that changed (torch's automatic dynamic
  shapes), and then serves every further size without compiling again: any number of sizes
  costs two compilations;
* with other sites (an HMM with a site per time step: each length is a model of its own), it is
  compiled for its sizes only.

``jit_options={"dynamic": ...}`` takes the choice out of the ELBO's hands (``torch.compile``'s
own meaning). The decision comes from measurements (``benchmarks/run_jit_shapes.py``, figures in
``benchmarks/README.md``; one thread, inductor backend, every compilation cold):

* Pyro's JIT tutorial's HMM, 750 steps over lengths 24, 48 and 72: every length compiles
  whatever the setting, since its sites differ. Compiled for their sizes, the three variants
  took 286 s to build and then ran a step in 1.0 to 1.9 ms; with torch's automatic dynamic
  shapes, 271 s and 1.6 to 3.2 ms (the symbolic sizes are specialised to each length anyway,
  and the code is slower); with ``dynamic=True`` the step broke into 39 graphs that ran 20 to 30
  times slower than the static ones (measured on a busier machine).
* Its Normal model on plates of 5 sizes, 1,000 steps: 5 compilations for their sizes (30 s),
  2 with automatic dynamic shapes (21 to 24 s), 1 with ``dynamic=True`` (20 s, but 0.7 ms a
  step against 0.5 for a static variant, and no better on the HMM).
* An HMM over 9 lengths (6 to 22), 540 steps: 8 variants (190 s), the ninth length eager.

So a compiled ELBO compiles for the sizes when the sites change and goes dynamic when they do
not. Before, graph breaks (torch.compile could not trace the sum-product) split a step into 44
to 50 graphs, each length compiled many of them again, and the compiled steps ran slower than
eager ones (the tutorial's HMM: 149 s of compiling, 23 to 69 ms a step against 19 to 62 eagerly;
the plates of 5 sizes: 19 graphs, 3.5 ms a step).

Compiling remains the cost that decides short runs: inductor builds a long HMM in a minute or
more, and its steps, 10 to 25 times faster than eager ones, pay for that only after some
thousands of steps. The tutorial's HMM takes 20 s with the eager ``TraceEnum_ELBO``, 72 s with
``jit_options={"backend": "aot_eager"}`` (steps twice as fast as eager, each length compiled in
about 20 s), 287 s with the default backend, and 25 s with Pyro's ``torch.jit`` trace; for runs
of a few thousand steps, use the eager ELBO or the ``aot_eager`` backend.

>>> import torch, engine, engine.distributions as dist
>>> def model():
...     engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
>>> elbo = JitTrace_ELBO(jit_options={"backend": "eager"})
>>> round(elbo.loss(model, lambda: None), 4)
0.9189
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch._dynamo.utils import counters

from engine.argument_checks import as_count
from engine.distributions.validation import trusted_run
from engine.infer.compiler_warnings import torch_compiler_warnings_ignored
from engine.infer.enum.elbo import TraceEnum_ELBO
from engine.infer.shape_signature import shape_signature
from engine.infer.trace_elbo import Trace_ELBO
from engine.infer.tracegraph_elbo import TraceGraph_ELBO
from engine.infer.tracemeanfield_elbo import TraceMeanField_ELBO
from engine.poutine.trace_struct import Trace

DEFAULT_MAX_COMPILED_SHAPES = 8

# Shape signatures remembered; more than this many distinct ones start the memory afresh, which
# costs one more eager step for each signature seen again.
_MAX_REMEMBERED_SIGNATURES = 256

# What torch.compile raises under the "fail_on_recompile" stance when no compiled variant fits.
_REFUSED = "fail_on_recompile"


@dataclass
class _Shapes:
    """What one shape signature of the model's arguments has done so far."""

    sites: frozenset[str]  # the sites its eager run recorded: its structure
    ran_compiled: bool = False
    eager_only: bool = False  # no compiled variant fit it once the bound was hit


def _graphs_compiled() -> int:
    """How many graphs torch.compile has built in this process."""
    return int(counters["stats"]["unique_graphs"])


class _CompiledEstimate:
    """Mixin put before an ELBO class: runs its ``_elbo_and_surrogate`` eagerly on each new shape
    signature of the model's arguments, compiled afterwards, and stops compiling once it has
    compiled ``max_compiled_shapes`` times. ``jit_options`` are keyword arguments of
    ``torch.compile``."""

    def __init__(
        self,
        *args: Any,
        jit_options: dict[str, Any] | None = None,
        max_compiled_shapes: int = DEFAULT_MAX_COMPILED_SHAPES,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.max_compiled_shapes = as_count(
            max_compiled_shapes,
            "max_compiled_shapes",
            minimum=0,
            fix="Pass how many argument shapes this ELBO may compile (0: never compile).",
        )
        self.jit_options = dict(jit_options or {})
        self._compiled: Callable | None = None
        self._compilations = 0  # calls in which torch.compile built a graph
        self._shapes: dict[Hashable, _Shapes] = {}
        self._compiled_structures: set[frozenset[str]] = set()
        self._recording: set[str] | None = None  # site names, while an eager run records them
        self._warned_full = False
        self._eager_only = False

    def _get_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> Iterator[tuple[Trace, Trace]]:
        for model_trace, guide_trace in super()._get_traces(model, guide, args, kwargs):
            if self._recording is not None:
                self._recording.update(model_trace.nodes)
                self._recording.update(guide_trace.nodes)
            yield model_trace, guide_trace

    def loss_and_grads(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        # The backward graph is compiled at the first backward pass, after the forward's call.
        with torch_compiler_warnings_ignored():
            return super().loss_and_grads(model, guide, *args, **kwargs)

    def _elbo_and_surrogate(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eager = super()._elbo_and_surrogate
        if self._eager_only or not torch.is_grad_enabled() or self.max_compiled_shapes == 0:
            return eager(model, guide, args, kwargs)
        signature = shape_signature((args, kwargs))
        shapes = self._shapes.get(signature)
        if shapes is None:
            # New shapes run eagerly first, with every check (the autoguide's check of new
            # shapes included): a broken model fails here with its usual error.
            self._recording = set()
            try:
                result = eager(model, guide, args, kwargs)
                sites = frozenset(self._recording)
            finally:
                self._recording = None
            if len(self._shapes) >= _MAX_REMEMBERED_SIGNATURES:
                self._shapes.clear()
            self._shapes[signature] = _Shapes(sites)
            return result
        if shapes.eager_only:
            return eager(model, guide, args, kwargs)
        if self._compiled is None:
            self._compiled = torch.compile(eager, **self.jit_options)
        full = self._compilations >= self.max_compiled_shapes
        before = _graphs_compiled()
        try:
            with (
                trusted_run(),
                torch_compiler_warnings_ignored(),
                self._compile_settings(shapes, full),
            ):
                result = self._compiled(model, guide, args, kwargs)
        except torch._dynamo.exc.TorchDynamoException as err:
            # Compiling failed. Run eagerly: a broken program raises the engine's own error
            # (naming site and shapes) here; a program that runs means the compiler is at fault.
            result = eager(model, guide, args, kwargs)
            warnings.warn(
                f"{type(self).__name__}: torch.compile failed ({type(err).__name__}); "
                "going on without compilation.",
                RuntimeWarning,
                stacklevel=4,
            )
            self._eager_only = True
            return result
        except RuntimeError as err:
            if not (full and _REFUSED in str(err)):
                raise
            # No compiled variant fits and no more may be built: these shapes run eagerly.
            result = eager(model, guide, args, kwargs)
            shapes.eager_only = True
            self._warn_full()
            return result
        finally:
            if _graphs_compiled() > before:
                self._compilations += 1
        shapes.ran_compiled = True
        self._compiled_structures.add(shapes.sites)
        return result

    def _compile_settings(self, shapes: _Shapes, full: bool) -> contextlib.AbstractContextManager:
        """How torch.compile may treat these shapes if none of its variants fits them.

        Once the bound is hit: refuse to compile. Before: allow as many variants as the bound
        (torch.compile's own limit per function is 8), and make a variant generic in its sizes
        (torch's automatic dynamic shapes) only when these shapes have the sites of shapes that
        ran compiled before, so that one variant can serve both; otherwise (a site per time step,
        say) compile for these sizes only, which builds faster and runs faster.
        """
        if full:
            return torch.compiler.set_stance(_REFUSED)
        if shapes.ran_compiled:
            return contextlib.nullcontext()
        settings: dict[str, Any] = {}
        if self.max_compiled_shapes > torch._dynamo.config.recompile_limit:
            settings["recompile_limit"] = self.max_compiled_shapes
        if "dynamic" not in self.jit_options and shapes.sites not in self._compiled_structures:
            settings["automatic_dynamic_shapes"] = False
        return torch._dynamo.config.patch(**settings) if settings else contextlib.nullcontext()

    def _warn_full(self) -> None:
        if self._warned_full:
            return
        self._warned_full = True
        name = type(self).__name__
        warnings.warn(
            f"{name}: {self._compilations} different argument shapes compiled "
            f"(max_compiled_shapes={self.max_compiled_shapes}); further shapes run eagerly, "
            f"since each compilation takes seconds to minutes. Pass "
            f"{name}(max_compiled_shapes=...) to compile more, or pad the data to fewer lengths.",
            RuntimeWarning,
            stacklevel=5,
        )


class JitTrace_ELBO(_CompiledEstimate, Trace_ELBO):
    """:class:`~engine.infer.Trace_ELBO`, compiled (see the module docstring).

    >>> JitTrace_ELBO(num_particles=2, jit_options={"backend": "aot_eager"}).jit_options
    {'backend': 'aot_eager'}
    """


class JitTraceMeanField_ELBO(_CompiledEstimate, TraceMeanField_ELBO):
    """:class:`~engine.infer.TraceMeanField_ELBO`, compiled (see the module docstring).

    >>> JitTraceMeanField_ELBO().num_particles
    1
    """


class JitTraceGraph_ELBO(_CompiledEstimate, TraceGraph_ELBO):
    """:class:`~engine.infer.TraceGraph_ELBO`, compiled (see the module docstring).

    >>> from engine.infer import TraceGraph_ELBO
    >>> isinstance(JitTraceGraph_ELBO(), TraceGraph_ELBO)
    True
    """


class JitTraceEnum_ELBO(_CompiledEstimate, TraceEnum_ELBO):
    """:class:`~engine.infer.TraceEnum_ELBO`, compiled (see the module docstring).
    ``max_compiled_shapes`` bounds how many argument shapes it compiles (an HMM compiles each
    length); further shapes run eagerly.

    >>> elbo = JitTraceEnum_ELBO(max_plate_nesting=1, max_compiled_shapes=3)
    >>> elbo.max_plate_nesting, elbo.max_compiled_shapes
    (1, 3)
    """
