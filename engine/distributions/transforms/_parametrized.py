"""What the small learnable flows (``Planar``, ``Radial``, ``Householder``,
``MatrixExponential``, ...) share: a transform whose parameters are given as a tuple or computed
by a callable at each use, and the conditional family that computes them from a context with a
network.

Each flow ``X`` comes in three forms built on these: ``ConditionedX`` (parameters given, what
``condition`` returns), ``X`` (parameters are the module's own ``nn.Parameter``s) and
``ConditionalX`` (a network maps the context to the parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from engine.distributions.conditional import ConditionalTransformModule
from engine.errors import ArgumentError

Params = tuple[torch.Tensor, ...]


class ParametrizedTransform(Transform):
    """A transform that reads its parameters through ``params()``: a fixed tuple, or a
    callable evaluated at each use (so a conditioned flow sees its network's current weights).
    Learnable subclasses override ``params()``.

    >>> class Shift(ParametrizedTransform):
    ...     def _call(self, x):
    ...         return x + self.params()[0]
    >>> Shift((torch.tensor(2.0),))(torch.tensor(1.0))
    tensor(3.)
    """

    def __init__(self, params: Params | Callable[[], Params] | None, cache_size: int = 1) -> None:
        super().__init__(cache_size=cache_size)
        self._params = params

    def params(self) -> Params:
        """The parameters in use now."""
        return self._params() if callable(self._params) else self._params


class HypernetConditional(ConditionalTransformModule):
    """A conditional flow: ``nn(context)`` returns ``count_params`` tensors, ``shape_params``
    reshapes them for the flow, and ``condition(context)`` gives
    ``conditioned(params, **options)``, which runs the network at each use. It maps real
    vectors unless a subclass says otherwise.
    """

    conditioned: type[ParametrizedTransform]
    count_params: int
    # Most of these flows map vectors; one that maps other shapes overrides both.
    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, nn: nn.Module, **options: Any) -> None:
        super().__init__()
        self.nn = nn
        self.options = options

    def shape_params(self, outputs: Params) -> Params:
        """The network's outputs in the shapes the flow reads (as they are, by default)."""
        return outputs

    def _params(self, context: torch.Tensor) -> Params:
        outputs = self.nn(context)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        if len(outputs) != self.count_params:
            raise ArgumentError(
                f"{type(self).__name__} needs its network to return {self.count_params} "
                f"tensors; it returned {len(outputs)}. Build it with {self.count_params} "
                "param_dims."
            )
        return self.shape_params(tuple(outputs))

    def condition(self, context: torch.Tensor) -> ParametrizedTransform:
        return self.conditioned(partial(self._params, context), **self.options)


def unflatten_last(output: torch.Tensor, shape: Sequence[int], owner: str) -> torch.Tensor:
    """``output``'s last dim reshaped to ``shape``, with a clear error when the sizes differ.

    >>> unflatten_last(torch.zeros(5, 6), (2, 3), "Flow").shape
    torch.Size([5, 2, 3])
    """
    if output.shape[-1] != _numel(shape):
        raise ArgumentError(
            f"{owner}: the network gave a parameter of {output.shape[-1]} entries where "
            f"{_numel(shape)} (shape {tuple(shape)}) are needed; give the network matching "
            "param_dims."
        )
    return output.reshape(*output.shape[:-1], *shape)


def _numel(shape: Sequence[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def dense_hypernet(
    context_dim: int, hidden_dims: Sequence[int], param_dims: Sequence[int]
) -> nn.Module:
    """A ``DenseNN`` from the context to flat parameters of ``param_dims`` entries each.

    >>> net = dense_hypernet(3, [8], [2, 1])
    >>> [out.shape for out in net(torch.zeros(3))]
    [torch.Size([2]), torch.Size([1])]
    """
    from engine.nn.dense_nn import DenseNN  # engine.nn imports engine.distributions at its top

    return DenseNN(context_dim, hidden_dims, param_dims=list(param_dims))


def uniform_parameter(*shape: int, scale: float) -> nn.Parameter:
    """A learnable tensor of ``shape`` drawn uniformly from ``(-scale, scale)``: how the small
    flows start their parameters (``scale = 1 / sqrt(input_dim)`` for most).

    >>> p = uniform_parameter(2, 3, scale=0.5)
    >>> p.shape, bool(p.abs().max() <= 0.5)
    (torch.Size([2, 3]), True)
    """
    return nn.Parameter(torch.empty(*shape).uniform_(-scale, scale))


def default_hidden_dims(
    hidden_dims: Sequence[int] | None, input_dim: int, layers: int = 2
) -> Sequence[int]:
    """``hidden_dims``, or the flows' default of ``layers`` hidden layers of
    ``10 * input_dim`` units when it is ``None``.

    >>> default_hidden_dims(None, 3), default_hidden_dims([7], 3), default_hidden_dims(None, 2, 1)
    ([30, 30], [7], [20])
    """
    return [10 * input_dim] * layers if hidden_dims is None else hidden_dims


def no_inverse(owner: str) -> NotImplementedError:
    """The error a flow without a closed-form inverse raises when asked to invert.

    >>> str(no_inverse("Planar")).startswith("Planar has no closed-form inverse")
    True
    """
    return NotImplementedError(
        f"{owner} has no closed-form inverse: use it where values are drawn "
        "through the flow (a guide, or log_prob of the flow's own draws)"
    )
