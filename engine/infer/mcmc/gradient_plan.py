"""A recorded plan of a potential's energy and gradient, replayed instead of running the model.

Every evaluation of the full path runs the model's Python code, the handler stack, the
distributions' constructors and autograd's bookkeeping; for a small model such as eight schools
that machinery costs several times the arithmetic. Once a point has been evaluated on the full
path, that whole computation (the model run through its handlers, the transforms and their
log|J|, the log densities and autograd's backward pass) is recorded once as a graph of tensor
operations of the flat vector ``z`` (:func:`~engine.infer.plan_recording.record_plan`), and later
evaluations replay the graph.

A model (or handler) whose Python control flow reads a value cannot be recorded; it keeps the
full path, where its structure may change from point to point. A plan is also refused when the
sites recorded differ from those of the checked run before it, or when its energy or gradient at
the checked point differ from the full path's. A plan fixes the shape, dtype and device of ``z``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.distributions.validation import is_validation_enabled
from engine.infer.plan_recording import PlanRefused, agree, record_plan

EnergyAndGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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
            plan = self._checked_plan(record_plan(self.full, (z,)))
            if self.structure() != checked:
                raise PlanRefused("the recording saw other sites than the checked run")
            with torch.no_grad():
                planned_value, planned_grad = plan(z)
            if not (agree(planned_value, value) and agree(planned_grad, grad)):
                raise PlanRefused("the plan's energy or gradient differ from the full path's")
        except PlanRefused as refusal:
            self.refused[key] = str(refusal)
            return
        self.plans[key] = plan
        self._replays[key] = 0
        self._structures[key] = checked

    def _checked_plan(self, recorded: Callable) -> EnergyAndGrad:
        """The recorded plan, which the full path takes over where a value check recorded in it
        fails (torch's own distributions inside an engine one, such as StudentT's Chi2, check
        even in the sampler's runs): there the full path does what it does with that value."""

        def plan(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            energy_and_grad, checks_passed = recorded(z)
            return energy_and_grad if bool(checks_passed) else self.full(z)

        return plan

    def _audit(self, key: tuple, plan: EnergyAndGrad, z: torch.Tensor) -> tuple:
        """Evaluate ``z`` on both paths; a plan that no longer agrees with the model (whose
        Python state changed its sites, or their values, since the recording) is dropped."""
        value, grad = self.full(z)
        with torch.no_grad():
            planned_value, planned_grad = plan(z)
        if self.structure() != self._structures[key] or not (
            agree(planned_value, value) and agree(planned_grad, grad)
        ):
            del self.plans[key]
            self.refused[key] = "the model's sites or values changed after the recording"
        return value, grad
