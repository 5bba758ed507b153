"""Gradient clipping per parameter tensor, for many tensors at once.

Pyro clips each parameter's gradient on its own (each param has its own optimizer there), with
``torch.nn.utils.clip_grad_norm_`` and ``clip_grad_value_``. This does the same arithmetic for a
whole list of gradients with a handful of foreach calls, so the result matches Pyro's bit for bit.
"""

from __future__ import annotations

import torch


def clip_grads_(
    grads: list[torch.Tensor], clip_norm: float | None = None, clip_value: float | None = None
) -> None:
    """Clip every gradient in place: each tensor's 2-norm to ``clip_norm``, then each entry to
    ``[-clip_value, clip_value]``. ``None`` skips that kind of clipping.

    >>> grads = [torch.tensor([3.0, 4.0]), torch.tensor([0.5])]
    >>> clip_grads_(grads, clip_norm=1.0)
    >>> [[round(x, 4) for x in g.tolist()] for g in grads]
    [[0.6, 0.8], [0.5]]
    """
    if not grads:
        return
    if clip_norm is not None:
        # clip_grad_norm_ on one tensor takes the norm of the 1-vector of its norm; doing the same
        # (one row per tensor) keeps every rounding step identical to Pyro's per-param clipping.
        norms = torch.stack(torch._foreach_norm(grads)).unsqueeze(-1)
        total = torch.linalg.vector_norm(norms, dim=-1)
        coefficients = torch.clamp(clip_norm / (total + 1e-6), max=1.0)
        torch._foreach_mul_(grads, list(coefficients.unbind()))
    if clip_value is not None:
        torch._foreach_clamp_min_(grads, -clip_value)
        torch._foreach_clamp_max_(grads, clip_value)
