"""Autoregressive networks (MADE, Germain et al. 2015): Pyro's ``AutoRegressiveNN``,
``ConditionalAutoRegressiveNN`` and ``MaskedLinear``.

Each input variable gets a degree, its place in ``permutation`` plus one (the context, if any,
has degree 0). Every hidden unit gets a degree too, and a connection is kept only from a unit of
lower or equal degree into a hidden unit, and of strictly lower degree into an output. So the
outputs for variable ``i`` depend only on the variables before ``i`` in the permutation (and on
the context): the network's Jacobian is strictly triangular once the variables are put in that
order, which is what autoregressive flows need.

>>> net = AutoRegressiveNN(3, [12], permutation=torch.tensor([2, 0, 1]))
>>> loc, log_scale = net(torch.randn(5, 3))
>>> loc.shape
torch.Size([5, 3])
>>> bool((loc[:, 2] == loc[0, 2]).all())  # variable 2 comes first: it sees no input
True
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import ArgumentError
from engine.nn.dense_nn import check_layer_sizes


def hidden_degrees(count: int, lowest: int, highest: int) -> torch.Tensor:
    """Degrees for ``count`` hidden units, spread evenly over ``lowest..highest`` so each degree
    gets a unit whenever ``count`` is at least the number of degrees.

    >>> hidden_degrees(5, 1, 2)
    tensor([1, 1, 1, 2, 2])
    """
    span = max(highest - lowest + 1, 1)
    return lowest + torch.arange(count) * span // count


def made_masks(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int],
    permutation: torch.Tensor,
    output_multiplier: int,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The ``(out_features, in_features)`` masks of each layer, and of the input-to-output skip
    layer, for the degrees described in the module docstring.

    Output unit ``p * input_dim + i`` holds parameter ``p`` of variable ``i``.

    >>> masks, skip = made_masks(2, 0, [2], torch.tensor([0, 1]), 1)
    >>> skip  # variable 1 may see variable 0; variable 0 sees nothing
    tensor([[0., 0.],
            [1., 0.]])
    """
    device = permutation.device
    rank = torch.empty(input_dim, dtype=torch.long, device=device)
    rank[permutation] = torch.arange(input_dim, device=device)
    variable_degree = rank + 1
    context_degree = torch.zeros(context_dim, dtype=torch.long, device=device)
    input_degree = torch.cat([context_degree, variable_degree])
    # With a context, hidden units of degree 0 carry it to the first variable's outputs; without
    # one, a degree-0 unit would see nothing, so degrees start at 1.
    lowest = 0 if context_dim > 0 else 1
    degrees = [hidden_degrees(h, lowest, input_dim - 1).to(device) for h in hidden_dims]
    output_degree = variable_degree.repeat(output_multiplier)

    masks = [(degrees[0][:, None] >= input_degree[None, :]).float()]
    for previous, current in itertools.pairwise(degrees):
        masks.append((current[:, None] >= previous[None, :]).float())
    masks.append((output_degree[:, None] > degrees[-1][None, :]).float())
    skip_mask = (output_degree[:, None] > input_degree[None, :]).float()
    return masks, skip_mask


