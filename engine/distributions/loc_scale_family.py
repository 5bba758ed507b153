"""The base of the engine's real-line families with a ``loc`` and a ``scale``.

``Logistic``, ``SkewLogistic``, ``SoftLaplace``, ``AsymmetricLaplace`` and
``SoftAsymmetricLaplace`` hold only broadcast parameter tensors, ``loc`` and ``scale`` first,
and score a value through ``z = (value - loc) / scale``. What they share is written here once:
the loc/scale constraints, ``expand``, the standardised value, and (for families with an inverse
CDF) reparameterised draws through it. Each family's ``__init__`` broadcasts and stores its own
parameters (two lines, kept inline: a shared helper there cost ~2 us per construction).

>>> from torch.distributions.utils import broadcast_all
>>> class Shifted(LocScaleFamily):
...     def __init__(self, loc, scale):
...         self.loc, self.scale = broadcast_all(loc, scale)
...         super().__init__(self.loc.shape)
>>> d = Shifted(torch.zeros(3), 2.0).expand([2, 3])
>>> d.batch_shape, d.scale.shape, d._standardized(torch.tensor(4.0))
(torch.Size([2, 3]), torch.Size([2, 3]), tensor([[2., 2., 2.],
        [2., 2., 2.]]))
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.param_expand import expand_params
from engine.distributions.torch_distribution import TorchDistribution

Param = torch.Tensor | Number


def uniform_open(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Uniform draws strictly inside (0, 1), so an inverse CDF never returns an infinity.

    >>> u = uniform_open(torch.Size([1000]), torch.zeros(()))
    >>> bool((u > 0).all() and (u < 1).all())
    True
    """
    finfo = torch.finfo(like.dtype)
    u = torch.rand(shape, dtype=like.dtype, device=like.device)
    return u.clamp(min=finfo.tiny, max=1 - finfo.eps)


class LocScaleFamily(TorchDistribution):
    """A real-line family whose parameters are the keys of ``arg_constraints``, ``loc`` and
    ``scale`` first, all broadcast to the batch shape (see the module docstring).
    A family with more parameters extends the base's ``arg_constraints``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True
    loc: torch.Tensor
    scale: torch.Tensor

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Any:
        return expand_params(self, type(self), batch_shape, _instance)

    def _standardized(self, value: torch.Tensor, validate: bool = True) -> torch.Tensor:
        """``(value - loc) / scale``, after validating ``value`` (when validation is on and
        ``validate`` is true)."""
        if validate and self._validate_args:
            self._validate_sample(value)
        return (value - self.loc) / self.scale


class InverseCdfSampling(LocScaleFamily):
    """A :class:`LocScaleFamily` that draws by its ``icdf`` at open-uniform points."""

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.icdf(uniform_open(self._extended_shape(sample_shape), self.loc))
