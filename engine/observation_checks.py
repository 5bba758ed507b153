"""The shape check of an observed site's value against its distribution, once per observed site.

An observation that broadcasts *crosswise* against the distribution's batch shape (an (N, 1) obs
against an (N,) batch gives an N x N log-prob: every datum scored by every entry) is silent in
torch and costs Pyro users hours. Here it is an error that names the site, its plates and the
shapes, and says how to fix it. The check is pure shape arithmetic, so it stays on even with
validation off, as does the refusal of a complex observation. A value smaller than the
distribution is scored as torch broadcasts it (a scalar observed for every element of a vector
event, or of a plate), and a value with more data than the distribution has entries is scored
as independent draws from it (``Normal(mu, 1)`` observing 50 points without a plate, as Pyro
scores it); only both at once are refused. An observation whose data dim was moved into the event by
``.to_event`` while a plate claims it as well is scored once per plate entry, so it is refused
too. An observation computed from enumerated values may vary along their enumeration dims,
as they do. (Values outside the support are caught by torch's own check when the density is scored;
the trace adds the site's name to it.)

>>> import torch, engine, engine.distributions as dist
>>> with engine.plate("data", 3):
...     engine.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(3, 1))
Traceback (most recent call last):
...
engine.errors.ShapeError: Observed site 'y' ...
"""

from __future__ import annotations

import torch

from engine.distributions.explain import complex_value_problem
from engine.errors import (
    ArgumentError,
    ShapeError,
    describe_site,
    fmt_shape,
    index_with_plate_hint,
)
from engine.poutine.shape_table import distribution_name
from engine.runtime import Message


def check_observed_site(msg: Message) -> None:
    """Raise if an observed site's value does not fit, or would broadcast up, its distribution,
    or is complex (torch would score it and give a complex log-density)."""
    fn, value = msg["fn"], msg["value"]
    if not isinstance(fn, torch.distributions.Distribution) or not isinstance(value, torch.Tensor):
        return
    if value.is_complex():
        raise ArgumentError(f"{_where(msg)}: {complex_value_problem(value)}")
    if value.shape != fn.batch_shape + fn.event_shape:
        _check_shape(msg, fn, value)
        # A deterministic site is recorded, never scored: its value is one whole event.
        if not msg["infer"].get("_deterministic"):
            _check_plate_dims_in_event(msg, fn, value)


def _where(msg: Message) -> str:
    return f"Observed site {describe_site(msg)}"


def _check_shape(msg: Message, fn: torch.distributions.Distribution, value: torch.Tensor) -> None:
    batch_shape, event_shape = fn.batch_shape, fn.event_shape
    event_dim = len(event_shape)
    shapes = _shapes(fn, value)
    # As for batch dims, a value may broadcast up to the event (a scalar observed for every
    # element of a vector event, as torch and Pyro score it); it may never widen the event.
    if not _broadcasts_to(value.shape[max(value.dim() - event_dim, 0) :], event_shape):
        raise ShapeError(
            f"{_where(msg)}: {shapes}. The rightmost {event_dim} dim(s) of the value must equal "
            "(or broadcast to) the event shape. Fix: reshape the data, or change the "
            "distribution's event shape (`.to_event(n)` moves batch dims into the event)."
        )
    value_batch = _value_batch_shape(value, event_dim)
    try:
        joint = torch.broadcast_shapes(value_batch, batch_shape)
    except RuntimeError:
        raise ShapeError(
            f"{_where(msg)}: {shapes}; the value's batch part {fmt_shape(value_batch)} does not "
            f"broadcast with {fmt_shape(batch_shape)}. {_mismatch_fix(msg, value_batch)}"
        ) from None
    if _crosswise(value_batch, batch_shape, joint, _inference_dims(msg)):
        raise ShapeError(
            f"{_where(msg)}: {shapes}. Broadcasting them would silently give a log-prob of "
            f"shape {fmt_shape(joint)} instead of {fmt_shape(batch_shape)}, counting the data "
            f"the wrong number of times. {_shape_fix(value_batch, batch_shape)}"
        )


