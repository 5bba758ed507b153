"""``SplitReparam``: one site as several independent pieces along an event dim.

A site whose event has, say, 5 entries along dim -1 becomes sites ``{name}_split_0``,
``{name}_split_1``, ... of the sizes given (``sections``), each with a flat (improper) prior of the
matching support, concatenated back; the original distribution's density of the joined value is
kept on the site, so the model's joint density is unchanged. Guides may then treat the pieces
differently (an ``AutoNormal`` for one, a ``AutoDelta`` for another).

The support functions ``same_support``, ``real_support`` and ``default_support`` choose the
pieces' supports.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("w", dist.Normal(torch.zeros(5), 1.0).to_event(1))
>>> from engine.infer.autoguide import InitMessenger, init_to_sample
>>> model = InitMessenger(init_to_sample)(poutine.reparam(model, {"w": SplitReparam([2, 3], -1)}))
>>> tr = poutine.trace(model).get_trace()  # flat pieces: their values come from initialization
>>> [tr.nodes[f"w_split_{i}"]["value"].shape for i in range(2)]
[torch.Size([2]), torch.Size([3])]
>>> tr.compute_log_prob()  # the joined value keeps the site's own density
>>> prior = dist.Normal(torch.zeros(5), 1.0).to_event(1)
>>> bool(torch.isclose(tr.nodes["w"]["log_prob_sum"], prior.log_prob(tr.nodes["w"]["value"])))
True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.distributions import constraints

import engine.distributions as dist
from engine.errors import ReparamError
from engine.infer.reparam.reparam import Reparam, ReparamMessage, ReparamResult, auxiliary_sample

SupportFn = Callable[..., constraints.Constraint]


def same_support(fn: torch.distributions.Distribution, *args: object) -> constraints.Constraint:
    """Each piece keeps the whole site's support (right for elementwise supports).

    >>> import engine.distributions as dist
    >>> same_support(dist.HalfNormal(1.0)) is dist.HalfNormal(1.0).support
    True
    """
    return fn.support


def real_support(fn: torch.distributions.Distribution, *args: object) -> constraints.Constraint:
    """Each piece is unconstrained, with the site's event dim.

    >>> import engine.distributions as dist
    >>> real_support(dist.Normal(torch.zeros(2), 1.0).to_event(1)).event_dim
    1
    """
    return constraints.independent(constraints.real, len(fn.event_shape))


def default_support(
    fn: torch.distributions.Distribution, piece: slice, dim: int
) -> constraints.Constraint:
    """The support of the entries ``piece`` along event dim ``dim``: a part of a ``cat`` or
    ``stack`` support when the site's support is built so, otherwise the site's own support.

    >>> from torch.distributions import constraints
    >>> import engine.distributions as dist
    >>> site = dist.ImproperUniform(constraints.cat([constraints.real, constraints.positive],
    ...                                             dim=-1, lengths=[2, 2]), (), (4,))
    >>> default_support(site, slice(2, 4), -1) is constraints.positive
    True
    """
    support, wrapped = fn.support, 0
    while isinstance(support, constraints.independent):
        wrapped += support.reinterpreted_batch_ndims
        support = support.base_constraint
    if isinstance(support, constraints.cat | constraints.stack) and support.dim in (
        dim,
        dim + len(fn.event_shape) + len(fn.batch_shape),
    ):
        if isinstance(support, constraints.stack):
            # One constraint per entry: the piece stacks its entries' constraints.
            support = constraints.stack(list(support.cseq[piece]), support.dim)
        else:
            parts, lengths, start = [], [], 0
            for part, length in zip(support.cseq, support.lengths, strict=True):
                overlap = min(piece.stop, start + length) - max(piece.start, start)
                if overlap > 0:
                    parts.append(part)
                    lengths.append(overlap)
                start += length
            support = parts[0] if len(parts) == 1 else constraints.cat(parts, support.dim, lengths)
    return constraints.independent(support, wrapped) if wrapped else support


class SplitReparam(Reparam):
    """Split a site into pieces of sizes ``sections`` along the negative event dim ``dim``.

    >>> try:
    ...     SplitReparam([2, 2], 0)
    ... except ReparamError as error:
    ...     print(str(error)[:57])
    SplitReparam(sections, dim): dim must be a negative event
    """

    def __init__(self, sections: list[int], dim: int, support_fn: SupportFn = default_support):
        if not isinstance(dim, int) or dim >= 0:
            raise ReparamError(
                "SplitReparam(sections, dim): dim must be a negative event dim such as -1; got "
                f"{dim!r}."
            )
        if not isinstance(sections, list | tuple) or not all(
            isinstance(size, int) and size > 0 for size in sections
        ):
            raise ReparamError(
                "SplitReparam(sections, dim): sections is a list of positive sizes; got "
                f"{sections!r}."
            )
        self.event_dim = -dim
        self.sections = list(sections)
        self.support_fn = support_fn

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw one flat-prior site per piece and keep the joint density on the site."""
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        event_dim = len(fn.event_shape)
        if event_dim < self.event_dim:
            raise ReparamError(
                f"Site '{name}': SplitReparam splits along event dim {-self.event_dim}, but the "
                f"site's event shape {tuple(fn.event_shape)} has only {event_dim} dim(s). Move "
                "the batch dim into the event with .to_event()."
            )
        if value is not None and value.size(-self.event_dim) != sum(self.sections):
            raise ReparamError(
                f"Site '{name}': SplitReparam's sections {self.sections} add up to "
                f"{sum(self.sections)}, but the site has {value.size(-self.event_dim)} entries "
                f"along dim {-self.event_dim}."
            )
        pieces = [None] * len(self.sections)
        if value is not None:
            pieces = list(value.split(self.sections, -self.event_dim))
        split_at = event_dim - self.event_dim
        left, right = fn.event_shape[:split_at], fn.event_shape[split_at + 1 :]
        start = 0
        for i, size in enumerate(self.sections):
            support = self.support_fn(fn, slice(start, start + size), -self.event_dim)
            flat = dist.ImproperUniform(support, fn.batch_shape, (*left, size, *right))
            pieces[i] = auxiliary_sample(f"{name}_split_{i}", flat, pieces[i], msg["is_observed"])
            start += size
        if value is None:
            value = torch.cat(_broadcast_except(pieces, -self.event_dim), dim=-self.event_dim)
        density = dist.Delta(value, event_dim=event_dim, log_density=fn.log_prob(value))
        return {"fn": density, "value": value, "is_observed": True}


def _broadcast_except(tensors: list[torch.Tensor], dim: int) -> list[torch.Tensor]:
    """Broadcast ``tensors`` to a common shape in every dim but ``dim`` (where sizes differ)."""
    shapes = [list(t.shape) for t in tensors]
    for shape in shapes:
        shape[dim] = 1
    common = list(torch.broadcast_shapes(*shapes))
    out = []
    for tensor in tensors:
        target = list(common)
        target[dim] = tensor.size(dim)
        out.append(tensor.expand(target))
    return out
