"""Inverse autoregressive flows (Kingma et al., 2016): Pyro's ``AffineAutoregressive``,
``ConditionalAffineAutoregressive`` and their helpers.

``y = exp(log_scale) * x + loc`` with ``(loc, log_scale)`` computed from ``x`` by an
autoregressive network, so each ``y[i]`` depends only on ``x[i]`` and the variables before ``i``
in the network's permutation. The forward pass (drawing) is one network call; the inverse
(scoring a value not drawn by the flow) solves for one variable at a time, ``input_dim`` calls.

>>> import engine.distributions as dist
>>> flow = dist.TransformedDistribution(
...     dist.Normal(torch.zeros(3), 1.0).to_event(1), [affine_autoregressive(3)]
... )
>>> flow.log_prob(flow.sample((4,))).shape
torch.Size([4])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from engine.distributions.conditional import ConditionalTransformModule
from engine.distributions.torch_transform import JointLogDetTransform, TransformModule
from engine.distributions.transforms._parametrized import default_hidden_dims
from engine.errors import ArgumentError


def clamp_preserve_gradients(x: torch.Tensor, min: float, max: float) -> torch.Tensor:
    """``x`` clamped to ``[min, max]`` in value, with the gradient of ``x`` itself (so a clamped
    log-scale still learns its way back into range).

    >>> x = torch.tensor([-9.0, 0.0], requires_grad=True)
    >>> y = clamp_preserve_gradients(x, -5.0, 3.0); y.sum().backward()
    >>> y.detach(), x.grad
    (tensor([-5.,  0.]), tensor([1., 1.]))
    """
    return x + (x.clamp(min, max) - x).detach()


class AutoregressiveFlow:
    """What every autoregressive flow over vectors declares (a base listed first): an
    increasing bijection of real vectors whose ``i``-th output depends only on the inputs
    before it.

    >>> AffineAutoregressive.sign, AffineAutoregressive.autoregressive
    (1, True)
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    sign = +1
    autoregressive = True


class AffineAutoregressive(AutoregressiveFlow, JointLogDetTransform, TransformModule):
    """An affine autoregressive flow over vectors: ``y = exp(log_scale) * x + loc`` (or, with
    ``stable=True``, ``y = sigmoid(s) * x + (1 - sigmoid(s)) * loc`` with ``s`` the network's
    second output plus ``sigmoid_bias``), where ``autoregressive_nn(x)`` returns
    ``(loc, log_scale)``. The log-scale is clipped to ``[log_scale_min_clip,
    log_scale_max_clip]``. The inverse needs the network's ``permutation``.

    >>> from engine.nn import AutoRegressiveNN
    >>> transform = AffineAutoregressive(AutoRegressiveNN(10, [40]))
    >>> x = torch.randn(2, 10)
    >>> y = transform(x)
    >>> transform.inv(y) is x  # the last pair is cached
    True
    """

    def __init__(
        self,
        autoregressive_nn: nn.Module,
        log_scale_min_clip: float = -5.0,
        log_scale_max_clip: float = 3.0,
        sigmoid_bias: float = 2.0,
        stable: bool = False,
    ) -> None:
        super().__init__(cache_size=1)
        self.arn = autoregressive_nn
        self.log_scale_min_clip = log_scale_min_clip
        self.log_scale_max_clip = log_scale_max_clip
        self.sigmoid_bias = sigmoid_bias
        self.stable = stable

    def _loc_and_log_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.arn(x)
        if self.stable:
            return loc, F.logsigmoid(raw_scale + self.sigmoid_bias)
        log_scale = clamp_preserve_gradients(
            raw_scale, self.log_scale_min_clip, self.log_scale_max_clip
        )
        return loc, log_scale

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_scale = self._loc_and_log_scale(x)
        scale = log_scale.exp()
        # The stable form moves x towards loc: y = scale * x + (1 - scale) * loc.
        shift = (1 - scale) * loc if self.stable else loc
        return scale * x + shift, log_scale.sum(-1)

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        permutation = getattr(self.arn, "permutation", None)
        if permutation is None:
            raise ArgumentError(
                "AffineAutoregressive cannot invert: its network has no `permutation` giving "
                "the order of the variables. Use engine.nn.AutoRegressiveNN (or give your "
                "network a `permutation` attribute)."
            )
        x = torch.zeros_like(y)
        for index in permutation.tolist():
            # Variable `index` depends only on those before it, which are already solved.
            loc, log_scale = self._loc_and_log_scale(x)
            scale = log_scale[..., index].exp()
            loc = loc[..., index]
            shift = (1 - scale) * loc if self.stable else loc
            solved = (y[..., index] - shift) / scale
            x = x.index_copy(-1, torch.tensor([index], device=y.device), solved.unsqueeze(-1))
        # The last network call saw every variable but the last one solved, and no output
        # depends on that one, so its log-scales are those of the final x.
        return x, log_scale.sum(-1)


