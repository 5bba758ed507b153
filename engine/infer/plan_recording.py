"""Recording a computation once as a graph of tensor operations, to replay it without Python.

Running a model costs its Python code, the handler stack, the distributions' constructors and
autograd's bookkeeping on every call; for a small model that machinery costs several times the
arithmetic. :func:`record_plan` records one whole call of a function of tensors (the model run
through its handlers, the log densities, autograd's backward pass) as a graph of the tensor
operations it made, and returns something that replays that graph. The MCMC potential's gradient
(:mod:`engine.infer.mcmc.gradient_plan`) and SVI's steps (:mod:`engine.infer.svi_step_plan`) use
it; each decides when a plan may stand in for the full path and keeps checking that it does.

Recording uses fake tensors (``make_fx(..., tracing_mode="fake")``): they carry shapes but no
values, so a function whose Python control flow reads a value (``if x > 0``, ``.item()``) cannot be
recorded and raises :class:`PlanRefused`. Distributions that check their arguments and scored
values do so in the plan too: each check becomes an output of the graph (:class:`RecordedChecks`)
instead of a Python ``if``, and the caller reads one boolean after a replay.

>>> import torch
>>> def halved_normal_log_prob(scale):
...     return torch.distributions.Normal(0.0, scale, validate_args=True).log_prob(torch.zeros(()))
>>> plan = record_plan(halved_normal_log_prob, (torch.ones(()),))
>>> value, checks_passed = plan(torch.tensor(2.0))
>>> round(value.item(), 4), bool(checks_passed)
(-1.6121, True)
>>> bool(plan(torch.tensor(-2.0))[1])  # a negative scale fails the check recorded in the plan
False
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.overrides import TorchFunctionMode

from engine.rng import preserved_rng_state

# One recording at a time: recording swaps tracing modes in and out, and MCMC may run in a
# background thread while the notebook's own thread steps SVI.
_RECORDING = threading.Lock()


class PlanRefused(Exception):
    """The computation cannot be recorded as a plan (the full path stays in use)."""


class RecordedChecks(TorchFunctionMode):
    """While recording, the value checks torch's distributions make (``torch._is_all_true`` of
    each constraint's check, followed by a Python ``if`` that raises) are collected as tensors
    and answered "passed", so that the recording goes on; :meth:`all_passed` is their conjunction,
    an output of the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.checks: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch._is_all_true:
            self.checks.append(args[0].all().reshape(()))
            return True
        return func(*args, **(kwargs or {}))

    def all_passed(self) -> torch.Tensor:
        if not self.checks:
            return torch.ones((), dtype=torch.bool)
        return torch.stack(self.checks).all()


