"""``scale`` multiplies the log densities of sample sites; ``mask`` zeroes some of them.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
>>> scaled = poutine.trace(poutine.scale(model, scale=2.0)).get_trace()
>>> round(scaled.log_prob_sum().item(), 4)
-1.8379
"""

from __future__ import annotations

import numbers

import torch

from engine.distributions.validation import is_validation_enabled
from engine.runtime import Message, Messenger


class ScaleMessenger(Messenger):
    """Multiply the log density of every sample site inside by ``scale`` (> 0).

    >>> ScaleMessenger(0.5).scale
    0.5
    """

    def __init__(self, scale: float | torch.Tensor):
        if isinstance(scale, numbers.Number):
            if not scale > 0:
                raise ValueError(f"scale must be positive, got {scale}")
        elif is_validation_enabled() and not bool((scale > 0).all()):
            raise ValueError(
                f"scale must be positive everywhere; the tensor of shape {tuple(scale.shape)} has "
                f"{int((scale <= 0).sum())} entries <= 0 (use mask to drop terms instead)"
            )
        self.scale = scale

    def _process_sample(self, msg: Message) -> None:
        msg["scale"] = self.scale * msg["scale"]


class MaskMessenger(Messenger):
    """Keep the log density only where ``mask`` is True (a bool or a bool tensor).

    >>> MaskMessenger(True).mask
    True
    """

    def __init__(self, mask: bool | torch.Tensor):
        if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor, got dtype {mask.dtype}")
        if not isinstance(mask, bool | torch.Tensor):
            raise TypeError(f"mask must be a bool or a bool tensor, got {type(mask).__name__}")
        self.mask = mask

    def _process_sample(self, msg: Message) -> None:
        msg["mask"] = combine_masks(msg["mask"], self.mask)

    # poutine.runtime.get_mask() asks what a sample site here would get.
    _process_get_mask = _process_sample


def combine_masks(first: bool | torch.Tensor | None, second: bool | torch.Tensor | None):
    """The logical and of two masks, where ``None`` means "no mask".

    >>> combine_masks(None, True), combine_masks(True, False)
    (True, False)
    """
    if first is None:
        return second
    if second is None:
        return first
    if isinstance(first, bool) and isinstance(second, bool):
        return first and second
    if first is True:
        return second
    if second is True:
        return first
    if first is False or second is False:
        return False
    return first & second
