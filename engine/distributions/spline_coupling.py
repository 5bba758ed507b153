"""Spline coupling flows: Pyro's ``SplineCoupling`` and its ``spline_coupling`` helper.

The input vector is split at ``split_dim``: the first part goes through an element-wise spline
of its own (or stays as it is with ``identity=True``), the second through a spline whose
parameters a network computes from the first part of the input. Both directions are one pass,
and the Jacobian is block-triangular, so its log-determinant is the sum of the element-wise
log-slopes.

>>> import engine.distributions as dist
>>> flow = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0), [spline_coupling(2)])
>>> flow.log_prob(torch.zeros(5, 2)).shape  # one log-density per vector
torch.Size([5])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import constraints

from engine.distributions.spline import (
    ConditionalSpline,
    Spline,
    check_spline_options,
    spline_param_dims,
)
from engine.distributions.torch_transform import JointLogDetTransform, TransformModule
from engine.distributions.transforms._parametrized import default_hidden_dims
from engine.errors import ArgumentError, ShapeError


def check_split(owner: str, input_dim: int, split_dim: int) -> None:
    """Refuse a split that leaves one part empty, naming the transform.

    >>> check_split("spline_coupling", 1, 0)
    Traceback (most recent call last):
    ...
    engine.errors.ArgumentError: spline_coupling: split_dim=0 must lie strictly between 0 and ...
    """
    if not 0 < split_dim < input_dim:
        raise ArgumentError(
            f"{owner}: split_dim={split_dim} must lie strictly between 0 and "
            f"input_dim={input_dim}, so each part holds at least one dimension (a coupling "
            "needs input_dim >= 2)."
        )


class SplineCoupling(JointLogDetTransform, TransformModule):
    """``y[:d] = g(x[:d])`` and ``y[d:] = h(x[d:]; x[:d])`` with ``d = split_dim``: ``g`` a
    learnable element-wise spline (the identity if ``identity=True``), ``h`` a spline whose
    parameters ``hypernet(x[:d])`` returns.

    >>> from engine.nn import DenseNN
    >>> net = DenseNN(6, [100], param_dims=spline_param_dims(4, 8, "linear"))
    >>> transform = SplineCoupling(10, 6, net)
    >>> x = torch.randn(3, 10)
    >>> torch.allclose(transform.inv(transform(x)), x, atol=1e-4)
    True
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self,
        input_dim: int,
        split_dim: int,
        hypernet: nn.Module,
        count_bins: int = 8,
        bound: float = 3.0,
        order: str = "linear",
        identity: bool = False,
    ) -> None:
        check_spline_options("SplineCoupling", count_bins, bound, order)
        check_split("SplineCoupling", input_dim, split_dim)
        super().__init__(cache_size=1)
        self.input_dim = input_dim
        self.split_dim = split_dim
        self.identity = identity
        self.lower_spline = Spline(split_dim, count_bins, bound, order)
        self.upper_spline = ConditionalSpline(
            hypernet, input_dim - split_dim, count_bins, bound, order
        )

    def _split(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if value.shape[-1:] != (self.input_dim,):
            raise ShapeError(
                f"SplineCoupling(input_dim={self.input_dim}) got a value of shape "
                f"{tuple(value.shape)}: its last dim must be {self.input_dim}."
            )
        return value[..., : self.split_dim], value[..., self.split_dim :]

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = self._split(x)
        if self.identity:
            y1, log_det1 = x1, torch.zeros_like(x1)
        else:
            y1, log_det1 = self.lower_spline._forward_and_log_det(x1)
        y2, log_det2 = self.upper_spline.condition(x1)._forward_and_log_det(x2)
        return torch.cat([y1, y2], dim=-1), log_det1.sum(-1) + log_det2.sum(-1)

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1, y2 = self._split(y)
        if self.identity:
            x1, log_det1 = y1, torch.zeros_like(y1)
        else:
            x1, log_det1 = self.lower_spline._inverse_and_log_det(y1)
        # The second part's spline depends on the first part of x, recovered just above.
        x2, log_det2 = self.upper_spline.condition(x1)._inverse_and_log_det(y2)
        return torch.cat([x1, x2], dim=-1), log_det1.sum(-1) + log_det2.sum(-1)


def spline_coupling(
    input_dim: int,
    split_dim: int | None = None,
    hidden_dims: Sequence[int] | None = None,
    count_bins: int = 8,
    bound: float = 3.0,
) -> SplineCoupling:
    """Pyro's helper for :class:`SplineCoupling`: ``split_dim`` defaults to ``input_dim // 2``
    and the ``DenseNN`` hypernetwork's ``hidden_dims`` to ``[10 * input_dim, 10 * input_dim]``.

    >>> spline_coupling(4).split_dim
    2
    """
    # Imported here: engine.nn's modules import engine.distributions at their top.
    from engine.nn.dense_nn import DenseNN

    if split_dim is None:
        split_dim = input_dim // 2
    hidden_dims = default_hidden_dims(hidden_dims, input_dim)
    check_split("spline_coupling", input_dim, split_dim)
    net = DenseNN(
        split_dim,
        hidden_dims,
        param_dims=spline_param_dims(input_dim - split_dim, count_bins, "linear"),
    )
    return SplineCoupling(input_dim, split_dim, net, count_bins, bound)