class RecordingBudget(TorchFunctionMode):
    """Stops a recording that has used more than ``seconds`` of its thread's CPU time.

    Recording costs far more per operation than running it, so a long computation (a guide that
    enumerates a 300-step chain makes tens of thousands of operations) would block for minutes
    before its first replay; DESIGN allows a default path 2 s of waiting. CPU time of the
    recording thread, not wall time, so that a busy machine does not refuse plans it would
    otherwise make.

    >>> with RecordingBudget(0.0):
    ...     try:
    ...         torch.ones(2).sum()
    ...     except PlanRefused as refusal:
    ...         print(refusal)
    recording took more than its budget of 0 s of CPU time
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.deadline = time.thread_time() + seconds

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if time.thread_time() > self.deadline:
            raise PlanRefused(
                f"recording took more than its budget of {self.seconds:g} s of CPU time"
            )
        return func(*args, **(kwargs or {}))


def _writes(node: torch.fx.Node) -> bool:
    """Whether a graph node may write into one of its inputs (an in-place operation)."""
    schema = getattr(node.target, "_schema", None)
    return schema is None or schema.is_mutable if node.op == "call_function" else False


def _drop_constant_copies(graph: torch.fx.Graph) -> None:
    """Recording copies every tensor the function creates from a literal into the graph on each
    call (``lift_fresh_copy``); in a graph that never writes in place, the copies are never
    written to, so they are pure cost."""
    for node in list(graph.nodes):
        if node.target is torch.ops.aten.lift_fresh_copy.default:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)


def _merge_repeated_operations(graph: torch.fx.Graph) -> None:
    """Compute each operation once: a model's handlers and checks often ask for the same thing
    twice (a value checked against a constraint by the distribution and again by its log_prob).
    Random operations (each call draws anew) are left alone."""
    seen: dict[tuple, torch.fx.Node] = {}
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        tags = getattr(node.target, "tags", ())
        if torch.Tag.nondeterministic_seeded in tags:
            continue
        try:
            key = (node.target, repr(node.args), repr(sorted(node.kwargs.items())))
        except Exception:  # an argument without a stable repr: keep the node
            continue
        earlier = seen.setdefault(key, node)
        if earlier is not node:
            node.replace_all_uses_with(earlier)
            graph.erase_node(node)


def _pointwise_before_expand(graph: torch.fx.Graph) -> None:
    """Apply a pointwise operation of one broadcast tensor before the broadcast: a distribution
    broadcasts a scalar scale to its batch shape (``expand``, no copy), then takes its log or
    square there, once per element; on the scalar it is one operation. ``f(expand(x))`` and
    ``expand(f(x))`` are the same values."""
    expand = torch.ops.aten.expand.default
    for node in list(graph.nodes):
        tags = getattr(node.target, "tags", ())
        if node.op != "call_function" or torch.Tag.pointwise not in tags:
            continue
        if torch.Tag.nondeterministic_seeded in tags or node.kwargs:
            continue
        tensors = [arg for arg in node.args if isinstance(arg, torch.fx.Node)]
        if len(tensors) != 1 or tensors[0].target is not expand:
            continue
        broadcast = tensors[0]
        small, shape = broadcast.args[0], broadcast.args[1]
        with graph.inserting_before(node):
            args = tuple(small if arg is broadcast else arg for arg in node.args)
            applied = graph.call_function(node.target, args)
            expanded = graph.call_function(expand, (applied, shape))
        node.replace_all_uses_with(expanded)
        graph.erase_node(node)


def _simplify(graph_module: torch.fx.GraphModule) -> None:
    """The rewrites above, which hold only where no operation writes in place (an aliased or
    shared tensor could then change between two uses), and one recompilation after them."""
    graph = graph_module.graph
    if any(_writes(node) for node in graph.nodes):
        return
    _drop_constant_copies(graph)
    _pointwise_before_expand(graph)
    _merge_repeated_operations(graph)
    graph.eliminate_dead_code()
    graph.lint()
    graph_module.recompile()


def captured_tensors(graph_module: torch.fx.GraphModule) -> list[str]:
    """The graph's constants that the function read from outside its inputs (a global, a closure,
    an attribute), rather than created from a literal: the plan holds them by reference, so it
    never sees the function read another tensor there later.

    >>> outside = torch.ones(2)
    >>> graph = make_fx(lambda x: x + outside + torch.tensor(1.0), tracing_mode="fake",
    ...                 _allow_non_fake_inputs=True)(torch.zeros(2))
    >>> [getattr(graph, name) is outside for name in captured_tensors(graph)]
    [True]
    """
    lifted = torch.ops.aten.lift_fresh_copy.default
    return [
        node.target
        for node in graph_module.graph.nodes
        if node.op == "get_attr"
        and isinstance(getattr(graph_module, node.target), torch.Tensor)
        and any(user.target is not lifted for user in node.users)
    ]


def _runner(graph_module: torch.fx.GraphModule, example: tuple) -> Callable[..., Any]:
    """The fastest way to replay the graph without compiling it: TorchScript's interpreter (its
    per-operation cost is a third of the fx graph's Python), else the fx graph itself."""
    try:
        with warnings.catch_warnings():
            # Deprecated in favour of torch.compile, which costs seconds to compile; the
            # interpreter starts in milliseconds, and the fx graph is there if it goes away.
            warnings.simplefilter("ignore")
            scripted = torch.jit.trace(graph_module, example, check_trace=False)
    except Exception:  # any failure of the optional interpreter: the fx graph does the same
        return graph_module
    return scripted


RECORDING_BUDGET_S = 1.5


def record_plan(
    function: Callable[..., Any],
    example: tuple,
    allow_captured: bool = True,
    budget_s: float = RECORDING_BUDGET_S,
) -> Callable[..., Any]:
    """Record ``function(*example)`` (autograd included) for inputs shaped like ``example``; the
    plan returns ``(function's result, whether every value check passed)``. Raises
    :class:`PlanRefused` when the function reads a value in its Python control flow, or, with
    ``allow_captured=False``, reads a tensor from outside its inputs (:func:`captured_tensors`),
    or when recording it takes more than ``budget_s`` of CPU time (:class:`RecordingBudget`).

    >>> def branching(z):
    ...     return z.sum() if bool(z.sum() > 0) else -z.sum()
    >>> try:
    ...     record_plan(branching, (torch.ones(2),))
    ... except PlanRefused:
    ...     print("refused")
    refused
    """

    def checked(*inputs: Any) -> tuple[Any, torch.Tensor]:
        with RecordingBudget(budget_s), RecordedChecks() as checks:
            result = function(*inputs)
        return result, checks.all_passed()

    try:
        with _RECORDING:
            graph_module = make_fx(checked, tracing_mode="fake", _allow_non_fake_inputs=True)(
                *example
            )
    except Exception as error:  # whatever a value-less run cannot do: keep the full path
        raise PlanRefused(f"{type(error).__name__}: {error}") from error
    if not allow_captured and captured_tensors(graph_module):
        raise PlanRefused(
            "the function reads tensors from outside its arguments (a global or a closure), "
            "which a plan would hold on to"
        )
    for name in captured_tensors(graph_module):
        # A captured tensor that requires grad (a param the model reads) would make every
        # replay's result require grad too, and chain the replays of a sampler into one growing
        # autograd graph; the recording already holds the backward pass, so the replay needs
        # only its values. A detached view shares the storage: in-place updates still show.
        value = getattr(graph_module, name)
        if value.requires_grad:
            setattr(graph_module, name, value.detach())
    _simplify(graph_module)
    with preserved_rng_state():  # the interpreter runs the graph once: its draws are not the run's
        return _runner(graph_module, example)


def agree(planned: torch.Tensor, full: torch.Tensor) -> bool:
    """Whether a plan's result is the full path's: the plan runs the same operations in the same
    order, so anything beyond rounding is a difference the recording did not see.

    >>> agree(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, float("nan")]))
    True
    """
    return torch.allclose(planned, full, rtol=1e-4, atol=1e-5, equal_nan=True)
