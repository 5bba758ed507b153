"""Block neural autoregressive flow (De Cao, Titov and Aziz, 2019): ``BlockAutoregressive`` and
its helper ``block_autoregressive``.

One network maps the whole vector ``x`` (``d`` entries) through layers of width ``d * a`` for
hidden factors ``a``; each layer's weight is a ``d x d`` grid of ``a_out x a_in`` blocks, zero
above the block diagonal, positive on it, free below. With increasing activations in between,
``y_i`` depends only on ``x_0 .. x_i`` and increases with ``x_i``: the Jacobian is triangular
and its diagonal is the product of the diagonal blocks' Jacobians, which the forward pass keeps
in log space. There is no closed-form inverse, so the flow serves for drawing (a guide) and
scoring its own draws, not for scoring arbitrary values.

>>> import engine.distributions as dist
>>> flow = dist.TransformedDistribution(
...     dist.Normal(torch.zeros(3), 1.0).to_event(1), [block_autoregressive(3)]
... )
>>> z = flow.sample((5,))
>>> flow.log_prob(z).shape
torch.Size([5])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from engine.distributions.affine_autoregressive import AutoregressiveFlow
from engine.distributions.torch_transform import TransformModule
from engine.distributions.transforms._parametrized import no_inverse, uniform_parameter
from engine.errors import ArgumentError


def _log_tanh_slope(h: torch.Tensor) -> torch.Tensor:
    # 1 - tanh(h)^2 = 4 / (e^h + e^-h)^2, so log = 2 (log 2 - |h| - log1p(e^(-2|h|))): stable.
    a = h.abs()
    return 2.0 * (math.log(2.0) - a - torch.log1p(torch.exp(-2.0 * a)))


def _log_sigmoid_slope(h: torch.Tensor) -> torch.Tensor:
    return F.logsigmoid(h) + F.logsigmoid(-h)


def _log_elu_slope(h: torch.Tensor) -> torch.Tensor:
    return -F.relu(-h)


def _log_leaky_relu_slope(h: torch.Tensor) -> torch.Tensor:
    return torch.where(h >= 0, torch.zeros_like(h), torch.full_like(h, math.log(0.01)))


# name -> (activation, log of its derivative); all increasing, so the flow stays monotone.
_ACTIVATIONS = {
    "tanh": (torch.tanh, _log_tanh_slope),
    "sigmoid": (torch.sigmoid, _log_sigmoid_slope),
    "ELU": (F.elu, _log_elu_slope),
    "LeakyReLU": (lambda h: F.leaky_relu(h, 0.01), _log_leaky_relu_slope),
}
_RESIDUALS = (None, "normal", "gated")


class _BlockLinear(nn.Module):
    """``input_dim`` blocks of ``in_factor`` units to ``input_dim`` blocks of ``out_factor``
    units, block lower-triangular, positive diagonal blocks, each output row rescaled to norm
    ``exp(log_norm)`` (weight normalisation keeps the stacked layers well conditioned)."""

    def __init__(self, input_dim: int, in_factor: int, out_factor: int) -> None:
        super().__init__()
        rows, cols = input_dim * out_factor, input_dim * in_factor
        row_block = torch.arange(rows) // out_factor
        col_block = torch.arange(cols) // in_factor
        self.register_buffer("_diagonal", row_block[:, None] == col_block[None, :])
        self.register_buffer("_lower", row_block[:, None] >= col_block[None, :])
        bound = 1.0 / math.sqrt(cols)
        weight = torch.empty(rows, cols).uniform_(-bound, bound)
        # Diagonal blocks hold log-weights: start them at log(bound), about as large as the rest.
        weight = torch.where(self._diagonal, torch.full_like(weight, math.log(bound)), weight)
        self.weight = nn.Parameter(weight)
        self.bias = uniform_parameter(rows, scale=bound)
        with torch.no_grad():
            self.log_norm = nn.Parameter(self._raw().norm(dim=-1).log())
        self.input_dim, self.in_factor, self.out_factor = input_dim, in_factor, out_factor

    def _raw(self) -> torch.Tensor:
        w = torch.where(self._diagonal, self.weight.exp(), self.weight)
        return w * self._lower

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's output and the logs of its diagonal blocks, ``(d, out, in)``."""
        raw = self._raw()
        log_row_norm = 0.5 * raw.pow(2).sum(-1, keepdim=True).log()
        weight = raw * (self.log_norm.unsqueeze(-1) - log_row_norm).exp()
        log_weight = self.weight + self.log_norm.unsqueeze(-1) - log_row_norm
        d, a_out, a_in = self.input_dim, self.out_factor, self.in_factor
        blocks = log_weight.reshape(d, a_out, d, a_in).diagonal(dim1=0, dim2=2)
        return F.linear(h, weight, self.bias), blocks.permute(2, 0, 1)


