"""Multivariate normals whose draws carry lower-variance pathwise gradients.

Both classes are ordinary ``MultivariateNormal`` distributions (same density, same draws) over a
single mean vector ``loc`` (D,) and Cholesky factor ``scale_tril`` (D, D); what differs is the
gradient that ``rsample`` sends back to the parameters. Any velocity field ``v`` that moves the
draws as the parameter moves while keeping them distributed as the new normal (a solution of the
transport equation ``d q / d theta + div(q v) = 0``) gives an unbiased gradient
``d/dtheta E[f(z)] = E[grad f(z) . v(z)]``. The usual reparameterisation ``z = loc + L eps`` is one
such field; these classes use others:

* :class:`OMTMultivariateNormal` takes, for the Cholesky factor, the field of optimal transport:
  a linear map ``v(z) = S (z - loc)`` with ``S`` symmetric (a gradient field), fixed by the
  Lyapunov equation ``S Sigma + Sigma S = dSigma``. Solved in the eigenbasis of ``Sigma = L L^T``
  it costs O(D^3) per backward pass, and its gradients usually vary less.
* :class:`AVFMultivariateNormal` ("adaptive velocity fields") adds to the reparameterisation
  field infinitesimal rotations of the white noise ``eps``. Rotations leave ``N(0, I)`` unchanged,
  so they add zero on average (a control variate); how much of each rotation to add is learnt.
  The gradient of ``L[a, b]`` gains ``W[a, b] * Xi[a, b]`` with ``Xi = H - H^T``,
  ``H = sum over draws of (L^T g) eps^T`` (``g`` the incoming gradient of a draw) and
  ``W = B^T C`` from ``control_var = (B, C)`` of shape (2, K, D). ``control_var`` itself receives
  the gradient of half the squared norm of the Cholesky gradient estimate, an unbiased estimate
  of half the gradient of its variance, so an optimizer stepping ``control_var`` lowers the
  variance while ``loc`` and ``scale_tril`` learn.

The mean receives the plain pathwise gradient in both (translation is already optimal).

>>> import torch
>>> L = torch.tensor([[1.0, 0.0], [0.5, 2.0]], requires_grad=True)
>>> d = OMTMultivariateNormal(torch.zeros(2), L)
>>> d.rsample((1000,)).pow(2).sum(-1).mean().backward()  # E|z|^2 = trace(L L^T)
>>> bool(torch.triu(L.grad, 1).eq(0).all())  # only the lower triangle has a gradient
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable
from torch.distributions import constraints

from engine.distributions.torch_wrappers import MultivariateNormal
from engine.errors import ShapeError, fmt_shape


def _check_single(name: str, loc: torch.Tensor, scale_tril: torch.Tensor) -> None:
    """Both classes describe one vector: refuse batched parameters with the fix."""
    if loc.dim() != 1:
        raise ShapeError(
            f"{name}: loc must be 1-dimensional (one mean vector), got shape "
            f"{fmt_shape(loc.shape)}. "
            f"Fix: pass a single vector and batch with {name}(...).expand(batch_shape), or use "
            "MultivariateNormal for batched parameters."
        )
    if scale_tril.dim() != 2 or scale_tril.shape != (loc.shape[0], loc.shape[0]):
        raise ShapeError(
            f"{name}: scale_tril must be a {loc.shape[0]} x {loc.shape[0]} matrix to match loc of "
            f"shape {fmt_shape(loc.shape)}, got shape {fmt_shape(scale_tril.shape)}."
        )


def _white_noise(loc: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return torch.randn(shape, dtype=loc.dtype, device=loc.device)


def _flat_pairs(grad: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Incoming gradients and noise as (draws, D) matrices."""
    size = grad.shape[-1]
    return grad.reshape(-1, size), eps.reshape(-1, size)


