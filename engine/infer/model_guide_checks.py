"""Checks of a (model trace, guide trace) pair before their densities are combined into an ELBO.

A guide that misses a latent site, proposes one the model does not have, gives it another shape
or a support the model cannot score is the commonest silent failure of variational inference in
Pyro (it warns, or says nothing, and optimises the wrong objective). Here each is an error that
names every offending site.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     engine.sample("z", dist.Normal(0.0, 1.0))
>>> def guide():
...     pass
>>> guide_trace = poutine.trace(guide).get_trace()
>>> model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace()
>>> try:
...     check_model_guide_match(model_trace, guide_trace)
... except ModelGuideMismatchError as error:
...     print(str(error).splitlines()[1])  # doctest: +ELLIPSIS
  - site 'z' (no plate) is latent in the model but the guide never samples it. ...
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.unit import Unit
from engine.distributions.validation import structure_checks_enabled
from engine.errors import (
    ModelGuideMismatchError,
    PPLError,
    ShapeError,
    blame,
    describe_site,
    fmt_shape,
)
from engine.poutine.trace_struct import Trace, log_prob_shape
from engine.runtime import ARBITRARY_SIZE, Message, is_subsample_site

VINDEX_HINT = (
    "When an enumerated value indexes a tensor, use Vindex (engine.ops.indexing): "
    "`Vindex(probs)[..., z, :]` keeps the value's dims on the left where `probs[z]` does not."
)


def _latent_sites(trace: Trace) -> dict[str, Message]:
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not is_subsample_site(site)
    }


def _strip(constraint: constraints.Constraint) -> constraints.Constraint:
    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    return constraint


def _unwrap(fn: object) -> object:
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def _real_valued(constraint: constraints.Constraint) -> bool:
    return isinstance(_strip(constraint), type(constraints.real))


def _support_problem(name: str, model_site: Message, guide_site: Message) -> str | None:
    """A guide that draws from the whole real line for a site the model bounds: as in Pyro,
    it may go on (a warning naming the site) while its draws stay inside the model's support,
    and is an error once a draw falls outside, which the model cannot score."""
    model_fn, guide_fn = model_site["fn"], guide_site["fn"]
    if not all(isinstance(fn, torch.distributions.Distribution) for fn in (model_fn, guide_fn)):
        return None
    try:
        model_support, guide_support = model_fn.support, guide_fn.support
    except NotImplementedError:
        return None
    # A point mass (AutoDelta, a Delta guide) lives wherever its value was put; only a guide
    # that draws from the whole real line can propose values the model cannot score.
    if type(_unwrap(guide_fn)).__name__ == "Delta":
        return None
    if not _real_valued(guide_support) or _real_valued(model_support):
        return None
    wider = (
        f"site '{name}': the guide's {type(guide_fn).__name__} draws from the whole real line, "
        f"but the model's {type(model_fn).__name__} has support {_strip(model_support)}."
    )
    fix = (
        "Use a guide distribution with the same support (e.g. LogNormal or Gamma for a "
        "positive site, Beta for the unit interval), or an autoguide, which transforms."
    )
    value = guide_site["value"]
    with torch.no_grad():
        inside = model_support.check(value) if isinstance(value, torch.Tensor) else None
    if inside is None or bool(inside.all()):
        warnings.warn(f"{wider} It runs while its draws stay inside. {fix}", stacklevel=2)
        return None
    outside = value.detach().reshape(-1)[~inside.reshape(-1)][:3].tolist()
    return f"{wider} It drew {outside} (outside), which the model cannot score. {fix}"


def _shape_problem(name: str, model_site: Message, guide_site: Message) -> str | None:
    model_fn = model_site["fn"]
    value = guide_site["value"]
    if not isinstance(model_fn, torch.distributions.Distribution):
        return None
    if not isinstance(value, torch.Tensor):
        return None
    expected = model_fn.batch_shape + model_fn.event_shape
    if value.shape == expected:
        return None
    if guide_site["infer"].get("_sequential") and _broadcastable(value.shape, expected):
        return None  # one value for every element of its plates (sequential, not expanded)
    if guide_site["infer"].get("_enum_dims") or model_site["infer"].get("_enum_dims"):
        # Enumerated values broadcast: compare the dims right of the enumeration dims only.
        event_dims = len(model_fn.event_shape)
        value_shape = _right_of_enum_dims(value.shape, guide_site, event_dims)
        model_shape = _right_of_enum_dims(expected, model_site, event_dims)
        if _broadcastable(value_shape, model_shape):
            return None
    # Extra dims on the left of the model's shape are fine when they come from a plate both
    # sides share (the model's batch shape then has them too); anything else changes the ELBO.
    # Pyro's wording leads ("Model and guide ... disagree"), for code that matches on it.
    guide_fn = guide_site["fn"]
    guide_event = getattr(guide_fn, "event_shape", None)
    what = "shapes"
    if guide_event is not None and len(guide_event) != len(model_fn.event_shape):
        what = "event_dims"
    return (
        f"Model and guide {what} disagree at site '{name}': the guide draws a value of shape "
        f"{fmt_shape(value.shape)}, but the "
        f"model's {type(model_fn).__name__} at {describe_site(model_site)} has shape "
        f"{fmt_shape(expected)} (batch {fmt_shape(model_fn.batch_shape)}, event "
        f"{fmt_shape(model_fn.event_shape)}). Give the guide site the model's shape: the same "
        "plates, and `.to_event(n)` where the model has event dims."
    )


def _right_of_enum_dims(shape: torch.Size, site: Message, event_dims: int) -> torch.Size:
    enum_dims = site["infer"].get("_enum_dims", {})
    if not enum_dims:
        return shape
    kept_batch = -max(enum_dims) - 1  # the batch dims right of the rightmost enumeration dim
    batch = shape[: len(shape) - event_dims]
    return batch[max(len(batch) - kept_batch, 0) :] + shape[len(shape) - event_dims :]


def _broadcastable(a: torch.Size, b: torch.Size) -> bool:
    return all(x == y or 1 in (x, y) for x, y in zip(reversed(a), reversed(b), strict=False))


def _mismatches(model_trace: Trace, guide_trace: Trace, complete: bool = True) -> list[str]:
    """Every disagreement between the two traces; with ``complete=False`` the model stopped
    early, so a guide site it never reached is not (yet) a problem."""
    model_latent = _latent_sites(model_trace)
    guide_latent = _latent_sites(guide_trace)
    problems = []
    for name, site in model_latent.items():
        if name in guide_latent or site["infer"].get("_enumerate_dim") is not None:
            continue
        if site["infer"].get("enumerate"):
            problems.append(
                f"site {describe_site(site)} is marked for enumeration, but this ELBO does not "
                "enumerate, so it would be drawn from the prior with no guide. Use "
                "TraceEnum_ELBO (it sums the site out), or sample it in the guide."
            )
        else:
            problems.append(
                f"site {describe_site(site)} is latent in the model but the guide "
                "never samples it. Sample it in the guide (same name), or observe it in the "
                "model, or use an autoguide."
            )
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and _unspecified_guide_factor(site):
            problems.append(
                f"factor '{name}' in the guide is missing specification of has_rsample: the "
                "ELBO's gradient needs to know how it arose. Pass has_rsample=True if it comes "
                "from reparameterised sampling (its gradient flows through), or "
                f"has_rsample=False otherwise: pyro.factor('{name}', ..., has_rsample=False)."
            )
    for name, site in guide_latent.items():
        if site["infer"].get("is_auxiliary", False):
            continue  # a guide's own helper variable (a flat latent vector), not a model site
        model_site = model_trace.nodes.get(name)
        if model_site is None or model_site["type"] != "sample":
            if complete:
                problems.append(
                    f"site '{name}' is sampled by the guide but the model has no such sample "
                    "site. Check the spelling, or remove it from the guide."
                )
        elif model_site["is_observed"]:
            problems.append(
                f"site '{name}' is sampled by the guide but observed in the model. A guide "
                "proposes only latent sites: remove it from the guide."
            )
        else:
            for check in (_shape_problem, _support_problem):
                problem = check(name, model_site, site)
                if problem:
                    problems.append(problem)
    return problems


def _unspecified_guide_factor(site: Message) -> bool:
    """A ``factor`` in the guide that does not say ``has_rsample`` (Pyro refuses it too)."""
    fn = _unwrap(site["fn"])
    return isinstance(fn, Unit) and "has_rsample" not in fn.__dict__


def _mismatch_error(
    problems: list[str], model_trace: Trace, guide_trace: Trace
) -> ModelGuideMismatchError:
    listed = "\n".join(f"  - {problem}" for problem in problems)
    error = ModelGuideMismatchError(f"The model and the guide do not match:\n{listed}")
    error.attach_site_table(
        lambda: (
            f"{guide_trace.format_shapes(title='Guide')}\n\n"
            f"{model_trace.format_shapes(title='Model (replayed on the guide)')}"
        ),
        heading="Sites of the guide and of the model:",
    )
    return error


def check_model_guide_match(
    model_trace: Trace, guide_trace: Trace, max_plate_nesting: float = math.inf
) -> None:
    """Raise :class:`ModelGuideMismatchError` listing every site where model and guide disagree.

    Also Pyro's ``pyro.util.check_model_guide_match`` (which warns where this raises).
    ``max_plate_nesting`` is accepted for Pyro's signature: the plates' dims are read from the
    traces' sites instead.
    """
    problems = _mismatches(model_trace, guide_trace)
    if problems:
        raise _mismatch_error(problems, model_trace, guide_trace)


def check_guide_latents(guide_trace: Trace, model_trace: Trace, algorithm: str) -> None:
    """Raise :class:`ModelGuideMismatchError` when the guide samples a site that is not a latent
    site of the model: importance weights (``Importance``, ``CSIS``) would then be wrong. Unlike
    :func:`check_model_guide_match` a guide may leave model latents out: the model draws those
    from their prior, and their density cancels from the weight.

    >>> import engine, engine.distributions as dist
    >>> from engine import poutine
    >>> def model():
    ...     engine.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     engine.sample("w", dist.Normal(0.0, 1.0))
    >>> guide_trace = poutine.trace(guide).get_trace()
    >>> model_trace = poutine.trace(model).get_trace()
    >>> try:
    ...     check_guide_latents(guide_trace, model_trace, "Importance")
    ... except ModelGuideMismatchError as error:
    ...     print(str(error)[:55])
    Importance: the guide samples 'w' (the model has no suc
    """
    model_latents = set(model_trace.stochastic_nodes)
    problems = []
    for name, site in guide_trace.iter_stochastic_nodes():
        if name in model_latents or site["infer"].get("is_auxiliary", False):
            continue
        in_model = model_trace.nodes.get(name)
        observed = in_model is not None and in_model["is_observed"]
        problems.append(
            f"'{name}' (the model {'observes that' if observed else 'has no such'} site)"
        )
    if problems:
        error = ModelGuideMismatchError(
            f"{algorithm}: the guide samples {', '.join(problems)}. Each guide latent must be a "
            "latent site of the model, or the importance weights are wrong: rename or remove "
            "it, or mark a helper variable with infer={'is_auxiliary': True}."
        )
        blame(error, "guide")
        raise error


def run_guide(guide_run: Callable, args: tuple, kwargs: dict[str, Any]) -> Trace:
    """Run ``guide_run`` (a traced guide) and return its trace; an engine error it raises says
    it came from the guide."""
    try:  # not `with raised_in(...)`: a try costs nothing on the SVI hot path
        return guide_run.get_trace(*args, **kwargs)
    except PPLError as error:
        blame(error, "guide")
        raise


def run_model_on_guide(
    model_run: Callable, guide_trace: Trace, args: tuple, kwargs: dict[str, Any]
) -> Trace:
    """Run ``model_run`` (a traced model replayed on ``guide_trace``) and return its trace.

    When the model fails, a mismatch with the guide at a site it had already reached (a value
    of the wrong shape, or outside the model's support) is what went wrong first: that is the
    error raised, with the model's own error (say, a shape error at the next observed site,
    which the wrong value caused) as its cause.
    """
    try:
        return model_run.get_trace(*args, **kwargs)
    except Exception as error:
        if isinstance(error, PPLError):
            blame(error, "model")
        if not structure_checks_enabled():
            raise
        problems = _mismatches(model_run.trace, guide_trace, complete=False)
        if not problems:
            raise
        mismatch = _mismatch_error(problems, model_run.trace, guide_trace)
        mismatch.message += (
            "\nThe model then stopped with an error that follows from this, so fix the guide "
            f"first: {type(error).__name__}: {_first_line(error)}"
        )
        raise mismatch from error


def _first_line(error: BaseException) -> str:
    """What went wrong, without the fix (which would be the wrong fix here)."""
    text = (error.message if isinstance(error, PPLError) else str(error)).strip()
    first = text.splitlines()[0] if text else "(no message)"
    return first.split(" Fix: ")[0]


def check_site_shapes(trace: Trace) -> None:
    """Raise when a site's log-prob has a batch dim that no plate declares.

    Such a dim is summed silently into the ELBO (an (N,) log-prob outside any plate counts N
    terms as one independent batch the model never declared).
    """
    for site in trace.nodes.values():
        if site["type"] != "sample" or is_subsample_site(site):
            continue
        shape = log_prob_shape(site)
        if shape is None:
            continue
        declared = {frame.dim: frame for frame in site["cond_indep_stack"] if frame.vectorized}
        enumerated = site["infer"].get("_enum_dims", {})
        for dim in range(-1, -len(shape) - 1, -1):
            if dim in enumerated and dim not in declared:
                continue  # an enumeration dim: engine.infer.enum.factors checks its size
            size = shape[dim]
            frame = declared.get(dim)
            if frame is not None:
                if size not in (1, frame.size) and frame.size != ARBITRARY_SIZE:
                    raise ShapeError(
                        f"Site {describe_site(site)}: invalid log_prob shape "
                        f"{fmt_shape(shape)}, size {size} at dim {dim} where plate "
                        f"'{frame.name}' has size {frame.size}."
                    )
            elif size != 1:
                raise ShapeError(
                    f"Site {describe_site(site)}: its log-prob has shape {fmt_shape(shape)}; dim "
                    f"{dim} (size {size}) belongs to no plate (invalid log_prob shape): its "
                    f"{size} terms would be summed as if independent without saying so. Fix: "
                    "wrap the site in "
                    f"`with plate(name, {size}):` if the entries are independent draws, or use "
                    "`.to_event(1)` on the distribution if they form one joint draw."
                    + (f" {VINDEX_HINT}" if enumerated else "")
                )
