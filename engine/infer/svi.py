"""``SVI``: stochastic variational inference, one optimizer step at a time.

Each step draws the guide, replays it into the model, estimates the ELBO and its gradient, checks
that the loss and every gradient are finite, and only then lets the optimizer change the
parameters. A failed step leaves the param store exactly as it was: params created during the
step are removed again, and no parameter is updated. Every step is reported through
``svi.progress`` (see :mod:`engine.infer.progress`).

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import SVI, Trace_ELBO
>>> from engine.optim import Adam
>>> from engine.distributions import constraints
>>> def model():
...     engine.sample("x", dist.Normal(3.0, 1.0))
>>> def guide():
...     loc = engine.param("loc", torch.tensor(0.0))
...     engine.sample("x", dist.Normal(loc, 1.0))
>>> svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
>>> losses = svi.run(300)
>>> abs(engine.param("loc").item() - 3.0) < 0.5
True
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

from engine.argument_checks import as_count
from engine.atomic_file import (
    atomic_torch_save,
    content_error,
    load_state_file,
    require_entries,
    warn_replaced_shapes,
)
from engine.distributions.validation import trusted_run
from engine.errors import ArgumentError, NonFiniteError, PPLError
from engine.infer.elbo import ELBO
from engine.infer.guide_then_model import guide_and_model_traces
from engine.infer.nonfinite import NonFiniteSite, find_first_nonfinite, nonfinite_gradients
from engine.infer.progress import Progress, ProgressEvent
from engine.infer.svi_posterior import GuidePosterior
from engine.infer.svi_step_plan import PLANNED_ELBOS, PlannedSteps
from engine.interrupts import deferred_interrupt
from engine.params import ParamStoreDict, get_param_store, param_store_scope
from engine.poutine.handlers import block, trace
from engine.poutine.trace_struct import Trace
from engine.rng import preserved_rng_state, restore_rng_state_payload, rng_state_payload
from engine.source_lines import SourceLines

_STATE_FORMAT = "pplkernel-svi-state-v1"


class SVI:
    """Stochastic variational inference with ``model``, ``guide``, an ``optim`` wrapper from
    :mod:`engine.optim` and an ELBO ``loss``.

    ``on_nonfinite="raise"`` (the default) stops at a NaN or infinite loss or gradient with a
    :class:`NonFiniteError` naming where it first appeared; ``"skip"`` drops such a step instead
    (nothing changes, the step is counted in ``skipped_steps`` and reported to listeners).

    ``loss`` is an ELBO (``svi.elbo``), or, as in Pyro, any callable ``loss(model, guide, *args,
    **kwargs)`` returning a differentiable loss (a custom objective); ``svi.loss(model, guide,
    *args)`` then estimates the loss, as Pyro's ``svi.loss`` does. ``loss_and_grads`` replaces
    how a step turns the loss into gradients (by default: ``backward`` on the loss).

    After a few steps, the loss and gradients of a step are replayed from a recorded plan of
    the model and guide (:mod:`~engine.infer.svi_step_plan`; ``svi.planned_steps``), several
    times cheaper and with every check kept; ``plan_steps=False`` (not in Pyro) runs every step
    in full.

    ``param_store`` (not in Pyro) gives this SVI a param store of its own: its steps, losses,
    state and files use that store instead of the global one (see
    :func:`~engine.params.param_store_scope`), so two fits of one model keep apart.
    """

    # How a failed step names itself and the way out: CSIS trains its guide with these steps.
    _step_label = "SVI step"
    _skip_hint = " Pass on_nonfinite='skip' to SVI to skip such steps instead."

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optim: Callable,
        loss: ELBO | Callable[..., Any],
        loss_and_grads: Callable[..., Any] | None = None,
        on_nonfinite: str = "raise",
        param_store: ParamStoreDict | None = None,
        plan_steps: bool = True,
        num_samples: int = 0,
        num_steps: int = 0,
        **kwargs: Any,
    ):
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
        if not callable(loss):
            raise TypeError(
                "loss must be an ELBO such as Trace_ELBO(), or a function loss(model, guide, "
                f"*args, **kwargs) returning a loss tensor; got {type(loss).__name__}"
            )
        self.model = model
        self.guide = guide
        self.optim = optim
        self.elbo: ELBO | None = loss if isinstance(loss, ELBO) else None
        self.loss: Callable[..., Any] = loss.loss if self.elbo is not None else loss
        custom = loss_and_grads is not None
        if loss_and_grads is None:
            loss_and_grads = (
                self.elbo.loss_and_grads if self.elbo is not None else self._backward_of_loss
            )
        self.loss_and_grads = loss_and_grads
        plannable = self.elbo is not None and type(self.elbo) in PLANNED_ELBOS
        self.planned_steps = (
            PlannedSteps(self.elbo, model, guide)
            if plan_steps and plannable and not custom
            else None
        )
        self.on_nonfinite = on_nonfinite
        self.param_store = param_store
        self.step_count = 0
        self.losses: list[float] = []
        self.skipped_steps: list[int] = []
        self.progress = Progress()
        self.num_samples = as_count(num_samples, "SVI: num_samples", minimum=0)
        self.num_steps = as_count(num_steps, "SVI: num_steps", minimum=0)
        if self.num_samples or self.num_steps:
            warnings.warn(
                "SVI(num_samples=..., num_steps=...) is Pyro's deprecated use of SVI as a "
                "posterior: svi.run(*args) then takes num_steps steps and returns num_samples "
                "traces of the guide replayed through the model. Prefer svi.run(num_steps, "
                "*args) (or svi.step) to fit, and Predictive to draw from the fitted guide.",
                FutureWarning,
                stacklevel=2,
            )

    @contextlib.contextmanager
    def _own_store(self) -> Iterator[ParamStoreDict]:
        """The store this SVI works in, made active for the block."""
        if self.param_store is None:
            yield get_param_store()
        else:
            with param_store_scope(self.param_store) as store:
                yield store

    def _backward_of_loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any):
        """A custom loss's step: the loss, and its gradient accumulated into the params."""
        loss = self.loss(model, guide, *args, **kwargs)
        if isinstance(loss, torch.Tensor):
            if loss.requires_grad:
                loss.backward(retain_graph=True)
            return loss.item()
        return float(loss)

    # -- one step --------------------------------------------------------------------------

    def step(self, *args: Any, **kwargs: Any) -> float:
        """Take one gradient step; returns the loss (the negative ELBO estimate), or, for an
        objective with several losses, their tuple of numbers, as Pyro does
        (``ReweightedWakeSleep``'s ``(wake_theta_loss, phi_loss)``)."""
        params: list[torch.Tensor] = []
        with self._own_store() as store, contextlib.ExitStack() as whole_step:
            with store.transaction():
                try:
                    loss, params = self._loss_and_grads(store, args, kwargs)
                    problem = self._nonfinite_problem(loss, params, args, kwargs)
                    # Up to here a stop (KeyboardInterrupt) is undone by the transaction. From
                    # here the step is taken (or counted as skipped) whole: the optimizer's
                    # update, the count, the loss and the listeners, then the stop.
                    whole_step.enter_context(deferred_interrupt())
                    if problem is None:
                        self.optim(params)
                        if self.elbo is not None:
                            self.elbo.commit_step()
                    elif self.on_nonfinite == "raise":
                        raise NonFiniteError(problem)
                    else:
                        self.skipped_steps.append(self.step_count + 1)
                finally:
                    for leaf in params:
                        leaf.grad = None
                self.step_count += 1
                self.losses.append(loss)
            # Reported once committed: a listener that fails cannot undo half of the step.
            if self.progress.active:
                self._report(loss, params, problem)
        return loss

    def _loss_and_grads(
        self, store: ParamStoreDict, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[float, list[torch.Tensor]]:
        """The step's loss, with gradients accumulated into the returned leaves: replayed from a
        recorded plan where :mod:`~engine.infer.svi_step_plan` can, else on the full path."""
        full = functools.partial(self._full_loss_and_grads, args, kwargs)
        plan = self.planned_steps
        if plan is None:
            return full()
        if plan.model is not self.model or plan.guide is not self.guide:
            # The user gave this SVI another model or guide (Pyro's attributes): a plan
            # recorded on the old pair must not run in its place.
            plan = self.planned_steps = PlannedSteps(plan.elbo, self.model, self.guide)
        if self.loss_and_grads != plan.elbo.loss_and_grads:
            return full()  # a loss_and_grads set by the user runs as given
        return plan.step(store, args, kwargs, full)

    def _full_loss_and_grads(
        self, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[float, list[torch.Tensor]]:
        with trace(param_only=True) as param_capture:
            loss = self.loss_and_grads(self.model, self.guide, *args, **kwargs)
        if isinstance(loss, tuple):
            loss = _numbers(loss)
        return loss, self._leaves(param_capture.trace)

    @staticmethod
    def _leaves(param_trace) -> list[torch.Tensor]:
        leaves: dict[int, torch.Tensor] = {}
        named = None
        for name, site in param_trace.nodes.items():
            link = getattr(site["value"], "unconstrained", None)
            leaf = link() if callable(link) else None
            if leaf is None:
                named = dict(get_param_store().named_parameters()) if named is None else named
                leaf = named.get(name)
            if leaf is not None:
                leaves[id(leaf)] = leaf
        return list(leaves.values())

    def _nonfinite_problem(self, loss: float, params, args, kwargs) -> str | None:
        grads = [leaf.grad for leaf in params if leaf.grad is not None]
        grads_finite = not grads or bool(
            torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum())
        )
        if _finite(loss) and grads_finite:
            return None
        store = get_param_store()
        names = {id(leaf): name for name, leaf in store.named_parameters()}
        bad_grads = nonfinite_gradients((names.get(id(p), "?"), p) for p in params)
        culprit = self._locate_nonfinite_site(args, kwargs)
        lines = [f"{self._step_label} {self.step_count + 1}: the loss is {loss}."]
        if culprit is not None:
            lines.append(f"First non-finite value: {culprit.describe()}.")
        if bad_grads:
            lines.append("Non-finite gradients: " + "; ".join(bad_grads) + ".")
        lines.append(
            "No parameter was changed. Common causes: a scale or rate that reaches 0 (constrain "
            "it with constraints.positive), log of 0, a learning rate too large, or data with "
            "NaNs." + self._skip_hint
        )
        text = "\n".join(lines)
        return text if culprit is None else culprit.attach_to(text)

    def _locate_nonfinite_site(self, args, kwargs) -> NonFiniteSite | None:
        # Re-run with the same random state as the failed step would be wrong (it is gone);
        # a fresh draw usually meets the same problem, and is only used to point at a site.
        # Checks are off: an invalid argument must show up as the NaN it causes, not raise.
        # The RNG is put back, so that looking costs the run none of its draws.
        guide_lines, model_lines = SourceLines(), SourceLines()
        try:
            with torch.no_grad(), trusted_run(), preserved_rng_state():
                guide_trace, model_trace = self._diagnostic_traces(
                    model_lines(self.model), guide_lines(self.guide), args, kwargs
                )
                for tr in (guide_trace, model_trace):
                    tr.compute_log_prob()
        except Exception:  # the step's own error says what matters; this only points
            return None
        return find_first_nonfinite(
            [("guide", guide_trace), ("model", model_trace)],
            {"guide": guide_lines.lines, "model": model_lines.lines},
        )

    def _diagnostic_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[Trace, Trace]:
        """A fresh ``(guide trace, model trace)`` of one particle, searched for the first
        non-finite value after a failed step."""
        return guide_and_model_traces(model, guide, args, kwargs)

    def _report(self, loss: float, params: list[torch.Tensor], problem: str | None) -> None:
        snapshot = None
        if self.progress.wants_params:
            snapshot = {name: value.detach().clone() for name, value in get_param_store().items()}
        info = {"skipped": True, "message": problem} if problem is not None else {}
        self.progress.emit(_event(self.step_count, loss, snapshot, info))

    # -- loops and evaluation --------------------------------------------------------------

    def run(
        self,
        *args: Any,
        callback: Callable[[ProgressEvent], Any] | None = None,
        **kwargs: Any,
    ) -> list[float] | GuidePosterior:
        """``svi.run(num_steps, *args, **kwargs)``: take ``num_steps`` steps with the model's
        arguments; returns their losses. ``callback(event)`` is called after each step (it sees
        a :class:`ProgressEvent`); returning True stops the run early. ``num_steps`` must be
        a whole number >= 0 (a negative one is refused, not read as 0).

        An SVI made with Pyro's deprecated ``num_samples`` / ``num_steps`` reads
        ``svi.run(*args, **kwargs)`` as Pyro does: every argument is the model's, it takes the
        constructor's ``num_steps`` steps and returns a
        :class:`~engine.infer.svi_posterior.GuidePosterior` of ``num_samples`` traces.
        """
        if self.num_samples or self.num_steps:
            return self._run_as_posterior(args, kwargs)
        if args:
            num_steps, *args = args
        elif "num_steps" in kwargs:
            num_steps = kwargs.pop("num_steps")
        else:
            raise ArgumentError(
                "SVI.run needs the number of steps to take first: svi.run(1000, *model_args)."
            )
        num_steps = as_count(
            num_steps,
            "SVI.run: num_steps",
            minimum=0,
            fix="It is the number of optimisation steps to take, e.g. svi.run(1000, data).",
        )
        losses = []
        for _ in range(num_steps):
            losses.append(self.step(*args, **kwargs))
            if callback is not None:
                event = _event(self.step_count, losses[-1])
                if callback(event) is True:
                    break
        return losses

    def _run_as_posterior(self, args: tuple, kwargs: dict[str, Any]) -> GuidePosterior:
        """Pyro's deprecated ``run``: the constructor's steps, then the guide's traces."""
        with block():  # as in Pyro: handlers around the call do not see the steps' sites
            for _ in range(self.num_steps):
                self.step(*args, **kwargs)
        with self._own_store():
            return GuidePosterior(self.model, self.guide, self.num_samples).run(*args, **kwargs)

    def evaluate_loss(self, *args: Any, **kwargs: Any) -> float:
        """Estimate the loss without taking a step (no gradients, nothing changes)."""
        with torch.no_grad(), self._own_store():
            loss = self.loss(self.model, self.guide, *args, **kwargs)
        if isinstance(loss, tuple):
            return _numbers(loss)
        return loss.item() if isinstance(loss, torch.Tensor) else float(loss)

    # -- state -----------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue bit for bit: params, optimizer, ELBO, step, RNG."""
        with self._own_store() as store:
            return {
                "format": _STATE_FORMAT,
                "step": self.step_count,
                "params": store.to_payload(),
                "optim": self.optim.get_state(),
                "elbo": self._elbo_state(),
                "rng": rng_state_payload(),
            }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`get_state` (the param store is merged, as ``load`` does).
        All or nothing: if any part is malformed, everything is put back as it was."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError("not an SVI state written by SVI.get_state / SVI.save")
        with self._own_store() as store:
            before = store.snapshot()
            optim_before, elbo_before = self.optim.get_state(), self._elbo_state()
            try:
                store.load_payload(state["params"], source="the SVI state")
                self.optim.set_state(state["optim"])
                self._set_elbo_state(state["elbo"])
                restore_rng_state_payload(state["rng"])
            except BaseException:
                # The store first: the optimizer finds its params by name in it.
                store.restore(before)
                self.optim.set_state(optim_before, exact=True)
                self._set_elbo_state(elbo_before)
                raise
        self.step_count = state["step"]

    def _elbo_state(self) -> dict[str, Any]:
        return {} if self.elbo is None else self.elbo.get_state()

    def _set_elbo_state(self, state: dict[str, Any]) -> None:
        if self.elbo is not None:
            self.elbo.set_state(state)

    def save(self, filename: str | os.PathLike[str]) -> None:
        """Write the state atomically; it loads with ``torch.load(..., weights_only=True)``.
        A failed save raises a :class:`~engine.errors.StateFileAccessError` naming ``filename``
        and keeps the file already there."""
        atomic_torch_save(self.get_state(), filename, what="the SVI state")

    def load(self, filename: str | os.PathLike[str], map_location: Any = None) -> None:
        """Restore the state saved by :meth:`save`.

        A file that cannot be read or used raises a :class:`~engine.errors.StateFileError`
        naming it and what is wrong; the params, the optimizer, the step count and the random
        generators then stay as they were.
        """
        path = os.fspath(filename)
        state = load_state_file(path, _STATE_FORMAT, map_location)
        entries = {"step": int, "params": dict, "optim": dict, "elbo": dict, "rng": dict}
        require_entries(state, entries, path, _STATE_FORMAT)
        with self._own_store() as store:
            before = store.get_state()["params"]
        try:
            # Tried first, and undone: set_state restores the generators last, after everything
            # else, so a malformed generator state must not reach it.
            with preserved_rng_state():
                restore_rng_state_payload(state["rng"])
        except Exception as err:
            raise content_error(
                path, _STATE_FORMAT, f"its random generators' state ('rng') is malformed ({err})"
            ) from err
        try:
            self.set_state(state)
        except Exception as err:
            # set_state put everything back; say which file did not fit, and how.
            detail = err.message if isinstance(err, PPLError) else f"{type(err).__name__}: {err}"
            raise content_error(
                path, _STATE_FORMAT, f"its contents do not fit ({detail.rstrip('.')})"
            ) from err
        warn_replaced_shapes(before, state["params"]["params"], path)


# -- objectives with several losses ------------------------------------------------------------
# ReweightedWakeSleep trains the model and the guide with two losses, and Pyro's SVI passes on
# both: a step's loss is then a tuple of numbers.


def _numbers(losses: tuple) -> tuple[float, ...]:
    """A tuple of losses (tensors or numbers) as numbers.

    >>> _numbers((torch.tensor(1.5), 2))
    (1.5, 2.0)
    """
    return tuple(loss.item() if isinstance(loss, torch.Tensor) else float(loss) for loss in losses)


def _finite(loss: float | tuple[float, ...]) -> bool:
    """Whether a step's loss (or every one of its losses) is finite.

    >>> _finite(1.0), _finite((1.0, math.inf))
    (True, False)
    """
    if isinstance(loss, tuple):
        return all(math.isfinite(part) for part in loss)
    return math.isfinite(loss)


def _event(
    step: int,
    loss: float | tuple[float, ...],
    params: dict[str, torch.Tensor] | None = None,
    info: dict[str, Any] | None = None,
) -> ProgressEvent:
    """The progress event of a step. Listeners (a loss curve) take one number: a tuple of losses
    reports its first, the model's, and all of them in ``info["losses"]``.

    >>> event = _event(3, (2.0, 5.0))
    >>> event.loss, event.info["losses"]
    (2.0, (2.0, 5.0))
    """
    info = {} if info is None else info
    if isinstance(loss, tuple):
        info = {**info, "losses": loss}
        loss = loss[0]
    return ProgressEvent("svi", step, loss, params, info)
