"""``ClippedAdam``: Adam with gradient clipping and learning-rate decay, as Pyro defines it.

Pyro's ClippedAdam, step for step: each gradient entry is clamped to ``[-clip_norm, clip_norm]``
(Pyro's name says "norm", its code clamps entries; Pyro code must give the same numbers here), the
learning rate is multiplied by ``lrd`` at the start of every step, and ``centered_variance``
tracks the variance of the gradient around its running mean. Unlike Pyro's, one step updates a
whole param group with a few foreach calls instead of a Python loop over the params.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer


def _step_size(lr: float, beta1: float, beta2: float, step: int) -> float:
    # The same operations in the same order as Pyro's, so the rounding is the same too.
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    return lr * math.sqrt(bias_correction2) / bias_correction1


class ClippedAdam(Optimizer):
    """Adam whose gradient entries are clamped to ``[-clip_norm, clip_norm]`` and whose learning
    rate decays by the factor ``lrd`` every step (Pyro's ``pyro.optim.clipped_adam.ClippedAdam``).

    The clamp writes into ``p.grad``, as Pyro's does. A group's learning rate decays on each step
    that updates at least one of its params.

    >>> p = torch.zeros(2, requires_grad=True)
    >>> opt = ClippedAdam([p], lr=0.1, clip_norm=1.0, lrd=0.5)
    >>> p.grad = torch.tensor([100.0, -0.5])
    >>> _ = opt.step()
    >>> p.grad.tolist(), opt.param_groups[0]["lr"]
    ([1.0, -0.5], 0.05)
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        clip_norm: float = 10.0,
        lrd: float = 1.0,
        centered_variance: bool = False,
    ):
        if lr < 0.0:
            raise ValueError(f"ClippedAdam: invalid learning rate lr={lr}; it must be >= 0")
        if eps < 0.0:
            raise ValueError(f"ClippedAdam: invalid eps={eps}; it must be >= 0")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"ClippedAdam: invalid betas={betas}; each must lie in [0, 1)")
        if clip_norm <= 0.0:
            raise ValueError(f"ClippedAdam: invalid clip_norm={clip_norm}; it must be > 0")
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "clip_norm": clip_norm,
            "lrd": lrd,
            "centered_variance": centered_variance,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every param that has a gradient; returns ``closure()`` when one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update_group(group, params)
        return loss

    def _update_group(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        group["lr"] *= group["lrd"]
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in params]
        torch._foreach_clamp_min_(grads, -group["clip_norm"])
        torch._foreach_clamp_max_(grads, group["clip_norm"])

        states = [self.state[p] for p in params]
        for p, state in zip(params, states, strict=True):
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
        exp_avgs = [state["exp_avg"] for state in states]
        exp_avg_sqs = [state["exp_avg_sq"] for state in states]

        if group["weight_decay"] != 0:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        torch._foreach_mul_(exp_avgs, beta1)
        torch._foreach_add_(exp_avgs, grads, alpha=1 - beta1)
        deviations = torch._foreach_sub(grads, exp_avgs) if group["centered_variance"] else grads
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, deviations, deviations, value=1 - beta2)
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_add_(denominators, group["eps"])

        # Params admitted at different times have different step counts; most share one.
        sizes: dict[int, float] = {}
        for state in states:
            if state["step"] not in sizes:
                sizes[state["step"]] = -_step_size(group["lr"], beta1, beta2, state["step"])
        torch._foreach_addcdiv_(
            params, exp_avgs, denominators, [sizes[state["step"]] for state in states]
        )