class WithContext(nn.Module):
    """A conditional autoregressive network with its context fixed: called with ``x`` only,
    and exposing the network's ``permutation`` for the inverse."""

    def __init__(self, net: nn.Module, context: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.context = context

    @property
    def permutation(self) -> torch.Tensor:
        return self.net.permutation

    def get_permutation(self) -> torch.Tensor:
        """The order of the variables, as the network's own ``get_permutation``."""
        return self.net.permutation

    def forward(self, x: torch.Tensor) -> Any:
        return self.net(x, context=self.context)


class ContextAutoregressive(ConditionalTransformModule):
    """A conditional autoregressive flow: its network also sees a context, and
    ``condition(context)`` gives the plain ``flow`` over that network with the context fixed
    (``WithContext``) and the keyword options given here.

    >>> from engine.nn import ConditionalAutoRegressiveNN
    >>> t = ConditionalAffineAutoregressive(ConditionalAutoRegressiveNN(2, 3, [8]), stable=True)
    >>> t.condition(torch.zeros(3)).stable
    True
    """

    flow: type[TransformModule]
    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, autoregressive_nn: nn.Module, **kwargs: Any) -> None:
        super().__init__()
        self.nn = autoregressive_nn
        self.kwargs = kwargs

    def flow_args(self) -> tuple[Any, ...]:
        """The flow's positional arguments before its network (none, by default)."""
        return ()

    def condition(self, context: torch.Tensor) -> TransformModule:
        return self.flow(*self.flow_args(), WithContext(self.nn, context), **self.kwargs)


class ConditionalAffineAutoregressive(ContextAutoregressive):
    """An affine autoregressive flow whose network also sees a context:
    ``condition(context)`` gives an ``AffineAutoregressive`` (same keyword options).

    >>> from engine.nn import ConditionalAutoRegressiveNN
    >>> transform = ConditionalAffineAutoregressive(ConditionalAutoRegressiveNN(10, 4, [100]))
    >>> transform.condition(torch.rand(3, 4))(torch.randn(3, 10)).shape
    torch.Size([3, 10])
    """

    flow = AffineAutoregressive


def affine_autoregressive(
    input_dim: int, hidden_dims: Sequence[int] | None = None, **kwargs: Any
) -> AffineAutoregressive:
    """Pyro's helper for :class:`AffineAutoregressive`: an ``AutoRegressiveNN`` with
    ``hidden_dims`` (default ``[3 * input_dim + 1]``); keyword options go to the transform
    (``log_scale_min_clip``, ``log_scale_max_clip``, ``sigmoid_bias``, ``stable``).

    >>> affine_autoregressive(4).arn.hidden_dims
    [13]
    """
    from engine.nn.auto_reg_nn import AutoRegressiveNN  # engine.nn imports engine.distributions

    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    return AffineAutoregressive(AutoRegressiveNN(input_dim, hidden_dims), **kwargs)


def conditional_affine_autoregressive(
    input_dim: int, context_dim: int, hidden_dims: Sequence[int] | None = None, **kwargs: Any
) -> ConditionalAffineAutoregressive:
    """Pyro's helper for :class:`ConditionalAffineAutoregressive`: a
    ``ConditionalAutoRegressiveNN`` with ``hidden_dims`` (default ``[10 * input_dim]``).

    >>> conditional_affine_autoregressive(2, 3).nn.context_dim
    3
    """
    from engine.nn.auto_reg_nn import ConditionalAutoRegressiveNN  # see affine_autoregressive

    hidden_dims = default_hidden_dims(hidden_dims, input_dim, layers=1)
    net = ConditionalAutoRegressiveNN(input_dim, context_dim, hidden_dims)
    return ConditionalAffineAutoregressive(net, **kwargs)
