"""Sum-of-squares polynomial flows (Jaini et al., 2019): each
``y_i = c_i + integral_0^{x_i} sum_k p_k(u)^2 du`` with polynomials ``p_k`` of degree
``count_degree`` whose coefficients an autoregressive network computes from ``x_0 .. x_{i-1}``.
The integrand is a sum of squares, so ``y_i`` increases with ``x_i``; the integral is taken in
closed form. There is no closed-form inverse.

>>> t = polynomial(3)
>>> x = torch.randn(5, 3)
>>> t.log_abs_det_jacobian(x, t(x)).shape
torch.Size([5])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from engine.distributions.affine_autoregressive import AutoregressiveFlow
from engine.distributions.torch_transform import JointLogDetTransform, TransformModule
from engine.distributions.transforms._parametrized import (
    default_hidden_dims,
    no_inverse,
    uniform_parameter,
)
from engine.errors import ArgumentError


class Polynomial(AutoregressiveFlow, JointLogDetTransform, TransformModule):
    """A polynomial flow over ``input_dim`` entries: ``autoregressive_nn(x)`` returns the
    coefficients, ``(..., (count_degree + 1) * count_sum, input_dim)`` (an ``AutoRegressiveNN``
    with ``param_dims=[(count_degree + 1) * count_sum]``); ``c`` is a learned offset.

    >>> from engine.nn import AutoRegressiveNN
    >>> net = AutoRegressiveNN(2, [10], param_dims=[(3 + 1) * 2])
    >>> Polynomial(net, 2, count_degree=3, count_sum=2)(torch.zeros(4, 2)).shape
    torch.Size([4, 2])
    """

    def __init__(
        self, autoregressive_nn: nn.Module, input_dim: int, count_degree: int, count_sum: int
    ) -> None:
        if count_degree < 0 or count_sum < 1:
            raise ArgumentError(
                f"Polynomial needs count_degree >= 0 and count_sum >= 1, got "
                f"count_degree={count_degree}, count_sum={count_sum}"
            )
        super().__init__(cache_size=1)
        self.arn = autoregressive_nn
        self.input_dim = input_dim
        self.count_degree = count_degree
        self.count_sum = count_sum
        bound = 1.0 / math.sqrt(input_dim)
        self.c = uniform_parameter(input_dim, scale=bound)
        degrees = torch.arange(count_degree + 1)
        # Powers r + s of the products of coefficients a_r a_s in p^2.
        self.register_buffer("_powers", degrees[:, None] + degrees[None, :], persistent=False)

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coefficients = self.arn(x)
        degree_count = self.count_degree + 1
        if (
            not isinstance(coefficients, torch.Tensor)
            or coefficients.shape[-2] != degree_count * self.count_sum
        ):
            raise ArgumentError(
                "Polynomial needs its network to return one tensor of "
                f"(count_degree + 1) * count_sum = {degree_count * self.count_sum} coefficients "
                "per entry; build it with that one param_dim"
            )
        a = coefficients.reshape(*coefficients.shape[:-2], self.count_sum, degree_count, -1)
        # sum_k p_k(u)^2 = sum_{r,s} A_rs u^(r+s) with A_rs = sum_k a_kr a_ks.
        products = torch.einsum("...krd,...ksd->...rsd", a, a)
        powers = self._powers.to(x.dtype).unsqueeze(-1)
        u = x.unsqueeze(-2).unsqueeze(-2)
        integral = (products * u.pow(powers + 1) / (powers + 1)).sum((-3, -2))
        slope = (products * u.pow(powers)).sum((-3, -2))
        return self.c + integral, slope.log().sum(-1)

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise no_inverse("Polynomial")


def polynomial(input_dim: int, hidden_dims: Sequence[int] | None = None) -> Polynomial:
    """A :class:`Polynomial` flow of ``count_sum=3`` squared polynomials of degree 4, with an
    ``AutoRegressiveNN`` (hidden layers ``hidden_dims``, default ``[10 * input_dim]``).

    >>> polynomial(2).count_degree, polynomial(2).count_sum
    (4, 3)
    """
    from engine.nn.auto_reg_nn import AutoRegressiveNN  # engine.nn imports engine.distributions

    count_degree, count_sum = 4, 3
    hidden_dims = default_hidden_dims(hidden_dims, input_dim, layers=1)
    arn = AutoRegressiveNN(input_dim, hidden_dims, param_dims=[(count_degree + 1) * count_sum])
    return Polynomial(arn, input_dim, count_degree, count_sum)
