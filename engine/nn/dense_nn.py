"""Dense feed-forward networks that output several parameter tensors: Pyro's ``DenseNN`` and
``ConditionalDenseNN``, the hypernetworks of coupling and conditional flows.

The output layer is one ``Linear`` of ``sum(param_dims)`` units, cut into one tensor per entry of
``param_dims`` (each keeps its last dim, also when it is 1).

>>> net = DenseNN(2, [8], param_dims=[1, 3])
>>> a, b = net(torch.zeros(5, 2))
>>> a.shape, b.shape
(torch.Size([5, 1]), torch.Size([5, 3]))
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from engine.errors import ArgumentError


def check_layer_sizes(owner: str, hidden_dims: Sequence[int], param_dims: Sequence[int]) -> None:
    """Refuse hidden or output sizes no network can be built with, naming the network.

    >>> check_layer_sizes("DenseNN", [4], [0])
    Traceback (most recent call last):
    ...
    engine.errors.ArgumentError: DenseNN: param_dims [0] must be positive whole numbers, ...
    """
    if len(hidden_dims) == 0 or any(int(h) != h or h < 1 for h in hidden_dims):
        raise ArgumentError(
            f"{owner}: hidden_dims {list(hidden_dims)} must be a non-empty list of positive "
            "whole numbers, one size per hidden layer, e.g. [20, 20]."
        )
    if len(param_dims) == 0 or any(int(p) != p or p < 1 for p in param_dims):
        raise ArgumentError(
            f"{owner}: param_dims {list(param_dims)} must be positive whole numbers, one per "
            "parameter the network outputs, e.g. [1, 1] for a location and a log-scale."
        )


def split_outputs(
    h: torch.Tensor, param_dims: Sequence[int], dim: int
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Cut ``h`` along ``dim`` into one tensor per entry of ``param_dims`` (just ``h`` for one).

    >>> [t.shape for t in split_outputs(torch.zeros(4, 3), [1, 2], dim=-1)]
    [torch.Size([4, 1]), torch.Size([4, 2])]
    """
    if len(param_dims) == 1:
        return h
    return tuple(torch.split(h, list(param_dims), dim=dim))


class ConditionalDenseNN(nn.Module):
    """A dense network of ``input_dim + context_dim`` inputs (the context first) and
    ``sum(param_dims)`` outputs, split into ``len(param_dims)`` tensors.

    ``forward(x, context)`` broadcasts the context over the batch dims of ``x``.

    >>> net = ConditionalDenseNN(3, 2, [16], param_dims=[1, 3])
    >>> a, b = net(torch.zeros(10, 3), context=torch.zeros(2))
    >>> a.shape, b.shape
    (torch.Size([10, 1]), torch.Size([10, 3]))
    """

    def __init__(
        self,
        input_dim: int,
        context_dim: int,
        hidden_dims: Sequence[int],
        param_dims: Sequence[int] = (1, 1),
        nonlinearity: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_layer_sizes(type(self).__name__, hidden_dims, param_dims)
        self.input_dim = input_dim
        self.context_dim = context_dim
        self.hidden_dims = list(hidden_dims)
        self.param_dims = list(param_dims)
        self.count_params = len(self.param_dims)
        self.output_multiplier = sum(self.param_dims)
        sizes = [input_dim + context_dim, *self.hidden_dims, self.output_multiplier]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.f = nn.ReLU() if nonlinearity is None else nonlinearity

    def forward(
        self, x: torch.Tensor, context: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        context = context.expand(x.shape[:-1] + context.shape[-1:])
        return self._forward(torch.cat([context, x], dim=-1))

    def _forward(self, h: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        for layer in self.layers[:-1]:
            h = self.f(layer(h))
        return split_outputs(self.layers[-1](h), self.param_dims, dim=-1)


class DenseNN(ConditionalDenseNN):
    """A dense network of ``input_dim`` inputs and ``sum(param_dims)`` outputs, split into
    ``len(param_dims)`` tensors: ``SplineCoupling`` and ``conditional_spline`` use one to turn
    part of the input (or the context) into spline parameters.

    >>> net = DenseNN(4, [20, 20], param_dims=[6])
    >>> net(torch.zeros(7, 4)).shape
    torch.Size([7, 6])
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        param_dims: Sequence[int] = (1, 1),
        nonlinearity: nn.Module | None = None,
    ) -> None:
        super().__init__(input_dim, 0, hidden_dims, param_dims, nonlinearity)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:  # type: ignore[override]
        return self._forward(x)
