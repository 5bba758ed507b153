"""The bijection from real vectors onto increasing ones (``constraints.ordered_vector``).

>>> OrderedTransform()(torch.tensor([0.0, 0.0, 0.0]))
tensor([0., 1., 2.])
"""

from __future__ import annotations

import torch
from torch.distributions.transforms import Transform

from engine.distributions import constraints
from engine.distributions.torch_transform import ParameterFree


class OrderedTransform(ParameterFree, Transform):
    """Map a real vector to an increasing one: ``y[0] = x[0]``, ``y[i] = y[i-1] + exp(x[i])``.

    >>> OrderedTransform()(torch.tensor([1.0, 0.0, 0.0]))
    tensor([1., 2., 3.])
    """

    domain = constraints.real_vector
    codomain = constraints.ordered_vector
    bijective = True
    sign = +1

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        steps = torch.cat([x[..., :1], x[..., 1:].exp()], dim=-1)
        return steps.cumsum(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([y[..., :1], (y[..., 1:] - y[..., :-1]).log()], dim=-1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The Jacobian is lower-triangular with diagonal (1, exp(x[1]), exp(x[2]), ...).
        return x[..., 1:].sum(-1)
