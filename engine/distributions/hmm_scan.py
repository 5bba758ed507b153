"""Contracting a chain of per-step factors in logarithmic depth (the HMMs' forward algorithm).

A hidden Markov model's likelihood is a product of per-step factors ``f_t(z_{t-1}, z_t)``
integrated (or summed) over every hidden state. Combining neighbours pairwise,
``(f_0 f_1)(f_2 f_3)...``, and repeating on the halved sequence eliminates the time axis in
``ceil(log2 T)`` rounds of batched work instead of ``T`` sequential steps (the temporal
parallelization of Sarkka and Garcia-Fernandez, 2019). Combination is associative but not
commutative, so an odd step out waits at the end of its round.

:func:`reduce_time` is the generic round structure; :func:`contract_chain` applies it to the
Gaussian and Gamma-Gaussian factors, whose steps are factors over ``(z_{t-1}, z_t)``.

>>> import torch
>>> steps = torch.tensor([[[1.0, 2.0], [0.0, 1.0]]]).expand(5, 2, 2)  # five shear matrices
>>> reduce_time(steps, 5, torch.matmul, lambda x, i: x[i], lambda a, b: torch.cat([a, b]))
tensor([[ 1., 10.],
        [ 0.,  1.]])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


def reduce_time(
    steps: T,
    num_steps: int,
    combine: Callable[[T, T], T],
    take: Callable[[T, Any], T],
    join: Callable[[T, T], T],
) -> T:
    """Fold ``num_steps`` steps with the associative ``combine``, pairing neighbours each round.

    ``take(steps, index)`` selects steps (a slice keeps the time axis, an int drops it) and
    ``join(a, b)`` concatenates two runs of steps along time.
    """
    if num_steps < 1:
        raise ValueError("reduce_time needs at least one step")
    while num_steps > 1:
        half = num_steps // 2
        even = take(steps, slice(0, 2 * half, 2))
        odd = take(steps, slice(1, 2 * half, 2))
        paired = combine(even, odd)
        if num_steps % 2:
            paired = join(paired, take(steps, slice(num_steps - 1, num_steps)))
        steps, num_steps = paired, half + num_steps % 2
    return take(steps, 0)


class ChainFactor(Protocol):
    """What :func:`contract_chain` needs of a factor type."""

    def pad(self, left: int = 0, right: int = 0) -> ChainFactor: ...
    def marginalize(self, start: int, stop: int) -> ChainFactor: ...
    def with_time(self, num_steps: int) -> ChainFactor: ...
    def take(self, index: Any) -> ChainFactor: ...
    def join(self, other: ChainFactor) -> ChainFactor: ...
    def __add__(self, other: ChainFactor) -> ChainFactor: ...


F = TypeVar("F", bound=ChainFactor)


def link(first: F, second: F, hidden_dim: int) -> F:
    """Combine a factor over ``(a, b)`` and one over ``(b, c)`` into one over ``(a, c)`` by
    integrating the shared state ``b`` out."""
    h = hidden_dim
    return (first.pad(right=h) + second.pad(left=h)).marginalize(h, 2 * h)


def contract_chain(steps: F, num_steps: int, hidden_dim: int) -> F:
    """The factor over ``(z_{-1}, z_{T-1})`` of a chain of step factors over
    ``(z_{t-1}, z_t)`` stacked along their last batch dim (of size 1 when homogeneous)."""
    return reduce_time(
        steps.with_time(num_steps),
        num_steps,
        lambda a, b: link(a, b, hidden_dim),
        lambda f, index: f.take(index),
        lambda a, b: type(a).join(a, b),
    )


def absorb_initial(initial: F, chain: F, hidden_dim: int) -> F:
    """Integrate the initial state out of ``initial(z_{-1}) chain(z_{-1}, z_{T-1})``: a factor
    over the final state."""
    return (initial.pad(right=hidden_dim) + chain).marginalize(0, hidden_dim)