class BlockAutoregressive(AutoregressiveFlow, TransformModule):
    """A block neural autoregressive flow over vectors of ``input_dim`` entries.

    ``hidden_factors`` sets the hidden layers' widths (``input_dim * a`` units each);
    ``activation`` is one of ``"tanh"``, ``"sigmoid"``, ``"ELU"``, ``"LeakyReLU"``; ``residual``
    is ``None``, ``"normal"`` (``y = x + f(x)``) or ``"gated"`` (``y = g f(x) + (1 - g) x`` with
    a learned gate ``g`` in ``(0, 1)``).

    >>> t = BlockAutoregressive(2, hidden_factors=[4])
    >>> t(torch.randn(6, 2)).shape
    torch.Size([6, 2])
    """

    def __init__(
        self,
        input_dim: int,
        hidden_factors: Sequence[int] = (8, 8),
        activation: str = "tanh",
        residual: str | None = None,
    ) -> None:
        super().__init__(cache_size=1)
        if activation not in _ACTIVATIONS:
            raise ArgumentError(
                f"BlockAutoregressive got activation={activation!r}; choose one of "
                f"{sorted(_ACTIVATIONS)}"
            )
        if residual not in _RESIDUALS:
            raise ArgumentError(
                f"BlockAutoregressive got residual={residual!r}; choose None, 'normal' or 'gated'"
            )
        factors = [int(a) for a in hidden_factors]
        if input_dim < 1 or any(a < 1 for a in factors):
            raise ArgumentError(
                f"BlockAutoregressive needs input_dim >= 1 and hidden factors >= 1, got "
                f"input_dim={input_dim}, hidden_factors={list(hidden_factors)}"
            )
        widths = [1, *factors, 1]
        self.layers = nn.ModuleList(
            _BlockLinear(input_dim, a_in, a_out) for a_in, a_out in itertools.pairwise(widths)
        )
        self._activation, self._log_slope = _ACTIVATIONS[activation]
        self.activation, self.residual = activation, residual
        if residual == "gated":
            self.gate = nn.Parameter(torch.zeros(()))
        self._log_det: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        # log of d(h's block i)/d(x_i), one (a, 1) column per entry i.
        log_jac = x.new_zeros((*x.shape, 1, 1))
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            h, log_blocks = layer(h)
            log_jac = torch.logsumexp(log_blocks.unsqueeze(-1) + log_jac.unsqueeze(-3), dim=-2)
            if index < last:
                log_jac = log_jac + self._log_slope(h).reshape(log_jac.shape)
                h = self._activation(h)
        log_diag = log_jac.reshape(x.shape)
        if self.residual == "normal":
            y, log_diag = x + h, F.softplus(log_diag)
        elif self.residual == "gated":
            g = torch.sigmoid(self.gate)
            y = g * h + (1 - g) * x
            log_diag = torch.logaddexp(F.logsigmoid(self.gate) + log_diag, F.logsigmoid(-self.gate))
        else:
            y = h
        self._log_det = (x, y, log_diag.sum(-1))
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise no_inverse("BlockAutoregressive")

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        memo = self._log_det
        if memo is None or memo[0] is not x or memo[1] is not y:
            self._call(x)
            memo = self._log_det
        return memo[2]

    def clear_cache(self) -> None:
        """Forget the cached pair and its log-Jacobian."""
        super().clear_cache()
        self._log_det = None


def block_autoregressive(input_dim: int, **kwargs: object) -> BlockAutoregressive:
    """A ``BlockAutoregressive`` flow over ``input_dim`` entries (keyword arguments as for the
    class).

    >>> block_autoregressive(4, residual="gated").residual
    'gated'
    """
    return BlockAutoregressive(input_dim, **kwargs)
