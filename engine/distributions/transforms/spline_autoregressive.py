"""Autoregressive spline flows (Durkan et al., 2019): each ``y_i`` is a monotone rational spline
of ``x_i`` whose bins, heights and slopes an autoregressive network computes from
``x_0 .. x_{i-1}``; plain (``SplineAutoregressive``/``spline_autoregressive``) and conditional
(``ConditionalSplineAutoregressive``/``conditional_spline_autoregressive``).

Drawing is one network call; the inverse solves for one variable at a time in the network's
order (``input_dim`` calls), as for ``AffineAutoregressive``.

>>> t = spline_autoregressive(3, count_bins=4)
>>> x = torch.randn(5, 3)
>>> torch.allclose(t.inv(t(x)), x, atol=1e-4)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from engine.distributions.affine_autoregressive import AutoregressiveFlow, ContextAutoregressive
from engine.distributions.rational_spline import rational_spline
from engine.distributions.spline import (
    check_spline_options,
    network_spline_params,
    spline_param_dims,
)
from engine.distributions.torch_transform import JointLogDetTransform, TransformModule
from engine.distributions.transforms._parametrized import default_hidden_dims
from engine.errors import ArgumentError


class SplineAutoregressive(AutoregressiveFlow, JointLogDetTransform, TransformModule):
    """An autoregressive spline flow over ``input_dim`` entries: ``autoregressive_nn(x)``
    returns the unnormalised widths, heights, inner slopes (and, for ``order='linear'``, the
    split points), each ``(..., count_bins or count_bins - 1, input_dim)``: build it with
    ``param_dims=[count_bins, count_bins, count_bins - 1, count_bins]`` (the last only for
    ``'linear'``).

    >>> from engine.nn import AutoRegressiveNN
    >>> net = AutoRegressiveNN(2, [20], param_dims=[8, 8, 7, 8])
    >>> SplineAutoregressive(2, net)(torch.zeros(3, 2)).shape
    torch.Size([3, 2])
    """

    def __init__(
        self,
        input_dim: int,
        autoregressive_nn: nn.Module,
        count_bins: int = 8,
        bound: float = 3.0,
        order: str = "linear",
    ) -> None:
        check_spline_options("SplineAutoregressive", count_bins, bound, order)
        super().__init__(cache_size=1)
        self.input_dim = input_dim
        self.arn = autoregressive_nn
        self.count_bins = count_bins
        self.bound = bound
        self.order = order

    def _spline(self, x: torch.Tensor, value: torch.Tensor, inverse: bool) -> tuple:
        params = network_spline_params(
            self.arn(x), self.input_dim, self.count_bins, self.order, "SplineAutoregressive", 1
        )
        return rational_spline(value, *params, self.bound, inverse=inverse)

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, log_det = self._spline(x, x, inverse=False)
        return y, log_det.sum(-1)

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        permutation = getattr(self.arn, "permutation", None)
        if permutation is None:
            raise ArgumentError(
                "SplineAutoregressive cannot invert: its network has no `permutation` giving "
                "the order of the variables. Use engine.nn.AutoRegressiveNN."
            )
        x = torch.zeros_like(y)
        for index in permutation.tolist():
            # Variable `index` depends only on those before it, which are already solved.
            solved, _ = self._spline(x, y, inverse=True)
            x = x.index_copy(-1, torch.tensor([index], device=y.device), solved[..., [index]])
        _, log_det = self._spline(x, y, inverse=True)
        return x, log_det.sum(-1)


class ConditionalSplineAutoregressive(ContextAutoregressive):
    """An autoregressive spline flow whose network also sees a context (a
    ``ConditionalAutoRegressiveNN``); keyword options as for :class:`SplineAutoregressive`.

    >>> t = conditional_spline_autoregressive(2, context_dim=3, count_bins=4)
    >>> t.condition(torch.zeros(3))(torch.zeros(5, 2)).shape
    torch.Size([5, 2])
    """

    flow = SplineAutoregressive

    def __init__(self, input_dim: int, autoregressive_nn: nn.Module, **kwargs: Any) -> None:
        super().__init__(autoregressive_nn, **kwargs)
        self.input_dim = input_dim

    def flow_args(self) -> tuple[Any, ...]:
        return (self.input_dim,)


def spline_autoregressive(
    input_dim: int,
    hidden_dims: Sequence[int] | None = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> SplineAutoregressive:
    """A :class:`SplineAutoregressive` with an ``AutoRegressiveNN`` (hidden layers
    ``hidden_dims``, default ``[10 * input_dim, 10 * input_dim]``); each of its outputs holds
    one parameter per bin (or inner knot) for every entry, ``spline_param_dims(1, ...)``.

    >>> spline_autoregressive(2, order="quadratic").arn.param_dims
    [8, 8, 7]
    """
    from engine.nn.auto_reg_nn import AutoRegressiveNN  # engine.nn imports engine.distributions

    check_spline_options("spline_autoregressive", count_bins, bound, order)
    hidden_dims = default_hidden_dims(hidden_dims, input_dim)
    arn = AutoRegressiveNN(
        input_dim, hidden_dims, param_dims=spline_param_dims(1, count_bins, order)
    )
    return SplineAutoregressive(input_dim, arn, count_bins=count_bins, bound=bound, order=order)


def conditional_spline_autoregressive(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> ConditionalSplineAutoregressive:
    """A :class:`ConditionalSplineAutoregressive` with a ``ConditionalAutoRegressiveNN``
    (defaults as for :func:`spline_autoregressive`).

    >>> conditional_spline_autoregressive(2, 3).nn.context_dim
    3
    """
    from engine.nn.auto_reg_nn import ConditionalAutoRegressiveNN  # see spline_autoregressive

    check_spline_options("conditional_spline_autoregressive", count_bins, bound, order)
    hidden_dims = default_hidden_dims(hidden_dims, input_dim)
    arn = ConditionalAutoRegressiveNN(
        input_dim, context_dim, hidden_dims, param_dims=spline_param_dims(1, count_bins, order)
    )
    return ConditionalSplineAutoregressive(
        input_dim, arn, count_bins=count_bins, bound=bound, order=order
    )
