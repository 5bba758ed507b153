"""``broadcast``: expand each sample site's distribution to the shape its plates demand.

Plates broadcast automatically (each plate expands its own dim); this module holds the one function
that does it, :func:`broadcast_to_frames`, and the legacy ``broadcast`` handler that applies it to
every frame at once. A batch dim that is neither 1 nor the plate size is the classic shape bug,
so it is reported here with the site, the plate and both sizes.

>>> import engine, engine.distributions as dist
>>> with engine.plate("data", 4):
...     engine.sample("x", dist.Normal(0.0, 1.0)).shape
torch.Size([4])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.errors import ShapeError, describe_plates, fmt_shape, index_with_plate_hint
from engine.runtime import (
    ARBITRARY_SIZE,
    CondIndepStackFrame,
    Message,
    Messenger,
    is_subsample_site,
)


def broadcast_to_frames(msg: Message, frames: Sequence[CondIndepStackFrame]) -> None:
    """Expand ``msg["fn"]`` so that each vectorised frame's dim has the frame's size (for a plate
    without a size: the size of the observed value at that dim, if the site is observed)."""
    fn = msg["fn"]
    if not isinstance(fn, torch.distributions.Distribution):
        return
    batch_shape = list(fn.batch_shape)
    changed = False
    for frame in frames:
        if frame.dim is None:
            continue
        size = frame.size if frame.size != ARBITRARY_SIZE else _observed_size(msg, frame.dim)
        if size is None:
            continue
        if len(batch_shape) < -frame.dim:
            batch_shape = [1] * (-frame.dim - len(batch_shape)) + batch_shape
            changed = True
        current = batch_shape[frame.dim]
        if current == size:
            continue
        if current != 1:
            raise ShapeError(_mismatch_message(msg, frame, current))
        batch_shape[frame.dim] = size
        changed = True
    if changed:
        msg["fn"] = fn.expand(torch.Size(batch_shape))


def _observed_size(msg: Message, dim: int) -> int | None:
    """The size of an observed site's value at batch dim ``dim`` (None: latent, or no such dim)."""
    value, fn = msg["value"], msg["fn"]
    if not msg["is_observed"] or not isinstance(value, torch.Tensor):
        return None
    batch_rank = value.dim() - len(fn.event_shape)
    return value.shape[batch_rank + dim] if batch_rank >= -dim else None


def _mismatch_message(msg: Message, frame: CondIndepStackFrame, current: int) -> str:
    fn = msg["fn"]
    subsampled = frame.full_size is not None and frame.full_size != frame.size
    hint = f" {index_with_plate_hint(frame)}" if subsampled else ""
    return (
        f"Site '{msg['name']}' does not fit its plates: its {type(fn).__name__} has batch shape "
        f"{fmt_shape(fn.batch_shape)}, whose dim {frame.dim} has size {current}, but plate "
        f"'{frame.name}' puts size {frame.size} at dim {frame.dim}. Shape mismatch inside "
        f"plate '{frame.name}': a batch dim inside a plate must be 1 or the plate's size. "
        "Plates of this site: "
        f"{describe_plates(msg['cond_indep_stack'] or (frame,))}.{hint} Fix: give the parameters "
        f"size {frame.size} (or 1) at dim {frame.dim}; if that dim is part of one draw, declare it "
        "with `.to_event(...)`; if it is another independent axis, give it its own plate."
    )


class BroadcastMessenger(Messenger):
    """Expand every sample site to the shape of all its plates at once.

    >>> import engine, engine.distributions as dist
    >>> from engine.runtime import CondIndepStackFrame, new_message
    >>> msg = new_message("sample", "x", dist.Normal(0.0, 1.0))
    >>> msg["cond_indep_stack"] = (CondIndepStackFrame("data", -1, 3),)
    >>> BroadcastMessenger()._process_sample(msg)
    >>> msg["fn"].batch_shape
    torch.Size([3])
    """

    def _process_sample(self, msg: Message) -> None:
        if not is_subsample_site(msg):
            broadcast_to_frames(msg, msg["cond_indep_stack"])
