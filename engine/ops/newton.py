"""Pyro's ``pyro.ops.newton``: one Newton step on a batch of small independent variables,
optionally kept inside a trust region.

The loss is taken as a sum of independent terms, one per batch element of ``x`` (shape
``batch_shape + (d,)``), so the Hessian is block diagonal: one ``d x d`` block per element,
found by differentiating the gradient once per coordinate. The step is differentiable (built with
``create_graph=True``), so the end point of a Newton iteration can be differentiated with
respect to whatever the loss depends on.

>>> import torch
>>> x = torch.tensor([[0.0, 0.0]], requires_grad=True)
>>> target = torch.tensor([1.0, -2.0])
>>> loss = ((x - target) ** 2).sum() + (x[..., 0] * x[..., 1]).sum()  # a quadratic
>>> mode, cov = newton_step(loss, x)
>>> [round(v, 4) for v in mode.detach().flatten().tolist()]  # the exact minimum: one step
[2.6667, -3.3333]
"""

from __future__ import annotations

import torch


def _gradient_and_hessian(loss: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    (grad,) = torch.autograd.grad(loss, [x], create_graph=True)
    rows = []
    for i in range(x.shape[-1]):
        # Summing over the batch is exact: elements are independent, so each row of a block
        # only has contributions from its own element.
        (row,) = torch.autograd.grad(grad[..., i].sum(), [x], create_graph=True)
        rows.append(row)
    return grad, torch.stack(rows, dim=-2)


def newton_step(
    loss: torch.Tensor, x: torch.Tensor, trust_radius: float | torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Newton step from ``x`` (shape ``batch_shape + (d,)``) towards a minimum of the
    scalar ``loss``: returns ``(mode, cov)``, ``mode = x - H^{-1} grad`` and ``cov = H^{-1}``
    per batch element, so ``MultivariateNormal(mode, cov)`` is the Laplace approximation when
    ``loss`` is a negative log density.

    With ``trust_radius``, the Hessian is first raised (a multiple of the identity added) until
    its smallest eigenvalue is at least ``|grad| / trust_radius``: the step then has length at
    most ``trust_radius`` and heads downhill even where the loss is not convex.

    ``loss`` must be twice differentiable in ``x``; detach the result before feeding it back in
    an optimization loop.

    >>> x = torch.tensor([0.1], requires_grad=True)  # near the maximum of cos at 0: H < 0
    >>> mode, _ = newton_step(torch.cos(x).sum(), x, trust_radius=0.5)
    >>> step = mode.item() - 0.1
    >>> 0.0 < step <= 0.5  # downhill (plain Newton would climb to 0), at most the radius
    True
    """
    if loss.dim() != 0:
        raise ValueError(f"newton_step needs a scalar loss; got shape {tuple(loss.shape)}")
    if x.dim() < 1:
        raise ValueError("newton_step needs x shaped batch_shape + (d,), with d its last dim")
    grad, hessian = _gradient_and_hessian(loss, x)
    if trust_radius is not None:
        smallest = torch.linalg.eigvalsh(hessian)[..., 0]
        needed = grad.norm(dim=-1) / trust_radius
        # A tiny floor keeps a flat, gradient-free direction from making H singular.
        shift = (needed - smallest).clamp(min=0.0) + torch.finfo(x.dtype).eps
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        hessian = hessian + shift[..., None, None] * eye
    cov = torch.linalg.inv(hessian)
    mode = x - (cov @ grad.unsqueeze(-1)).squeeze(-1)
    return mode, cov


__all__ = ["newton_step"]