class _OMTDraw(torch.autograd.Function):
    """``loc + L eps``, with the optimal-transport gradient for ``L`` (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, loc: torch.Tensor, scale_tril: torch.Tensor, shape: torch.Size) -> Any:
        eps = _white_noise(loc, shape)
        ctx.save_for_backward(scale_tril, eps)
        return loc + eps @ scale_tril.mT

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        scale_tril, eps = ctx.saved_tensors
        g, e = _flat_pairs(grad, eps)
        # The estimate for dSigma-direction is <S, sym(sum g x^T)> with x = z - loc = L eps; with
        # Sigma = U diag(lam) U^T the Lyapunov solution is S~_ij = dSigma~_ij / (lam_i + lam_j),
        # and dSigma = E_ab L^T + L E_ba turns <dSigma, K> into (2 K L)_ab for symmetric K.
        gx = g.mT @ (e @ scale_tril.mT)
        sym = 0.5 * (gx + gx.mT)
        basis, singular, _ = torch.linalg.svd(scale_tril)
        # Sigma's eigenvalues from L's singular values: better conditioned than eigh(L L^T).
        lam = singular.square()
        inner = basis.mT @ sym @ basis / (lam.unsqueeze(-1) + lam)
        kernel = basis @ inner @ basis.mT
        return g.sum(0), torch.tril(2 * kernel @ scale_tril), None


class _AVFDraw(torch.autograd.Function):
    """``loc + L eps``, with rotation control variates for ``L`` (see the module docstring)."""

    @staticmethod
    def forward(
        ctx: Any,
        loc: torch.Tensor,
        scale_tril: torch.Tensor,
        control_var: torch.Tensor,
        shape: torch.Size,
    ) -> Any:
        eps = _white_noise(loc, shape)
        ctx.save_for_backward(scale_tril, control_var, eps)
        return loc + eps @ scale_tril.mT

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        scale_tril, control_var, eps = ctx.saved_tensors
        g, e = _flat_pairs(grad, eps)
        left, right = control_var[0], control_var[1]
        reparam = g.mT @ e
        rotated = (g @ scale_tril).mT @ e
        xi = rotated - rotated.mT  # zero-mean: Stein's lemma makes E[H] = L^T Hess(f) L symmetric
        weights = left.mT @ right
        estimate = torch.tril(reparam + weights * xi)
        # d/dW of |estimate|^2 / 2 is estimate * xi (zero above the diagonal); W = B^T C.
        dweights = estimate * xi
        dcontrol = torch.stack([right @ dweights.mT, left @ dweights])
        return g.sum(0), estimate, dcontrol, None


class OMTMultivariateNormal(MultivariateNormal):
    """A multivariate normal over one vector whose ``rsample`` gives optimal-transport gradients
    (Pyro's ``OMTMultivariateNormal``).

    ``log_prob``, draws and moments are those of ``MultivariateNormal(loc, scale_tril=...)``; the
    gradient of a draw with respect to ``scale_tril`` comes from the optimal-transport velocity
    field (lower triangle only; O(D^3) per backward pass) and usually varies less than the
    reparameterisation gradient. ``loc`` must be one vector (D,) and ``scale_tril`` a (D, D)
    lower-triangular matrix; ``expand`` gives a batch of independent copies.

    >>> import torch
    >>> d = OMTMultivariateNormal(torch.zeros(3), torch.eye(3))
    >>> d.rsample((4,)).shape, d.event_shape
    (torch.Size([4, 3]), torch.Size([3]))
    """

    arg_constraints = {"loc": constraints.real_vector, "scale_tril": constraints.lower_triangular}

    def __init__(
        self, loc: torch.Tensor, scale_tril: torch.Tensor, validate_args: bool | None = None
    ) -> None:
        _check_single(type(self).__name__, loc, scale_tril)
        super().__init__(loc, scale_tril=scale_tril, validate_args=validate_args)

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        return _OMTDraw.apply(self.loc, self._unbroadcasted_scale_tril, shape)


class AVFMultivariateNormal(MultivariateNormal):
    """A multivariate normal over one vector whose ``rsample`` gradients carry a learnt control
    variate (Pyro's ``AVFMultivariateNormal``, "adaptive velocity fields").

    ``control_var`` of shape (2, K, D) (any K >= 1) weights infinitesimal rotations added to the
    gradient of ``scale_tril``; they leave its expectation unchanged. Backpropagating through a
    draw also gives ``control_var`` a gradient that, followed by an optimizer, lowers the variance
    of the ``scale_tril`` gradient (see the module docstring), so train it alongside the model::

        control_var = torch.full((2, 1, D), 0.1, requires_grad=True)
        cv_optim = torch.optim.Adam([control_var], lr=0.1)
        for step in range(1000):
            z = AVFMultivariateNormal(loc, scale_tril, control_var).rsample()
            cost(z).backward()
            cv_optim.step(); cv_optim.zero_grad()

    >>> import torch
    >>> cv = torch.full((2, 1, 3), 0.1, requires_grad=True)
    >>> d = AVFMultivariateNormal(torch.zeros(3), torch.eye(3).requires_grad_(), cv)
    >>> d.rsample((8,)).sin().sum().backward()
    >>> cv.grad.shape
    torch.Size([2, 1, 3])
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "scale_tril": constraints.lower_triangular,
        "control_var": constraints.real,
    }

    def __init__(
        self,
        loc: torch.Tensor,
        scale_tril: torch.Tensor,
        control_var: torch.Tensor,
        validate_args: bool | None = None,
    ) -> None:
        name = type(self).__name__
        _check_single(name, loc, scale_tril)
        if control_var.dim() != 3 or control_var.shape[0] != 2 or control_var.shape[2] != len(loc):
            raise ShapeError(
                f"{name}: control_var must have shape (2, K, D) with D = {len(loc)} the size of "
                f"loc and any K >= 1, got shape {fmt_shape(control_var.shape)}. "
                f"Fix: e.g. torch.full((2, 1, {len(loc)}), 0.1, requires_grad=True)."
            )
        self.control_var = control_var
        super().__init__(loc, scale_tril=scale_tril, validate_args=validate_args)

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        return _AVFDraw.apply(self.loc, self._unbroadcasted_scale_tril, self.control_var, shape)
