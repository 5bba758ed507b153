"""Element-wise rational-spline flows: Pyro's ``Spline``, ``ConditionedSpline``,
``ConditionalSpline`` and the ``spline``/``conditional_spline`` helpers.

Each dimension of the input goes through its own monotonic rational spline on ``[-bound, bound]``
(the identity outside; see :mod:`engine.distributions.rational_spline`), of linear or quadratic
order. The unconstrained parameters are mapped as Pyro maps them: softmax for the bins' widths and
heights (each at least 1e-3 of the box), softplus plus 1e-3 for the slopes at the inner knots,
and a sigmoid squeezed into ``[0.025, 0.975]`` for the split points of a linear spline.

>>> import engine.distributions as dist
>>> flow = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0), [Spline(2)])
>>> flow.log_prob(torch.zeros(5, 2)).shape  # element-wise: one log-density per dimension
torch.Size([5, 2])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from engine.distributions.conditional import ConditionalTransformModule
from engine.distributions.rational_spline import rational_spline
from engine.distributions.torch_transform import JointLogDetTransform, TransformModule
from engine.distributions.transforms._parametrized import default_hidden_dims
from engine.errors import ArgumentError, ShapeError

ORDERS = ("linear", "quadratic")
MIN_BIN_SHARE = 1e-3
MIN_DERIVATIVE = 1e-3
MIN_LAMBDA = 0.025

SplineParams = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]


def check_spline_options(owner: str, count_bins: int, bound: float, order: str) -> None:
    """Refuse spline settings that cannot make a spline, naming the transform and the fix.

    >>> check_spline_options("Spline", 8, 3.0, "cubic")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engine.errors.ArgumentError: Spline: order='cubic' is not one of 'linear', 'quadratic'...
    """
    if order not in ORDERS:
        raise ArgumentError(
            f"{owner}: order={order!r} is not one of 'linear', 'quadratic'. Use order='linear' "
            "(the default) or order='quadratic'."
        )
    if int(count_bins) != count_bins or not 1 <= count_bins <= int(1 / MIN_BIN_SHARE):
        raise ArgumentError(
            f"{owner}: count_bins={count_bins} must be a whole number from 1 to "
            f"{int(1 / MIN_BIN_SHARE)} (every bin keeps at least {MIN_BIN_SHARE} of the box)."
        )
    if not bound > 0:
        raise ArgumentError(
            f"{owner}: bound={bound} must be positive: the spline lives on [-bound, bound]."
        )


def normalize_spline_params(
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    lambdas: torch.Tensor | None,
) -> SplineParams:
    """Map unconstrained parameters (last dims ``K``, ``K``, ``K - 1``, ``K``) to the bins'
    shares of the box, the inner slopes and the split points.

    >>> w, h, d, l = normalize_spline_params(
    ...     torch.zeros(4), torch.zeros(4), torch.zeros(3), torch.zeros(4)
    ... )
    >>> w.sum().item(), round(l[0].item(), 3)
    (1.0, 0.5)
    """
    count_bins = widths.shape[-1]
    spare = 1.0 - MIN_BIN_SHARE * count_bins
    widths = MIN_BIN_SHARE + spare * F.softmax(widths, dim=-1)
    heights = MIN_BIN_SHARE + spare * F.softmax(heights, dim=-1)
    derivatives = MIN_DERIVATIVE + F.softplus(derivatives)
    if lambdas is not None:
        lambdas = MIN_LAMBDA + (1.0 - 2 * MIN_LAMBDA) * torch.sigmoid(lambdas)
    return widths, heights, derivatives, lambdas


class ConditionedSpline(JointLogDetTransform):
    """An element-wise spline with given (normalized) parameters, or a callable returning them
    at each use: what ``ConditionalSpline.condition`` returns. Its ``log_abs_det_jacobian`` is
    element-wise, like the transform.

    >>> w = torch.full((1, 2), 0.5)
    >>> t = ConditionedSpline((w, w, torch.ones(1, 1), None), bound=3.0, order="quadratic")
    >>> t(torch.tensor([1.5]))  # equal bins, unit slopes: the identity
    tensor([1.5000])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(
        self,
        params: SplineParams | Callable[[], SplineParams],
        bound: float = 3.0,
        order: str = "linear",
    ) -> None:
        super().__init__(cache_size=1)
        self._params = params
        self.bound = bound
        self.order = order

    def spline_params(self) -> SplineParams:
        """The normalized ``(widths, heights, derivatives, lambdas)`` in use now."""
        return self._params() if callable(self._params) else self._params

    def _spline(self, value: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        widths, heights, derivatives, lambdas = self.spline_params()
        if value.shape[-1:] != widths.shape[-2:-1] and widths.shape[-2] != 1:
            raise ShapeError(
                f"{type(self).__name__} has parameters for {widths.shape[-2]} dimensions but got "
                f"a value of shape {tuple(value.shape)}: the last dim must be "
                f"{widths.shape[-2]}."
            )
        return rational_spline(
            value, widths, heights, derivatives, lambdas, self.bound, inverse=inverse
        )

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._spline(x, inverse=False)

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._spline(y, inverse=True)


class Spline(ConditionedSpline, TransformModule):
    """A learnable element-wise monotonic rational spline on ``input_dim`` dimensions, with
    ``count_bins`` bins on ``[-bound, bound]`` and the identity outside; ``order`` is
    ``'linear'`` or ``'quadratic'``. Pyro's parameter names (``unnormalized_widths``, ...).

    >>> base = torch.distributions.Normal(torch.zeros(10), torch.ones(10))
    >>> transform = Spline(10, count_bins=4, bound=3.0)
    >>> flow = torch.distributions.TransformedDistribution(base, [transform])
    >>> flow.sample().shape
    torch.Size([10])
    """

    def __init__(
        self, input_dim: int, count_bins: int = 8, bound: float = 3.0, order: str = "linear"
    ) -> None:
        check_spline_options("Spline", count_bins, bound, order)
        super().__init__(None, bound=bound, order=order)
        self.input_dim = input_dim
        self.count_bins = count_bins
        self.unnormalized_widths = nn.Parameter(torch.randn(input_dim, count_bins))
        self.unnormalized_heights = nn.Parameter(torch.randn(input_dim, count_bins))
        self.unnormalized_derivatives = nn.Parameter(torch.randn(input_dim, count_bins - 1))
        if order == "linear":
            self.unnormalized_lambdas = nn.Parameter(torch.rand(input_dim, count_bins))

    def spline_params(self) -> SplineParams:
        return normalize_spline_params(
            self.unnormalized_widths,
            self.unnormalized_heights,
            self.unnormalized_derivatives,
            self.unnormalized_lambdas if self.order == "linear" else None,
        )


def hypernet_output_to_params(
    outputs: Sequence[torch.Tensor], input_dim: int, count_bins: int, owner: str
) -> list[torch.Tensor]:
    """Reshape a hypernetwork's outputs to ``(..., input_dim, n)`` (``n``: bins, or inner
    knots for the slopes): a ``DenseNN`` gives ``(..., input_dim * n)``, an autoregressive
    network ``(..., n, input_dim)``. (When ``n`` is 1 the two readings agree.)"""
    shaped = []
    counts = [count_bins, count_bins, count_bins - 1, count_bins]
    for output, n in zip(outputs, counts, strict=False):
        if output.shape[-1] == input_dim * n:
            shaped.append(output.reshape((*output.shape[:-1], input_dim, n)))
        elif output.shape[-2:] == (n, input_dim):
            shaped.append(output.transpose(-1, -2))
        else:
            raise ShapeError(
                f"{owner}: the network gave an output of shape {tuple(output.shape)}, which "
                f"does not hold parameters for {input_dim} dimensions and {count_bins} bins. "
                f"Build it with param_dims={spline_param_dims(input_dim, count_bins, 'linear')} "
                f"(the last one only for order='linear')."
            )
    return shaped


def network_spline_params(
    outputs: Any, input_dim: int, count_bins: int, order: str, owner: str, units: int
) -> SplineParams:
    """A network's outputs checked (three tensors, four for ``order='linear'``), reshaped
    (:func:`hypernet_output_to_params`) and normalized: the spline parameters of the
    conditional and autoregressive splines. ``units`` is the entries per parameter of one
    dimension in the fix the error names (``input_dim`` for a dense network read as a whole,
    1 for an autoregressive one).

    >>> outs = [torch.zeros(4), torch.zeros(4), torch.zeros(2)]  # a dense network, 2 dims, 2 bins
    >>> [p.shape for p in network_spline_params(outs, 2, 2, "quadratic", "Demo", 1)[:3]]
    [torch.Size([2, 2]), torch.Size([2, 2]), torch.Size([2, 1])]
    """
    expected = 4 if order == "linear" else 3
    if not isinstance(outputs, tuple | list) or len(outputs) != expected:
        raise ArgumentError(
            f"{owner}(order={order!r}) needs its network to return {expected} tensors (widths, "
            f"heights, derivatives{', lambdas' if expected == 4 else ''}); build it with "
            f"param_dims={spline_param_dims(units, count_bins, order)}."
        )
    shaped = hypernet_output_to_params(outputs, input_dim, count_bins, owner)
    if expected == 3:
        shaped.append(None)
    return normalize_spline_params(*shaped)


class ConditionalSpline(ConditionalTransformModule):
    """An element-wise spline whose parameters a network ``nn`` computes from a context:
    ``condition(context)`` gives a ``ConditionedSpline``. ``nn(context)`` returns the
    unconstrained widths, heights, inner slopes (and split points for ``order='linear'``).

    >>> from engine.nn import DenseNN
    >>> net = DenseNN(5, [50], param_dims=[10 * 8, 10 * 8, 10 * 7, 10 * 8])
    >>> transform = ConditionalSpline(net, input_dim=10, count_bins=8)
    >>> transform.condition(torch.rand(3, 5))(torch.randn(3, 10)).shape
    torch.Size([3, 10])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True

    def __init__(
        self,
        nn: nn.Module,
        input_dim: int,
        count_bins: int,
        bound: float = 3.0,
        order: str = "linear",
    ) -> None:
        check_spline_options("ConditionalSpline", count_bins, bound, order)
        super().__init__()
        self.nn = nn
        self.input_dim = input_dim
        self.count_bins = count_bins
        self.bound = bound
        self.order = order

    def _params(self, context: torch.Tensor) -> SplineParams:
        return network_spline_params(
            self.nn(context),
            self.input_dim,
            self.count_bins,
            self.order,
            "ConditionalSpline",
            self.input_dim,
        )

    def condition(self, context: torch.Tensor) -> ConditionedSpline:
        # The network runs at each use of the conditioned spline, so it sees current weights.
        return ConditionedSpline(partial(self._params, context), self.bound, self.order)


def spline(
    input_dim: int, count_bins: int = 8, bound: float = 3.0, order: str = "linear"
) -> Spline:
    """Pyro's helper for :class:`Spline`.

    >>> spline(3, count_bins=4).unnormalized_widths.shape
    torch.Size([3, 4])
    """
    return Spline(input_dim, count_bins=count_bins, bound=bound, order=order)


def spline_param_dims(dims: int, count_bins: int, order: str) -> list[int]:
    """The ``param_dims`` of a network that feeds a spline over ``dims`` dimensions.

    >>> spline_param_dims(2, 8, "linear")
    [16, 16, 14, 16]
    """
    param_dims = [dims * count_bins, dims * count_bins, dims * (count_bins - 1)]
    return [*param_dims, dims * count_bins] if order == "linear" else param_dims


def conditional_spline(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> ConditionalSpline:
    """Pyro's helper for :class:`ConditionalSpline`: a ``DenseNN`` from the context
    (``hidden_dims`` default ``[10 * input_dim, 10 * input_dim]``) to the spline's parameters.

    >>> t = conditional_spline(1, context_dim=1)
    >>> t.condition(torch.ones(1))(torch.zeros(4, 1)).shape
    torch.Size([4, 1])
    """
    # Imported here: engine.nn's modules import engine.distributions at their top.
    from engine.nn.dense_nn import DenseNN

    check_spline_options("conditional_spline", count_bins, bound, order)
    hidden_dims = default_hidden_dims(hidden_dims, input_dim)
    net = DenseNN(
        context_dim, hidden_dims, param_dims=spline_param_dims(input_dim, count_bins, order)
    )
    return ConditionalSpline(net, input_dim, count_bins, bound=bound, order=order)
