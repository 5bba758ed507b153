"""A recorded plan of a potential's energy and gradient, replayed instead of running the model.

Every evaluation of the full path runs the model's Python code, the handler stack, the
distributions' constructors and autograd's bookkeeping; for a small model such as eight schools
that machinery costs several times the arithmetic. Once a point has been evaluated on the full
path, :func:`record_plan` records that whole computation (the model run through its handlers,
the transforms and their log|J|, the log densities and autograd's backward pass) once, as a graph
of tensor operations of the flat vector ``z``, and later evaluations replay the graph.

Recording uses fake tensors (``make_fx(..., tracing_mode="fake")``): they carry shapes but no
values, so a model (or handler) whose Python control flow reads a value (``if x > 0``,
``.item()``, ``.tolist()``) cannot be recorded and raises :class:`PlanRefused`; it keeps the full
path, where its structure may change from point to point. A plan is also refused when the sites
recorded differ from those of the checked run before it, or when its energy or gradient at the
checked point differ from the full path's. A plan fixes the shape, dtype and device of ``z``.

>>> import torch
>>> def energy_and_grad(z):  # U(z) = |z|² / 2 per row, by autograd
...     z = z.detach().requires_grad_(True)
...     value = 0.5 * (z * z).sum(-1)
...     return value.detach(), torch.autograd.grad(value.sum(), z)[0]
>>> plan = record_plan(energy_and_grad, torch.zeros(2, 3))
>>> value, grad = plan(torch.ones(2, 3))
>>> value.tolist(), bool((grad == 1).all())
([1.5, 1.5], True)
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

import torch
from torch.fx.experimental.proxy_tensor import make_fx

from engine.distributions.validation import is_validation_enabled

EnergyAndGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


# One recording at a time: recording swaps tracing modes in and out, and MCMC may run in a
# background thread while the notebook's own thread samples too.
_RECORDING = threading.Lock()


class PlanRefused(Exception):
    """The computation cannot be recorded as a plan (the full path stays in use)."""


def _writes(node: torch.fx.Node) -> bool:
    """Whether a graph node may write into one of its inputs (an in-place operation)."""
    schema = getattr(node.target, "_schema", None)
    return schema is None or schema.is_mutable if node.op == "call_function" else False


def _drop_constant_copies(graph_module: torch.fx.GraphModule) -> None:
    """Recording copies every tensor the model creates from a literal into the graph on each
    call (``lift_fresh_copy``); when no operation of the graph writes in place, the copies are
    never written to, so they are pure cost."""
    graph = graph_module.graph
    if any(_writes(node) for node in graph.nodes):
        return
    for node in list(graph.nodes):
        if node.target is torch.ops.aten.lift_fresh_copy.default:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    graph.eliminate_dead_code()
    graph_module.recompile()


def _runner(graph_module: torch.fx.GraphModule, z: torch.Tensor) -> EnergyAndGrad:
    """The fastest way to replay the graph without compiling it: TorchScript's interpreter (its
    per-operation cost is a third of the fx graph's Python), else the fx graph itself."""
    try:
        with warnings.catch_warnings():
            # Deprecated in favour of torch.compile, which costs seconds to compile; the
            # interpreter starts in milliseconds, and the fx graph is there if it goes away.
            warnings.simplefilter("ignore")
            scripted = torch.jit.trace(graph_module, (z,), check_trace=False)
    except Exception:  # any failure of the optional interpreter: the fx graph does the same
        return graph_module
    return scripted


def record_plan(energy_and_grad: EnergyAndGrad, z: torch.Tensor) -> EnergyAndGrad:
    """Record ``energy_and_grad`` (the full path, autograd included) for points shaped like
    ``z``; raises :class:`PlanRefused` when it reads a value in its Python control flow.

    >>> def branching(z):
    ...     value = z.sum(-1) if bool(z.sum() > 0) else -z.sum(-1)
    ...     return value, torch.ones_like(z)
    >>> try:
    ...     record_plan(branching, torch.ones(1, 2))
    ... except PlanRefused as refused:
    ...     print("refused")
    refused
    """
    try:
        with _RECORDING:
            graph_module = make_fx(
                energy_and_grad, tracing_mode="fake", _allow_non_fake_inputs=True
            )(z)
    except Exception as error:  # whatever a value-less run cannot do: keep the full path
        raise PlanRefused(f"{type(error).__name__}: {error}") from error
    _drop_constant_copies(graph_module)
    return _runner(graph_module, z)