class MaskedLinear(nn.Linear):
    """A ``Linear`` layer whose weight is multiplied by a fixed 0/1 mask (a buffer).

    >>> layer = MaskedLinear(2, 1, torch.tensor([[1.0, 0.0]]))
    >>> with torch.no_grad():
    ...     _ = layer.weight.fill_(1.0), layer.bias.zero_()
    >>> layer(torch.tensor([3.0, 4.0]))
    tensor([3.], grad_fn=<ViewBackward0>)
    """

    def __init__(
        self, in_features: int, out_features: int, mask: torch.Tensor, bias: bool = True
    ) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", mask.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class ConditionalAutoRegressiveNN(nn.Module):
    """A MADE network over ``input_dim`` variables that also sees a ``context_dim`` context.

    ``forward(x, context)`` returns, for ``param_dims=[1, 1]`` (the default, a location and a
    log-scale per variable), two tensors shaped like ``x``; for other ``param_dims`` one tensor
    ``(..., p, input_dim)`` per entry ``p > 1`` (all entries 1: each ``(..., input_dim)``). The
    context broadcasts over the batch dims of ``x``.

    >>> net = ConditionalAutoRegressiveNN(3, 2, [12], param_dims=[1, 4])
    >>> a, b = net(torch.zeros(6, 3), context=torch.zeros(6, 2))
    >>> a.shape, b.shape
    (torch.Size([6, 1, 3]), torch.Size([6, 4, 3]))
    """

    def __init__(
        self,
        input_dim: int,
        context_dim: int,
        hidden_dims: Sequence[int],
        param_dims: Sequence[int] = (1, 1),
        permutation: torch.Tensor | None = None,
        skip_connections: bool = False,
        nonlinearity: nn.Module | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_layer_sizes(name, hidden_dims, param_dims)
        if any(h < input_dim for h in hidden_dims):
            raise ArgumentError(
                f"{name}: every hidden layer needs at least input_dim={input_dim} units so each "
                f"variable's outputs can reach the variables before it; got hidden_dims="
                f"{list(hidden_dims)}. Use e.g. hidden_dims=[{3 * input_dim + 1}]."
            )
        if input_dim == 1 and context_dim == 0:
            warnings.warn(
                f"{name} with input_dim=1: the single variable has nothing before it, so the "
                "outputs are constants learned by the biases. An affine transform does the same.",
                stacklevel=2,
            )
        self.input_dim = input_dim
        self.context_dim = context_dim
        self.hidden_dims = list(hidden_dims)
        self.param_dims = list(param_dims)
        self.count_params = len(self.param_dims)
        self.output_multiplier = sum(self.param_dims)

        if permutation is None:
            # A random order by default, so stacked flows do not all share one ordering.
            permutation = torch.randperm(input_dim)
        permutation = torch.as_tensor(permutation).long()
        if sorted(permutation.tolist()) != list(range(input_dim)):
            raise ArgumentError(
                f"{name}: permutation {permutation.tolist()} must hold each of 0..{input_dim - 1} "
                "exactly once."
            )
        self.register_buffer("permutation", permutation)

        masks, skip_mask = made_masks(
            input_dim, context_dim, self.hidden_dims, permutation, self.output_multiplier
        )
        sizes = [input_dim + context_dim, *self.hidden_dims, input_dim * self.output_multiplier]
        shapes = itertools.pairwise(sizes)
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, mask) for (a, b), mask in zip(shapes, masks, strict=True)
        )
        self.skip_layer = (
            MaskedLinear(sizes[0], sizes[-1], skip_mask, bias=False) if skip_connections else None
        )
        self.f = nn.ReLU() if nonlinearity is None else nonlinearity

    def get_permutation(self) -> torch.Tensor:
        """The order of the variables (variable ``permutation[0]`` depends on no other)."""
        return self.permutation

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if context is None:
            context = getattr(self, "context", None)
            if context is None:
                raise ArgumentError(
                    f"{type(self).__name__} needs a context: call it as net(x, context=c) "
                    f"with c of last dim {self.context_dim}."
                )
        context = context.expand(x.shape[:-1] + context.shape[-1:])
        return self._forward(torch.cat([context, x], dim=-1))

    def _forward(self, inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        h = inputs
        for layer in self.layers[:-1]:
            h = self.f(layer(h))
        h = self.layers[-1](h)
        if self.skip_layer is not None:
            h = h + self.skip_layer(inputs)
        if self.output_multiplier == 1:
            return h
        h = h.reshape((*h.shape[:-1], self.output_multiplier, self.input_dim))
        if self.count_params == 1:
            return h
        if self.output_multiplier == self.count_params:  # every entry of param_dims is 1
            return h.unbind(-2)
        return tuple(torch.split(h, self.param_dims, dim=-2))


class AutoRegressiveNN(ConditionalAutoRegressiveNN):
    """A MADE network over ``input_dim`` variables: ``AffineAutoregressive`` reads a location
    and a log-scale per variable from it.

    >>> net = AutoRegressiveNN(4, [9], param_dims=[1])
    >>> net(torch.zeros(2, 4)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        param_dims: Sequence[int] = (1, 1),
        permutation: torch.Tensor | None = None,
        skip_connections: bool = False,
        nonlinearity: nn.Module | None = None,
    ) -> None:
        super().__init__(
            input_dim, 0, hidden_dims, param_dims, permutation, skip_connections, nonlinearity
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:  # type: ignore[override]
        return self._forward(x)