def _crosswise(
    value_batch: torch.Size,
    batch_shape: torch.Size,
    joint: torch.Size,
    inference_dims: frozenset[int] = frozenset(),
) -> bool:
    """Whether broadcasting copies the data across the distribution's entries *and* the
    distribution across the data: some dim widens the value (one datum scored by many entries)
    while another widens the distribution (one entry scoring many data), so every datum meets
    every entry. Either widening alone scores each datum once: extra data dims on a
    distribution of fewer batch dims are independent draws from it, as Pyro scores them.
    ``inference_dims`` (enumeration, vectorised particles or chains) widen either side freely:
    an observation computed from enumerated values holds one value per combination of theirs,
    and every particle scores all the data.

    >>> _crosswise(torch.Size([4, 1]), torch.Size([4]), torch.Size([4, 4]))
    True
    >>> _crosswise(torch.Size([50, 1]), torch.Size([1]), torch.Size([50, 1]))
    False
    """
    value_padded = (1,) * (len(joint) - len(value_batch)) + tuple(value_batch)
    batch_padded = (1,) * (len(joint) - len(batch_shape)) + tuple(batch_shape)
    widened = range(-len(joint), 0)
    widens_value = any(
        value_padded[dim] != joint[dim] for dim in widened if dim not in inference_dims
    )
    widens_distribution = any(
        batch_padded[dim] != joint[dim] for dim in widened if dim not in inference_dims
    )
    return widens_value and widens_distribution


def _inference_dims(msg: Message) -> frozenset[int]:
    """The dims an inference added: enumeration dims, and those of plates whose names start
    with ``_`` (the ELBOs' vectorised particles, MCMC's chains, Predictive's samples)."""
    internal = {
        frame.dim
        for frame in msg["cond_indep_stack"]
        if frame.vectorized and frame.name.startswith("_")
    }
    return frozenset(internal | set(msg["infer"].get("_enum_dims") or {}))


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def _value_batch_shape(value: torch.Tensor, event_dim: int) -> torch.Size:
    """The value's dims left of the event (none when the value is smaller than one event)."""
    return value.shape[: max(value.dim() - event_dim, 0)]


def _shapes(fn: torch.distributions.Distribution, value: torch.Tensor) -> str:
    return (
        f"the observed value has shape {fmt_shape(value.shape)}, the {distribution_name(fn)} has "
        f"batch shape {fmt_shape(fn.batch_shape)} and event shape {fmt_shape(fn.event_shape)}"
    )


def _check_plate_dims_in_event(
    msg: Message, fn: torch.distributions.Distribution, value: torch.Tensor
) -> None:
    """Refuse a value that has no batch dim of its own for a plate whose size its event part
    has at that same dim: the plate's data dim was made an event dim (``.to_event`` on a
    distribution the plate had already batched), so every plate entry scores all the data.

    A value broadcast along a plate otherwise (the ELBO's vectorised particles, Predictive's
    samples: plates whose names start with ``_``) is left alone.
    """
    value_batch = _value_batch_shape(value, len(fn.event_shape))
    for frame in msg["cond_indep_stack"]:
        if not frame.vectorized or frame.name.startswith("_") or frame.size in (None, 1):
            continue
        dim = frame.dim
        own = value_batch[dim] if len(value_batch) >= -dim else 1
        if own != 1 or len(fn.event_shape) < -dim or fn.event_shape[dim] != frame.size:
            continue
        raise ShapeError(
            f"{_where(msg)}: {_shapes(fn, value)}. The value has no batch dim {dim} of its own, "
            f"so each of the {frame.size} entries of plate '{frame.name}' scores the whole value: "
            f"the data is counted {frame.size} times. The event shape has the plate's size at "
            f"dim {dim}: the plate's data dim was made an event dim as well. Fix: drop the "
            "`.to_event(...)` (or lower its count) so that the plate's dim stays a batch dim; "
            f"if the value is one joint draw, take the site out of plate '{frame.name}'."
        )


def _mismatch_fix(msg: Message, value_batch: torch.Size) -> str:
    for frame in msg["cond_indep_stack"]:
        if not frame.vectorized or frame.full_size in (None, frame.size):
            continue
        if len(value_batch) >= -frame.dim and value_batch[frame.dim] == frame.full_size:
            return f"The data still has all rows. {index_with_plate_hint(frame)}"
    return "Fix: index or reshape the data so that it matches the batch shape."


def _shape_fix(value_batch: torch.Size, batch_shape: torch.Size) -> str:
    squeezed = tuple(d for d in value_batch if d != 1)
    if squeezed == tuple(d for d in batch_shape if d != 1) and len(value_batch) > len(batch_shape):
        return (
            f"Fix: drop the extra size-1 dim(s) of the data, e.g. "
            f"`obs.reshape{fmt_shape(batch_shape)}` (often `obs.squeeze(-1)`)."
        )
    return (
        "Fix: make the data's batch dims match the distribution's: put the site in a plate for "
        "each extra data dim (`with plate('data', N):`), or move trailing data dims into the "
        "event with `.to_event(n)`, or reshape the data."
    )
