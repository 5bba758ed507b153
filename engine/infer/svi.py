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
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch

from engine.atomic_file import atomic_torch_save, safe_torch_load
from engine.distributions.validation import trusted_run
from engine.infer.elbo import ELBO
from engine.infer.nonfinite import NonFiniteError, first_nonfinite, nonfinite_gradients
from engine.infer.progress import Progress, ProgressEvent
from engine.infer.util import guide_and_model_traces
from engine.interrupts import deferred_interrupt
from engine.params import ParamStoreDict, get_param_store, param_store_scope
from engine.poutine.handlers import trace
from engine.rng import restore_rng_state_payload, rng_state_payload

_STATE_FORMAT = "pplkernel-svi-state-v1"


class SVI:
    """Stochastic variational inference with ``model``, ``guide``, an ``optim`` wrapper from
    :mod:`engine.optim` and an ELBO ``loss``.

    ``on_nonfinite="raise"`` (the default) stops at a NaN or infinite loss or gradient with a
    :class:`NonFiniteError` naming where it first appeared; ``"skip"`` drops such a step instead
    (nothing changes, the step is counted in ``skipped_steps`` and reported to listeners).

    ``param_store`` (not in Pyro) gives this SVI a param store of its own: its steps, losses,
    state and files use that store instead of the global one (see
    :func:`~engine.params.param_store_scope`), so two fits of one model keep apart.
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optim: Callable,
        loss: ELBO,
        on_nonfinite: str = "raise",
        param_store: ParamStoreDict | None = None,
        **kwargs: Any,
    ):
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
        if not isinstance(loss, ELBO):
            raise TypeError(f"loss must be an ELBO such as Trace_ELBO(), got {type(loss).__name__}")
        self.model = model
        self.guide = guide
        self.optim = optim
        self.loss = loss
        self.on_nonfinite = on_nonfinite
        self.param_store = param_store
        self.step_count = 0
        self.losses: list[float] = []
        self.skipped_steps: list[int] = []
        self.progress = Progress()

    @contextlib.contextmanager
    def _own_store(self) -> Iterator[ParamStoreDict]:
        """The store this SVI works in, made active for the block."""
        if self.param_store is None:
            yield get_param_store()
        else:
            with param_store_scope(self.param_store) as store:
                yield store

    # -- one step --------------------------------------------------------------------------

    def step(self, *args: Any, **kwargs: Any) -> float:
        """Take one gradient step; returns the loss (the negative ELBO estimate)."""
        params: list[torch.Tensor] = []
        with self._own_store() as store, contextlib.ExitStack() as whole_step:
            with store.transaction():
                try:
                    with trace(param_only=True) as param_capture:
                        loss = self.loss.loss_and_grads(self.model, self.guide, *args, **kwargs)
                    params = self._leaves(param_capture.trace)
                    problem = self._nonfinite_problem(loss, params, args, kwargs)
                    # Up to here a stop (KeyboardInterrupt) is undone by the transaction. From
                    # here the step is taken (or counted as skipped) whole: the optimizer's
                    # update, the count, the loss and the listeners, then the stop.
                    whole_step.enter_context(deferred_interrupt())
                    if problem is None:
                        self.optim(params)
                        self.loss.commit_step()
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
        if math.isfinite(loss) and grads_finite:
            return None
        store = get_param_store()
        names = {id(leaf): name for name, leaf in store.named_parameters()}
        bad_grads = nonfinite_gradients((names.get(id(p), "?"), p) for p in params)
        where = self._locate_nonfinite_site(args, kwargs)
        lines = [f"SVI step {self.step_count + 1}: the loss is {loss}."]
        if where:
            lines.append(f"First non-finite value: {where}.")
        if bad_grads:
            lines.append("Non-finite gradients: " + "; ".join(bad_grads) + ".")
        lines.append(
            "No parameter was changed. Common causes: a scale or rate that reaches 0 (constrain "
            "it with constraints.positive), log of 0, a learning rate too large, or data with "
            "NaNs. Pass on_nonfinite='skip' to SVI to skip such steps instead."
        )
        return "\n".join(lines)

    def _locate_nonfinite_site(self, args, kwargs) -> str | None:
        # Re-run with the same random state as the failed step would be wrong (it is gone);
        # a fresh draw usually meets the same problem, and is only used to point at a site.
        # Checks are off: an invalid argument must show up as the NaN it causes, not raise.
        with torch.no_grad(), trusted_run():
            guide_trace, model_trace = guide_and_model_traces(self.model, self.guide, args, kwargs)
            for tr in (guide_trace, model_trace):
                tr.compute_log_prob()
        return first_nonfinite([("guide", guide_trace), ("model", model_trace)])

    def _report(self, loss: float, params: list[torch.Tensor], problem: str | None) -> None:
        snapshot = None
        if self.progress.wants_params:
            snapshot = {name: value.detach().clone() for name, value in get_param_store().items()}
        info = {"skipped": True, "message": problem} if problem is not None else {}
        self.progress.emit(ProgressEvent("svi", self.step_count, loss, snapshot, info))

    # -- loops and evaluation --------------------------------------------------------------

    def run(
        self,
        num_steps: int,
        *args: Any,
        callback: Callable[[ProgressEvent], Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """Take ``num_steps`` steps; returns their losses. ``callback(event)`` is called after
        each step (it sees a :class:`ProgressEvent`); returning True stops the run early."""
        losses = []
        for _ in range(num_steps):
            losses.append(self.step(*args, **kwargs))
            if callback is not None:
                event = ProgressEvent("svi", self.step_count, losses[-1])
                if callback(event) is True:
                    break
        return losses

    def evaluate_loss(self, *args: Any, **kwargs: Any) -> float:
        """Estimate the loss without taking a step (no gradients, nothing changes)."""
        with torch.no_grad(), self._own_store():
            return self.loss.loss(self.model, self.guide, *args, **kwargs)

    # -- state -----------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue bit for bit: params, optimizer, ELBO, step, RNG."""
        with self._own_store() as store:
            return {
                "format": _STATE_FORMAT,
                "step": self.step_count,
                "params": store.to_payload(),
                "optim": self.optim.get_state(),
                "elbo": self.loss.get_state(),
                "rng": rng_state_payload(),
            }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`get_state` (the param store is merged, as ``load`` does).
        All or nothing: if any part is malformed, everything is put back as it was."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError("not an SVI state written by SVI.get_state / SVI.save")
        with self._own_store() as store:
            before = store.snapshot()
            optim_before, elbo_before = self.optim.get_state(), self.loss.get_state()
            try:
                store.load_payload(state["params"], source="the SVI state")
                self.optim.set_state(state["optim"])
                self.loss.set_state(state["elbo"])
                restore_rng_state_payload(state["rng"])
            except BaseException:
                # The store first: the optimizer finds its params by name in it.
                store.restore(before)
                self.optim.set_state(optim_before, exact=True)
                self.loss.set_state(elbo_before)
                raise
        self.step_count = state["step"]

    def save(self, filename: str | os.PathLike[str]) -> None:
        """Write the state atomically; it loads with ``torch.load(..., weights_only=True)``."""
        atomic_torch_save(self.get_state(), filename)

    def load(self, filename: str | os.PathLike[str], map_location: Any = None) -> None:
        """Restore the state saved by :meth:`save`."""
        self.set_state(safe_torch_load(filename, map_location, "an SVI state"))
