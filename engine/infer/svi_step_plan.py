"""SVI's loss and gradients, replayed from a recorded plan after a few checked steps.

A step of a small model spends most of its time in Python: the guide's and the model's code, the
handler stack, the distributions' constructors, autograd's bookkeeping. The arithmetic is a few
dozen tensor operations. After ``record_after`` steps with arguments of one kind (the same tensor
shapes, dtypes and devices, the same other values), :class:`PlannedSteps` records one step's loss
and gradients as a graph of those operations (:func:`~engine.infer.plan_recording.record_plan`),
a function of the params' unconstrained leaves and the arguments' tensors, and replays it for the
following steps: the guide's draws come from the same generator calls in the same order, so a
replayed step takes the same values the model would have taken. The optimizer, the finiteness
checks and the listeners work as on any step.

Nothing the full path checks is lost:

* Value checks: every check a distribution makes of its arguments and scored values is an output
  of the plan; a replayed step that fails one is retaken on the full path, which raises the
  usual error naming the site (the retaken step draws afresh).
* Structure: the sites (names, shapes, distributions, plates) of the recording must be those of
  the checked step before it, and every ``audit_every``-th step runs both paths from the same
  random state and drops a plan that no longer agrees (a model's Python state may change what it
  does; no recording can see that).
* What is recorded can be recorded faithfully: a model or guide whose Python control flow reads
  a value (``if x > 0``, ``.item()``), that reads a tensor from a global or a closure rather than
  from its arguments (the plan would keep the old tensor if the name were bound to a new one),
  whose params are not in the param store (a plain ``nn.Module`` given to ``pyro.module``), or
  whose arguments hold a tensor that requires grad, keeps the full path.

Models whose arguments change kind at every step (a float annealing factor) keep the full path
too: each kind of arguments is a plan of its own (at most ``max_plans``). A replay does not run
the model's Python code, so its side effects (a print, a counter) happen on the checked steps
only. :attr:`PlannedSteps.refused` says why a kind of arguments has no plan.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import SVI, Trace_ELBO
>>> from engine.optim import Adam
>>> def model(data):
...     loc = engine.sample("loc", dist.Normal(0.0, 10.0))
...     with engine.plate("data", len(data)):
...         engine.sample("obs", dist.Normal(loc, 1.0), obs=data)
>>> def guide(data):
...     mean = engine.param("mean", torch.tensor(0.0))
...     engine.sample("loc", dist.Normal(mean, 0.1))
>>> engine.clear_param_store()
>>> svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
>>> losses = svi.run(300, torch.full((20,), 3.0))
>>> len(svi.planned_steps.plans), round(engine.param("mean").item(), 1)
(1, 3.0)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from engine.infer.elbo import ELBO, reported_loss
from engine.infer.enum.elbo import TraceEnum_ELBO
from engine.infer.plan_recording import RECORDING_BUDGET_S, PlanRefused, agree, record_plan
from engine.infer.trace_elbo import Trace_ELBO
from engine.infer.tracemeanfield_elbo import TraceMeanField_ELBO
from engine.params import ParamStoreDict, param_store_scope
from engine.rng import get_rng_state, set_rng_state
from engine.runtime import Message, Messenger

# The ELBOs whose step is a pure function of params, arguments and draws (TraceGraph_ELBO keeps
# baselines from step to step; the compiled ELBOs compile instead). Exact types: a subclass may
# add state of its own.
PLANNED_ELBOS = (Trace_ELBO, TraceMeanField_ELBO, TraceEnum_ELBO)

# The full path of a step: its loss, and the leaves it accumulated gradients into.
FullStep = Callable[[], tuple[float, list[torch.Tensor]]]


class SiteLayout(Messenger):
    """Records what decides a step's structure: each site's type, name, value shape, whether it
    is observed, its distribution's type and its plates (in the order the guide and model meet
    them).

    >>> import engine, engine.distributions as dist
    >>> with SiteLayout() as layout:
    ...     _ = engine.sample("x", dist.Normal(0.0, 1.0).expand([2]))
    >>> layout.sites
    [('sample', 'x', (2,), False, 'Normal', ())]
    """

    def __init__(self) -> None:
        super().__init__()
        self.sites: list[tuple] = []

    def _postprocess_message(self, msg: Message) -> None:
        value = msg["value"]
        frames = tuple((f.name, f.size, f.dim) for f in msg["cond_indep_stack"])
        self.sites.append(
            (
                msg["type"],
                msg["name"],
                tuple(value.shape) if isinstance(value, torch.Tensor) else None,
                bool(msg.get("is_observed")),
                type(msg["fn"]).__name__,
                frames,
            )
        )


@dataclass(frozen=True)
class _Arguments:
    """A step's arguments split into tensors (the plan's inputs) and the rest (fixed in it)."""

    tensors: list[torch.Tensor]
    positions: tuple[int, ...]  # where each tensor sits among the flattened leaves
    leaves: list[Any]
    spec: Any

    def rebuilt(self, tensors: list[torch.Tensor]) -> tuple[tuple, dict[str, Any]]:
        leaves = list(self.leaves)
        for position, tensor in zip(self.positions, tensors, strict=True):
            leaves[position] = tensor
        return tree_unflatten(leaves, self.spec)


_SCALARS = (bool, int, float, str, type(None))


def _layout_of(tensor: torch.Tensor) -> tuple:
    """What a plan fixes about an input tensor: its shape, dtype and device."""
    return tensor.shape, tensor.dtype, tensor.device


def _split(args: tuple, kwargs: dict[str, Any]) -> tuple[_Arguments, Hashable] | None:
    """The arguments and their kind (the plan's key), or None when a plan cannot take them: an
    object that is neither a tensor nor a plain value, or a tensor that requires grad (the full
    path would accumulate a gradient into it)."""
    leaves, spec = tree_flatten((args, kwargs))
    tensors, positions, kind = [], [], []
    for position, leaf in enumerate(leaves):
        if isinstance(leaf, torch.Tensor):
            if leaf.requires_grad:
                return None
            tensors.append(leaf)
            positions.append(position)
            kind.append(_layout_of(leaf))
        elif isinstance(leaf, _SCALARS):
            kind.append((type(leaf), leaf))
        else:
            return None
    return _Arguments(tensors, tuple(positions), leaves, spec), (spec, tuple(kind))


@dataclass
class _Recording:
    """What the recording's run of guide and model saw: its sites, its store (stand-ins for the
    leaves; params it created stay there, never in the real store) and the kind of its loss."""

    layout: SiteLayout = field(default_factory=SiteLayout)
    store: ParamStoreDict | None = None
    is_negative_elbo: bool = False


@dataclass
class _Plan:
    """One recorded step and what it was recorded against."""

    run: Callable[..., Any]
    names: tuple[str, ...]  # the params whose leaves are its inputs, in order
    shapes: tuple[tuple, ...]  # their shapes, dtypes and devices
    layout: list[tuple]
    is_negative_elbo: bool
    replays: int = 0


class PlannedSteps:
    """The loss and gradients of an SVI step with ``elbo``: the full path for the first
    ``record_after`` steps of each kind of arguments, then a recorded plan of it (see the module
    docstring). ``svi.planned_steps`` is the one of an SVI object (None for a custom loss, an
    ELBO outside :data:`PLANNED_ELBOS`, or ``SVI(..., plan_steps=False)``).
    """

    record_after = 10
    max_plans = 4
    audit_every = 128  # replays between two steps taken on both paths
    recording_budget_s = RECORDING_BUDGET_S  # CPU seconds a recording may take before it stops
    _max_kinds = 64  # kinds of arguments counted; more are left to the full path

    def __init__(self, elbo: ELBO, model: Callable, guide: Callable):
        self.elbo, self.model, self.guide = elbo, model, guide
        self.plans: dict[Hashable, _Plan] = {}
        self.refused: dict[Hashable, str] = {}
        self._steps: dict[Hashable, int] = {}

    def step(
        self, store: ParamStoreDict, args: tuple, kwargs: dict[str, Any], full: FullStep
    ) -> tuple[float, list[torch.Tensor]]:
        """One step's loss, with the gradients accumulated into the returned leaves."""
        split = _split(args, kwargs)
        if split is None:
            return full()
        arguments, kind = split
        plan = self.plans.get(kind)
        if plan is not None:
            plan.replays += 1
            if plan.replays % self.audit_every:
                replayed = self._replay(plan, store, arguments)
                if replayed is not None:
                    return replayed
                return full()
            return self._audit(kind, plan, store, arguments, full)
        count = self._steps.get(kind, 0) + 1
        if count < self.record_after or kind in self.refused or len(self.plans) >= self.max_plans:
            if kind in self._steps or len(self._steps) < self._max_kinds:
                self._steps[kind] = count
            return full()
        self._steps[kind] = count
        return self._record(kind, store, arguments, full)

    # -- replaying ---------------------------------------------------------------------------

    def _inputs(self, plan: _Plan, store: ParamStoreDict) -> list[torch.Tensor] | None:
        try:
            leaves = store.leaves(plan.names)
        except KeyError:  # a param was deleted since the recording
            return None
        return leaves if tuple(map(_layout_of, leaves)) == plan.shapes else None

    def _run(
        self, plan: _Plan, leaves: list[torch.Tensor], arguments: _Arguments
    ) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
        """The plan's loss and gradients, or None where a recorded value check failed."""
        with torch.no_grad():
            (loss, grads), checks_passed = plan.run(
                [leaf.detach() for leaf in leaves], arguments.tensors
            )
        return (loss, grads) if bool(checks_passed) else None

    def _replay(
        self, plan: _Plan, store: ParamStoreDict, arguments: _Arguments
    ) -> tuple[float, list[torch.Tensor]] | None:
        leaves = self._inputs(plan, store)
        result = None if leaves is None else self._run(plan, leaves, arguments)
        if result is None:
            return None
        loss, grads = result
        for leaf, grad in zip(leaves, grads, strict=True):
            leaf.grad = grad
        return reported_loss(loss.item(), plan.is_negative_elbo), leaves

    # -- recording and auditing --------------------------------------------------------------

    def _checked_full_step(self, full: FullStep) -> tuple[float, list[torch.Tensor], list, dict]:
        """A full step, with its site layout and the random state it started from."""
        start = get_rng_state()
        with SiteLayout() as layout:
            loss, leaves = full()
        return loss, leaves, layout.sites, start

    def _record(
        self, kind: Hashable, store: ParamStoreDict, arguments: _Arguments, full: FullStep
    ) -> tuple[float, list[torch.Tensor]]:
        loss, leaves, layout, start = self._checked_full_step(full)
        try:
            self.plans[kind] = self._recorded(store, arguments, leaves, layout, start, loss)
        except PlanRefused as refusal:
            self.refused[kind] = str(refusal)
        return loss, leaves

    def _recorded(
        self,
        store: ParamStoreDict,
        arguments: _Arguments,
        leaves: list[torch.Tensor],
        layout: list[tuple],
        start: dict,
        loss: float,
    ) -> _Plan:
        names = tuple(store.param_name(leaf) for leaf in leaves)
        if not names or None in names:
            raise PlanRefused("the step's params are not all in the param store")
        seen = _Recording()

        def loss_and_grads(
            leaf_values: list[torch.Tensor], tensors: list[torch.Tensor]
        ) -> tuple[torch.Tensor, list[torch.Tensor]]:
            inputs = [value.detach().requires_grad_(True) for value in leaf_values]
            args, kwargs = arguments.rebuilt(tensors)
            seen.store = store.with_leaves(dict(zip(names, inputs, strict=True)))
            with param_store_scope(seen.store), seen.layout:
                differentiable, seen.is_negative_elbo = self.elbo.loss_to_differentiate(
                    self.model, self.guide, args, kwargs
                )
            grads = torch.autograd.grad(differentiable, inputs, allow_unused=True)
            if any(grad is None for grad in grads):
                raise PlanRefused("a param of the step gets no gradient from the loss")
            return differentiable.detach(), list(grads)

        example = ([leaf.detach() for leaf in leaves], arguments.tensors)
        run = record_plan(
            loss_and_grads, example, allow_captured=False, budget_s=self.recording_budget_s
        )
        if set(seen.store.keys()) != set(store.keys()) or seen.layout.sites != layout:
            raise PlanRefused("the recording saw other sites than the checked step")
        plan = _Plan(
            run,
            names,
            tuple(map(_layout_of, leaves)),
            layout,
            seen.is_negative_elbo,
        )
        if not self._agrees(plan, leaves, arguments, start, loss):
            raise PlanRefused("the plan's loss or gradients differ from the full path's")
        return plan

    def _agrees(
        self,
        plan: _Plan,
        leaves: list[torch.Tensor],
        arguments: _Arguments,
        start: dict,
        loss: float,
    ) -> bool:
        """Whether the plan, replayed from the random state the full step ``loss`` (whose
        gradients are in the leaves) started from, gives that step's loss and gradients. The
        random state is left where the full step left it."""
        end = get_rng_state()
        set_rng_state(start)
        try:
            result = self._run(plan, leaves, arguments)
        finally:
            set_rng_state(end)
        if result is None:
            return False
        planned_loss, grads = result
        planned = reported_loss(planned_loss.item(), plan.is_negative_elbo)
        return agree(torch.tensor(planned), torch.tensor(loss)) and all(
            leaf.grad is not None and agree(grad, leaf.grad)
            for leaf, grad in zip(leaves, grads, strict=True)
        )

    def _audit(
        self,
        kind: Hashable,
        plan: _Plan,
        store: ParamStoreDict,
        arguments: _Arguments,
        full: FullStep,
    ) -> tuple[float, list[torch.Tensor]]:
        """A full step, checked against the plan replayed from the same random state; a plan
        that no longer agrees (the model's Python state changed its sites or values since the
        recording) is dropped."""
        loss, leaves, layout, start = self._checked_full_step(full)
        same_leaves = [store.param_name(leaf) for leaf in leaves] == list(plan.names)
        if not (
            same_leaves
            and layout == plan.layout
            and self._agrees(plan, leaves, arguments, start, loss)
        ):
            del self.plans[kind]
            self.refused[kind] = "the model's sites or values changed after the recording"
        return loss, leaves
