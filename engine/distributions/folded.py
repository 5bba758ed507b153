"""``FoldedDistribution``: the distribution of ``|x|`` for a univariate ``x``.

Taking the absolute value is not one-to-one, so the change-of-variables formula that
``TransformedDistribution`` applies to a bijection does not hold: a value ``y > 0`` comes from
both ``x = y`` and ``x = -y``, and its density is the sum of the base density at the two
(the absolute value's Jacobian is 1 on either side). Folding a distribution symmetric about
zero is the same as truncating it to the positive half and doubling its density there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.transforms import AbsTransform

from engine.distributions.torch_distribution import ExpandedDistribution, TorchDistribution
from engine.distributions.torch_wrappers import TransformedDistribution
from engine.errors import ShapeError, fmt_shape


class FoldedDistribution(TransformedDistribution):
    """``|x|`` for ``x`` drawn from the univariate ``base_dist``; reparameterised when the base is.

    >>> import engine.distributions as dist
    >>> folded = FoldedDistribution(dist.Normal(0.0, 2.0))
    >>> y = torch.tensor([0.5, 3.0])
    >>> torch.allclose(folded.log_prob(y), dist.HalfNormal(2.0).log_prob(y))
    True
    """

    arg_constraints: dict = {}
    support = constraints.positive

    def __init__(
        self, base_dist: torch.distributions.Distribution, validate_args: bool | None = None
    ):
        if base_dist.event_shape:
            raise ShapeError(
                "FoldedDistribution: the base distribution must be univariate (folding takes the "
                f"absolute value of one number), but its event_shape is "
                f"{fmt_shape(base_dist.event_shape)}. Fold a univariate distribution and use "
                ".to_event(...) on the result to make it multivariate."
            )
        super().__init__(base_dist, AbsTransform(), validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> TorchDistribution:
        try:
            new = self._get_checked_instance(FoldedDistribution, _instance)
        except NotImplementedError:
            if _instance is not None:
                raise
            # A user subclass with its own __init__ and no expand: the generic wrapper expands it.
            return ExpandedDistribution(self, batch_shape)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # Both preimages of y, x = y and x = -y, carry probability to y.
        return torch.logaddexp(self.base_dist.log_prob(value), self.base_dist.log_prob(-value))
