"""Sylvester flows (van den Berg et al., 2018): ``y = x + Q R tanh(R' Q^T x + b)`` with ``Q``
orthogonal (a product of Householder reflections) and ``R``, ``R'`` upper triangular. By
Sylvester's determinant identity the log-Jacobian needs only the triangles' diagonals; the
diagonals lie in ``(-1, 1)`` so the map stays invertible, but the inverse has no closed form.

>>> t = sylvester(3, count_transforms=2)
>>> x = torch.randn(5, 3)
>>> t.log_abs_det_jacobian(x, t(x)).shape
torch.Size([5])
"""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints

from engine.distributions.transforms._parametrized import no_inverse, uniform_parameter
from engine.distributions.transforms.householder import Householder, reflection_count


def _tanh_log_slope(h: torch.Tensor) -> torch.Tensor:
    a = h.abs()
    return 2.0 * (math.log(2.0) - a - torch.log1p(torch.exp(-2.0 * a)))


class Sylvester(Householder):
    """A learnable Sylvester flow on ``input_dim`` entries whose ``Q`` is the product of
    ``count_transforms`` Householder reflections (the parameters ``u_unnormed`` it shares
    with :class:`Householder`).

    >>> sorted(name for name, _ in Sylvester(2).named_parameters())
    ['R_dense', 'R_diag', 'S_dense', 'S_diag', 'b', 'u_unnormed']
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    volume_preserving = False

    def __init__(self, input_dim: int, count_transforms: int = 1) -> None:
        super().__init__(input_dim, count_transforms)
        scale = 1.0 / input_dim**0.5
        self.R_dense = uniform_parameter(input_dim, input_dim, scale=scale)
        self.S_dense = uniform_parameter(input_dim, input_dim, scale=scale)
        self.R_diag = uniform_parameter(input_dim, scale=scale)
        self.S_diag = uniform_parameter(input_dim, scale=scale)
        self.b = uniform_parameter(input_dim, scale=scale)

    def _triangles(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        r_diag, s_diag = torch.tanh(self.R_diag), torch.tanh(self.S_diag)
        rows = torch.arange(self.input_dim, device=r_diag.device)
        strictly_upper = rows[:, None] < rows[None, :]  # a mask: cheaper than triu under load
        r = self.R_dense * strictly_upper + torch.diag_embed(r_diag)
        s = self.S_dense * strictly_upper + torch.diag_embed(s_diag)
        return r, s, r_diag, s_diag

    def _q(self, like: torch.Tensor) -> torch.Tensor:
        # Q's columns: the reflections applied to the unit vectors (rows of the identity).
        eye = torch.eye(self.input_dim, dtype=like.dtype, device=like.device)
        return Householder._call(self, eye).transpose(-1, -2)

    def _hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = self._q(x)
        r, s, _, _ = self._triangles()
        pre = x @ q @ s.transpose(-1, -2) + self.b  # R' Q^T x + b, as rows
        return q, r, pre

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        q, r, pre = self._hidden(x)
        return x + torch.tanh(pre) @ r.transpose(-1, -2) @ q.transpose(-1, -2)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise no_inverse("Sylvester")

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # det(I + Q R diag(h') R' Q^T) = det(I + diag(h') R' R): triangular, so the product
        # of 1 + h'_i r_ii r'_ii, each positive as |r_ii r'_ii| < 1 and 0 < h' <= 1.
        _, _, pre = self._hidden(x)
        _, _, r_diag, s_diag = self._triangles()
        diagonal = 1 + _tanh_log_slope(pre).exp() * r_diag * s_diag
        return diagonal.log().sum(-1)


def sylvester(input_dim: int, count_transforms: int | None = None) -> Sylvester:
    """A :class:`Sylvester` flow; ``count_transforms`` defaults to ``input_dim // 2 + 1``
    reflections.

    >>> sylvester(4).u_unnormed.shape
    torch.Size([3, 4])
    """
    return Sylvester(input_dim, reflection_count(input_dim, count_transforms))
