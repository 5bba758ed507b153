"""The core every ELBO shares: draw the guide, replay it into the model, check, score.

A concrete ELBO only says how one (model trace, guide trace) pair becomes an ELBO estimate and a
surrogate whose gradient is an unbiased estimate of the ELBO's gradient
(:meth:`ELBO._particle_elbo`). This base class handles particles (a loop, or one vectorised run
under a plate left of the model's plates), the model/guide checks, and the three entry points
Pyro users call: ``loss``, ``differentiable_loss`` and ``loss_and_grads``.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import Trace_ELBO
>>> def model():
...     engine.sample("z", dist.Normal(0.0, 1.0))
>>> def guide():
...     engine.sample("z", dist.Normal(0.0, 1.0))
>>> Trace_ELBO().loss(model, guide) == 0  # q = p: the ELBO is exactly 0
True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

from engine.distributions.validation import structure_checks_enabled
from engine.infer.elbo_module import ELBOModule
from engine.infer.guide_then_model import guide_and_model_traces
from engine.infer.model_guide_checks import check_model_guide_match, check_site_shapes
from engine.infer.util import guess_max_plate_nesting, vectorize
from engine.poutine.trace_struct import Trace
from engine.rng import preserved_rng_state

PARTICLE_PLATE = "_num_particles_vectorized"


def checked_pair(model_trace: Trace, guide_trace: Trace) -> tuple[Trace, Trace]:
    """The pair, after the model/guide and site-shape checks (when structure checks are on)."""
    if structure_checks_enabled():
        check_model_guide_match(model_trace, guide_trace)
        check_site_shapes(model_trace)
        check_site_shapes(guide_trace)
    return model_trace, guide_trace


def warn_if_guide_enumerates(guide_trace: Trace, elbo_name: str) -> None:
    """Warn (as Pyro does) when an ELBO that does not enumerate meets guide sites marked for
    enumeration: they are drawn at random like any other site, which is seldom what was meant.

    >>> import warnings, engine, engine.distributions as dist
    >>> from engine import poutine
    >>> def guide():
    ...     engine.sample("k", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_guide_enumerates(poutine.trace(guide).get_trace(), "Trace_ELBO")
    >>> str(caught[0].message)[:53]
    "Trace_ELBO: the guide's sites ['k'] are configured fo"
    """
    marked = [
        name
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and site["infer"].get("enumerate")
    ]
    if marked:
        warnings.warn(
            f"{elbo_name}: the guide's sites {marked} are configured for enumeration, which "
            f"{elbo_name} does not do: they are drawn at random instead. Use TraceEnum_ELBO to "
            "enumerate them, or remove the marks (infer={'enumerate': ...}, config_enumerate).",
            UserWarning,
            stacklevel=3,
        )


def _mean(terms: list, num_particles: int) -> torch.Tensor:
    """The particles' mean of ``terms`` (one per trace pair: several for sequential branches).

    One particle costs no arithmetic (no ``0.0 +`` and no ``* 1.0``, each an op and an autograd
    node per step); several are summed in order and scaled, as written out.

    >>> t = torch.tensor(2.0)
    >>> _mean([t], 1) is t, _mean([t, torch.tensor(4.0)], 2).item()
    (True, 3.0)
    """
    if num_particles == 1 and len(terms) == 1:
        return torch.as_tensor(terms[0])
    total = 0.0
    for term in terms:
        total = total + term
    return torch.as_tensor(total) * (1.0 / num_particles)


class ELBO:
    """Base class of the ELBO estimators.

    ``num_particles`` independent draws are averaged; with ``vectorize_particles=True`` they are
    drawn in one run of guide and model under a plate of that size at dim
    ``-max_plate_nesting - 1`` (``max_plate_nesting`` is read off the model when not given).

    ``strict_enumeration_warning`` and ``ignore_jit_warnings`` are accepted because Pyro code
    passes them, and have nothing to switch here: an enumeration mistake is an error naming the
    site (never a warning to make strict), and the compiled ELBOs use ``torch.compile``, which
    has no tracer warnings to silence. ``retain_graph`` is passed to ``backward``.
    """

    def __init__(
        self,
        num_particles: int = 1,
        max_plate_nesting: int | float = math.inf,
        vectorize_particles: bool = False,
        strict_enumeration_warning: bool = True,
        ignore_jit_warnings: bool = False,
        retain_graph: bool | None = None,
    ):
        if num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {num_particles}")
        self.num_particles = num_particles
        self.max_plate_nesting = max_plate_nesting
        self.vectorize_particles = vectorize_particles
        self.strict_enumeration_warning = strict_enumeration_warning
        self.retain_graph = retain_graph

    def __call__(self, model: Callable, guide: Callable) -> ELBOModule:
        """This ELBO bound to ``model`` and ``guide``, as a module whose forward is the loss
        (see :mod:`engine.infer.elbo_module`)."""
        return ELBOModule(model, guide, self)

    def get_state(self) -> dict[str, Any]:
        """State carried from step to step (none here; baselines in TraceGraph_ELBO)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""

    def commit_step(self) -> None:
        """Called by SVI once a step's parameters were updated: state the ELBO carries from step
        to step (TraceGraph's baselines) moves on only then."""

    # -- traces ------------------------------------------------------------------------------

    def _guess_max_plate_nesting(self, model: Callable, guide: Callable, args, kwargs) -> None:
        if self.max_plate_nesting == math.inf:
            with preserved_rng_state():  # a resumed run must draw what the original drew
                self.max_plate_nesting = guess_max_plate_nesting(model, guide, args, kwargs)

    def _get_trace(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[Trace, Trace]:
        """One guide draw and the model replayed on it, checked (log-probs are computed by the
        ELBO, which may need only their total)."""
        guide_trace, model_trace = guide_and_model_traces(model, guide, args, kwargs)
        pair = checked_pair(model_trace, guide_trace)
        if structure_checks_enabled():
            warn_if_guide_enumerates(guide_trace, type(self).__name__)
        return pair

    def _get_traces(
        self,
        model: Callable,
        guide: Callable,
        args: tuple,
        kwargs: dict[str, Any],
    ) -> Iterator[tuple[Trace, Trace]]:
        """Every particle's trace pairs: :meth:`_particle_traces` run ``num_particles`` times, or
        once under the particle plate (:data:`PARTICLE_PLATE`) when particles are vectorised."""
        if self.vectorize_particles and self.num_particles > 1:
            self._guess_max_plate_nesting(model, guide, args, kwargs)
            nesting = int(self.max_plate_nesting)
            model = vectorize(model, self.num_particles, nesting, PARTICLE_PLATE)
            guide = vectorize(guide, self.num_particles, nesting, PARTICLE_PLATE)
            yield from self._particle_traces(model, guide, args, kwargs)
            return
        for _ in range(self.num_particles):
            yield from self._particle_traces(model, guide, args, kwargs)

    def _particle_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> Iterator[tuple[Trace, Trace]]:
        """One particle's trace pairs: here the one pair of :meth:`_get_trace`; an ELBO that runs
        the guide several times per particle (TraceEnum_ELBO's sequential branches) gives each
        run's pair, each scored by :meth:`_particle_elbo` before the next run."""
        yield self._get_trace(model, guide, args, kwargs)

    # -- the estimate ------------------------------------------------------------------------

    def _particle_elbo(
        self, model_trace: Trace, guide_trace: Trace
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ELBO estimate and its surrogate for one trace pair (a vectorised pair gives one
        value per particle, summed here)."""
        raise NotImplementedError(f"{type(self).__name__} must define _particle_elbo")

    def _elbo_and_surrogate(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        elbos, surrogates = [], []
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            particle_elbo, particle_surrogate = self._particle_elbo(model_trace, guide_trace)
            elbos.append(particle_elbo)
            surrogates.append(particle_surrogate)
        elbo = _mean(elbos, self.num_particles)
        # A surrogate that is the ELBO itself (every guide site reparameterised) stays the same
        # tensor, so loss_and_grads can skip the detach arithmetic.
        same = all(s is e for s, e in zip(surrogates, elbos, strict=True))
        return elbo, elbo if same else _mean(surrogates, self.num_particles)

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs):
        """The negative ELBO as a tensor whose gradient is the estimator's gradient."""
        elbo, surrogate = self._elbo_and_surrogate(model, guide, args, kwargs)
        return _loss_of(elbo, surrogate)

    def loss(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """The negative ELBO estimate, as a number (no gradients)."""
        with torch.no_grad():
            elbo, _ = self._elbo_and_surrogate(model, guide, args, kwargs)
        return -float(elbo)

    def loss_to_differentiate(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, bool]:
        """The negative ELBO as a tensor whose gradient is the estimator's, and whether it is
        ``-elbo`` itself: when every guide site is reparameterised, value and gradient are both
        the ELBO's, and one op (one autograd node) replaces the detach arithmetic of
        :func:`_loss_of` (five of each). :func:`reported_loss` turns its value into the number
        a step reports."""
        elbo, surrogate = self._elbo_and_surrogate(model, guide, args, kwargs)
        if surrogate is elbo and elbo.requires_grad:
            return -elbo, True
        return _loss_of(elbo, surrogate), False

    def loss_and_grads(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """Estimate the negative ELBO and accumulate its gradient into the parameters' ``.grad``."""
        loss, is_negative_elbo = self.loss_to_differentiate(model, guide, args, kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return reported_loss(loss.item(), is_negative_elbo)


def _loss_of(elbo: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """The negative ELBO as a tensor whose value is ``-elbo`` and whose gradient is that of
    ``-surrogate``.

    >>> e = torch.tensor(2.0, requires_grad=True)
    >>> loss = _loss_of(e.detach(), 3 * e)
    >>> loss.backward()
    >>> loss.item(), e.grad.item()
    (-2.0, -3.0)
    """
    loss = -elbo.detach()
    if not surrogate.requires_grad:
        return loss
    # The value is the ELBO estimate; the gradient comes from the surrogate.
    return loss + (-surrogate - (-surrogate).detach())


def reported_loss(value: float, is_negative_elbo: bool) -> float:
    """The number a step reports for the value of :meth:`ELBO.loss_to_differentiate`'s loss.
    :func:`_loss_of`'s value already is that number; ``-elbo`` itself is made to give the same:
    ``+ 0.0`` turns -0.0 into 0.0, as ``x + (y - y)`` does, and an infinite or NaN ELBO gives
    NaN (``inf - inf``), so both report a failed step alike.

    >>> reported_loss(-0.0, True), reported_loss(float("inf"), True)
    (0.0, nan)
    >>> reported_loss(float("inf"), False)
    inf
    """
    if not is_negative_elbo:
        return value
    return value + 0.0 if math.isfinite(value) else math.nan
