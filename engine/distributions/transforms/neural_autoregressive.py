"""Neural autoregressive flows (Huang et al., 2018), the deep sigmoidal form: each
``y_i = f^-1(sum_j w_j f(a_j x_i + b_j))``, a monotone mixture of ``width`` activations ``f``
whose ``a > 0``, ``b`` and weights ``w`` (a softmax) an autoregressive network computes from
``x_0 .. x_{i-1}``; plain (``NeuralAutoregressive``/``neural_autoregressive``) and conditional
(``ConditionalNeuralAutoregressive``/``conditional_neural_autoregressive``). There is no
closed-form inverse.

>>> t = neural_autoregressive(3, width=4)
>>> x = torch.randn(5, 3)
>>> t.log_abs_det_jacobian(x, t(x)).shape
torch.Size([5])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from engine.distributions.affine_autoregressive import AutoregressiveFlow, ContextAutoregressive
from engine.distributions.torch_transform import JointLogDetTransform, TransformModule
from engine.distributions.transforms._parametrized import no_inverse
from engine.errors import ArgumentError

_EPS = 1e-6


def _sigmoid_inverse(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.clamp(_EPS, 1 - _EPS)
    return torch.logit(z), -(z.log() + torch.log1p(-z))


def _tanh_inverse(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.clamp(-1 + _EPS, 1 - _EPS)
    return torch.atanh(z), -torch.log1p(-z.pow(2))


def _elu_inverse(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.clamp(min=-1 + _EPS)
    return torch.where(z > 0, z, torch.log1p(z.clamp(max=0))), F.relu(-torch.log1p(z))


def _leaky_relu_inverse(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    slope = torch.full_like(z, math.log(100.0))
    return F.leaky_relu(z, 100.0), torch.where(z >= 0, torch.zeros_like(z), slope)


def _sigmoid_log_slope(h: torch.Tensor) -> torch.Tensor:
    return F.logsigmoid(h) + F.logsigmoid(-h)


def _tanh_log_slope(h: torch.Tensor) -> torch.Tensor:
    a = h.abs()
    return 2.0 * (math.log(2.0) - a - torch.log1p(torch.exp(-2.0 * a)))


def _elu_log_slope(h: torch.Tensor) -> torch.Tensor:
    return -F.relu(-h)


def _leaky_relu_log_slope(h: torch.Tensor) -> torch.Tensor:
    return torch.where(h >= 0, torch.zeros_like(h), torch.full_like(h, math.log(0.01)))


# name -> (f, log f', f^-1 with log of its derivative); each f increasing.
_ACTIVATIONS: dict[str, tuple[Callable, Callable, Callable]] = {
    "sigmoid": (torch.sigmoid, _sigmoid_log_slope, _sigmoid_inverse),
    "tanh": (torch.tanh, _tanh_log_slope, _tanh_inverse),
    "ELU": (F.elu, _elu_log_slope, _elu_inverse),
    "LeakyReLU": (lambda h: F.leaky_relu(h, 0.01), _leaky_relu_log_slope, _leaky_relu_inverse),
}


def _check_activation(owner: str, activation: str) -> None:
    if activation not in _ACTIVATIONS:
        raise ArgumentError(
            f"{owner} got activation={activation!r}; choose one of {sorted(_ACTIVATIONS)}"
        )


class NeuralAutoregressive(AutoregressiveFlow, JointLogDetTransform, TransformModule):
    """A neural autoregressive flow: ``autoregressive_nn(x)`` returns three tensors of shape
    ``(..., hidden_units, D)`` (the slopes before softplus, the offsets, the weights before
    softmax), e.g. ``AutoRegressiveNN(D, [...], param_dims=[16, 16, 16])``.

    >>> from engine.nn import AutoRegressiveNN
    >>> t = NeuralAutoregressive(AutoRegressiveNN(2, [20], param_dims=[8, 8, 8]), 8)
    >>> t(torch.zeros(4, 2)).shape
    torch.Size([4, 2])
    """

    def __init__(
        self, autoregressive_nn: nn.Module, hidden_units: int = 16, activation: str = "sigmoid"
    ) -> None:
        _check_activation("NeuralAutoregressive", activation)
        super().__init__(cache_size=1)
        self.arn = autoregressive_nn
        self.hidden_units = hidden_units
        self.activation = activation

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.arn(x)
        if not isinstance(outputs, tuple | list) or len(outputs) != 3:
            raise ArgumentError(
                "NeuralAutoregressive needs its network to return 3 tensors (slopes, offsets, "
                "weights): build it with param_dims=[hidden_units] * 3"
            )
        a_raw, b, w_raw = outputs
        f, log_slope, f_inverse = _ACTIVATIONS[self.activation]
        a = F.softplus(a_raw)  # (..., width, D)
        log_w = F.log_softmax(w_raw, dim=-2)
        h = a * x.unsqueeze(-2) + b
        z = (log_w.exp() * f(h)).sum(-2)
        y, log_inverse_slope = f_inverse(z)
        # dy/dx = (f^-1)'(z) * sum_j w_j a_j f'(h_j), the sum taken in log space.
        log_mix_slope = torch.logsumexp(log_w + a.log() + log_slope(h), dim=-2)
        return y, (log_inverse_slope + log_mix_slope).sum(-1)

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise no_inverse("NeuralAutoregressive")


class ConditionalNeuralAutoregressive(ContextAutoregressive):
    """A neural autoregressive flow whose network also sees a context (e.g. a
    ``ConditionalAutoRegressiveNN`` with ``param_dims=[16, 16, 16]``).

    >>> t = conditional_neural_autoregressive(2, context_dim=3, width=4)
    >>> t.condition(torch.zeros(3))(torch.zeros(5, 2)).shape
    torch.Size([5, 2])
    """

    flow = NeuralAutoregressive


def neural_autoregressive(
    input_dim: int,
    hidden_dims: Sequence[int] | None = None,
    activation: str = "sigmoid",
    width: int = 16,
) -> NeuralAutoregressive:
    """A :class:`NeuralAutoregressive` flow with an ``AutoRegressiveNN`` (hidden layers
    ``hidden_dims``, default ``[3 * input_dim + 1]``) and ``width`` activations per entry.

    >>> neural_autoregressive(3, activation="tanh").activation
    'tanh'
    """
    from engine.nn.auto_reg_nn import AutoRegressiveNN  # engine.nn imports engine.distributions

    _check_activation("neural_autoregressive", activation)
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    arn = AutoRegressiveNN(input_dim, hidden_dims, param_dims=[width] * 3)
    return NeuralAutoregressive(arn, hidden_units=width, activation=activation)


def conditional_neural_autoregressive(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    activation: str = "sigmoid",
    width: int = 16,
) -> ConditionalNeuralAutoregressive:
    """A :class:`ConditionalNeuralAutoregressive` with a ``ConditionalAutoRegressiveNN``
    (defaults as for :func:`neural_autoregressive`).

    >>> conditional_neural_autoregressive(2, 3).nn.context_dim
    3
    """
    from engine.nn.auto_reg_nn import ConditionalAutoRegressiveNN  # see neural_autoregressive

    _check_activation("conditional_neural_autoregressive", activation)
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    arn = ConditionalAutoRegressiveNN(input_dim, context_dim, hidden_dims, param_dims=[width] * 3)
    return ConditionalNeuralAutoregressive(arn, hidden_units=width, activation=activation)
