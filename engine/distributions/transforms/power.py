"""``PositivePowerTransform``: ``y = sign(x) |x|^p`` for a positive exponent ``p``, an increasing
bijection of the whole real line (torch's ``PowerTransform`` allows any ``p`` but only positive
``x``).

>>> PositivePowerTransform(torch.tensor(3.0))(torch.tensor([-2.0, 0.5]))
tensor([-8.0000,  0.1250])
"""

from __future__ import annotations

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform
from torch.distributions.utils import broadcast_all

from engine.errors import ArgumentError


class PositivePowerTransform(Transform):
    """Raise ``|x|`` to ``exponent > 0`` keeping the sign of ``x``.

    >>> t = PositivePowerTransform(2.0)
    >>> t.inv(t(torch.tensor([-3.0, 0.0, 1.5])))
    tensor([-3.0000,  0.0000,  1.5000])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(
        self,
        exponent: torch.Tensor | float,
        *,
        cache_size: int = 0,
        validate_args: bool | None = None,
    ) -> None:
        super().__init__(cache_size=cache_size)
        (self.exponent,) = broadcast_all(exponent)
        if validate_args and not bool((self.exponent > 0).all()):
            raise ArgumentError(
                f"PositivePowerTransform needs a positive exponent, got {self.exponent}; "
                "use torch's PowerTransform for other exponents on positive values"
            )

    def with_cache(self, cache_size: int = 1) -> PositivePowerTransform:
        if self._cache_size == cache_size:
            return self
        return PositivePowerTransform(self.exponent, cache_size=cache_size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PositivePowerTransform):
            return False
        return bool(torch.equal(self.exponent, other.exponent))

    def __hash__(self) -> int:
        return hash((PositivePowerTransform, float(self.exponent.reshape(-1)[0])))

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x.sign() * x.abs().pow(self.exponent)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.sign() * y.abs().pow(self.exponent.reciprocal())

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # dy/dx = p |x|^(p-1) = p |y| / |x|.
        return self.exponent.log() + (y.abs() / x.abs()).log()

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        return torch.broadcast_shapes(shape, getattr(self.exponent, "shape", ()))

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        return torch.broadcast_shapes(shape, getattr(self.exponent, "shape", ()))
