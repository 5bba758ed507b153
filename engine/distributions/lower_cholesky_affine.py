"""``LowerCholeskyAffine``: the map ``x -> loc + L x`` with ``L`` lower triangular and a positive
diagonal, the transform that turns standard normal noise into a ``MultivariateNormal(loc,
scale_tril=L)`` draw. Its log|Jacobian| is the sum of ``log L_ii``.

>>> import torch
>>> L = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
>>> t = LowerCholeskyAffine(torch.tensor([1.0, -1.0]), scale_tril=L)
>>> log_det = t.log_abs_det_jacobian(torch.zeros(2), t(torch.zeros(2)))
>>> t(torch.tensor([1.0, 1.0])), round(float(log_det), 5) == round(math.log(2 * 3), 5)
(tensor([3., 3.]), True)
"""

from __future__ import annotations

import math  # noqa: F401  (the doctests use it)

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform


class LowerCholeskyAffine(Transform):
    """``y = loc + scale_tril @ x`` over the last dim (event dim 1).

    >>> import torch
    >>> t = LowerCholeskyAffine(torch.zeros(3), scale_tril=torch.eye(3) * 2)
    >>> t.inv(torch.tensor([2.0, 4.0, 6.0]))
    tensor([1., 2., 3.])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, loc: torch.Tensor, scale_tril: torch.Tensor, cache_size: int = 0):
        if scale_tril.dim() < 2 or scale_tril.shape[-1] != scale_tril.shape[-2]:
            raise ValueError(
                "LowerCholeskyAffine: scale_tril must be a square matrix (batches allowed), got "
                f"shape {tuple(scale_tril.shape)}"
            )
        if loc.shape[-1:] != scale_tril.shape[-1:]:
            raise ValueError(
                f"LowerCholeskyAffine: loc of shape {tuple(loc.shape)} does not match scale_tril "
                f"of shape {tuple(scale_tril.shape)} in its last dim"
            )
        self.loc = loc
        self.scale_tril = scale_tril
        super().__init__(cache_size=cache_size)

    def with_cache(self, cache_size: int = 1) -> LowerCholeskyAffine:
        if self._cache_size == cache_size:
            return self
        return LowerCholeskyAffine(self.loc, self.scale_tril, cache_size=cache_size)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self.loc + (self.scale_tril @ x.unsqueeze(-1)).squeeze(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        centred = (y - self.loc).unsqueeze(-1)
        tril = self.scale_tril.expand(centred.shape[:-2] + self.scale_tril.shape[-2:])
        return torch.linalg.solve_triangular(tril, centred, upper=False).squeeze(-1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
        return log_det.expand(x.shape[:-1])