def _agree(planned: torch.Tensor, full: torch.Tensor) -> bool:
    """Whether a plan's result is the full path's: the plan runs the same operations in the same
    order, so anything beyond rounding is a difference the recording did not see."""
    return torch.allclose(planned, full, rtol=1e-4, atol=1e-5, equal_nan=True)


class PlannedGradient:
    """``energy_and_grad`` that, per shape of ``z``, runs ``full`` (the checked path) for the
    first ``record_after`` evaluations of that shape, then records a plan and replays it. (A
    recording costs about as much as a few hundred evaluations, so the shapes evaluated only a
    few times, such as the single points tried while placing the chains, keep the full path.)

    The full path keeps every evaluation made while distributions check values
    (:func:`~engine.distributions.validation.is_validation_enabled`): those checks need the model
    to run. ``structure()`` describes the sites of the latest run of the model; a plan whose
    recording saw other sites than the checked run before it is refused, as is a plan whose
    energy or gradient at that point differ from the full path's. Every ``audit_every``-th
    replay runs the full path too, and a plan that disagrees with it is dropped: a model's
    Python state (not its values) may change its sites after the recording, which no recording
    can see. :attr:`refused` says why a shape has no plan.

    >>> def energy_and_grad(z):
    ...     return (z * z).sum(-1), 2 * z
    >>> planned = PlannedGradient(energy_and_grad, structure=lambda: ())
    >>> from engine.distributions.validation import trusted_run
    >>> with trusted_run():
    ...     for _ in range(planned.record_after + 1):
    ...         value, grad = planned(torch.ones(1, 2))
    >>> len(planned.plans), planned.refused, value.tolist()
    (1, {}, [2.0])
    """

    record_after = 8
    max_plans = 4  # shapes with a plan of their own (the chains, a single point)
    audit_every = 256  # replays between two evaluations on both paths

    def __init__(self, full: EnergyAndGrad, structure: Callable[[], object]):
        self.full = full
        self.structure = structure
        self.plans: dict[tuple, EnergyAndGrad] = {}
        self.refused: dict[tuple, str] = {}
        self._evaluations: dict[tuple, int] = {}
        self._replays: dict[tuple, int] = {}
        self._structures: dict[tuple, object] = {}

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if is_validation_enabled():
            return self.full(z)
        key = (tuple(z.shape), z.dtype, z.device)
        plan = self.plans.get(key)
        if plan is not None:
            self._replays[key] += 1
            if self._replays[key] % self.audit_every:
                return plan(z)
            return self._audit(key, plan, z)
        value, grad = self.full(z)
        evaluations = self._evaluations.get(key, 0) + 1
        self._evaluations[key] = evaluations
        if (
            evaluations >= self.record_after
            and key not in self.refused
            and len(self.plans) < self.max_plans
        ):
            self._record(key, z, value, grad)
        return value, grad

    def _record(self, key: tuple, z: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> None:
        checked = self.structure()
        try:
            plan = record_plan(self.full, z)
            if self.structure() != checked:
                raise PlanRefused("the recording saw other sites than the checked run")
            with torch.no_grad():
                planned_value, planned_grad = plan(z)
            if not (_agree(planned_value, value) and _agree(planned_grad, grad)):
                raise PlanRefused("the plan's energy or gradient differ from the full path's")
        except PlanRefused as refusal:
            self.refused[key] = str(refusal)
            return
        self.plans[key] = plan
        self._replays[key] = 0
        self._structures[key] = checked

    def _audit(self, key: tuple, plan: EnergyAndGrad, z: torch.Tensor) -> tuple:
        """Evaluate ``z`` on both paths; a plan that no longer agrees with the model (whose
        Python state changed its sites, or their values, since the recording) is dropped."""
        value, grad = self.full(z)
        with torch.no_grad():
            planned_value, planned_grad = plan(z)
        if self.structure() != self._structures[key] or not (
            _agree(planned_value, value) and _agree(planned_grad, grad)
        ):
            del self.plans[key]
            self.refused[key] = "the model's sites or values changed after the recording"
        return value, grad
