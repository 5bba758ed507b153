"""Quantiles of draws, plain (``quantile``) and importance-weighed (``weighed_quantile``): the
summaries that go with ``Predictive`` and ``WeighedPredictive`` (Pyro's ``pyro.ops.stats``).

>>> import torch
>>> draws = torch.tensor([3.0, 1.0, 2.0, 4.0])
>>> quantile(draws, [0.0, 0.5, 1.0])
tensor([1.0000, 2.5000, 4.0000])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _probs_tensor(probs: float | Sequence[float] | torch.Tensor, like: torch.Tensor):
    return torch.as_tensor(probs, dtype=like.dtype, device=like.device)


def quantile(
    input: torch.Tensor, probs: float | Sequence[float] | torch.Tensor, dim: int = 0
) -> torch.Tensor:
    """The quantiles of ``input`` along ``dim`` at ``probs``, interpolated linearly between the
    sorted draws; the quantiles take the place of ``dim`` (it is dropped for a scalar
    ``probs``).

    >>> import torch
    >>> quantile(torch.tensor([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0]]), 0.25)
    tensor([ 0.5000, 15.0000])
    """
    p = _probs_tensor(probs, input)
    result = torch.quantile(input, p.reshape(-1), dim=dim).movedim(0, dim)
    return result.squeeze(dim) if p.dim() == 0 else result


def weighed_quantile(
    input: torch.Tensor,
    probs: Sequence[float] | torch.Tensor,
    log_weights: torch.Tensor,
    dim: int = 0,
) -> torch.Tensor:
    """The quantiles at ``probs`` of draws ``input`` (along ``dim``) that carry importance
    weights ``exp(log_weights)`` (one per draw; they need not be normalised).

    The sorted draws are placed on [0, 1] by their cumulative weight (the smallest draw at 0,
    the largest at 1) and each quantile is interpolated linearly between the two draws around
    its probability. The quantiles take the place of ``dim``.

    >>> import torch
    >>> draws = torch.tensor([10.0, 50.0, 40.0])
    >>> weighed_quantile(draws, [0.2, 0.8], torch.tensor([0.4, 0.5, 0.1]).log())
    tensor([40.4000, 47.6000])
    """
    dim = dim % input.dim()
    p = _probs_tensor(probs, input).reshape(-1)
    weights = (log_weights - log_weights.logsumexp(0)).exp()
    sorted_input, order = input.sort(dim)
    cumulative = weights[order].cumsum(dim)
    low = cumulative.amin(dim, keepdim=True)
    cumulative = (cumulative - low) / (cumulative.amax(dim, keepdim=True) - low)
    # For each probability, the first sorted draw whose position lies above it, and the one
    # before it: the quantile lies between them.
    positions = cumulative.movedim(dim, -1).unsqueeze(-1)  # (..., n, 1)
    above = (positions <= p).sum(-2).clamp(max=input.shape[dim] - 1)  # (..., P)
    below = (above - 1).clamp(min=0)
    values = sorted_input.movedim(dim, -1)
    places = cumulative.movedim(dim, -1)
    x_below, x_above = values.gather(-1, below), values.gather(-1, above)
    c_below, c_above = places.gather(-1, below), places.gather(-1, above)
    span = c_above - c_below
    t = torch.where(span > 0, (p - c_below) / span.clamp(min=torch.finfo(span.dtype).tiny), 0.0)
    return (x_below + t * (x_above - x_below)).movedim(-1, dim)
