"""Kingman's coalescent: the times at which the lineages of sampled leaves merge, looking back.

Time runs backwards from the latest leaf. Between events, ``k`` lineages merge at total rate
``rate(t) * k * (k - 1) / 2``; a leaf's sampling time adds a lineage. ``N`` leaves give ``N - 1``
coalescence times (a complete binary tree). The density of the times (topology summed out) is

``prod_i rate(c_i) * C(k_i, 2)  *  exp(-integral of rate(t) * C(k(t), 2) dt)``

with ``k_i`` the lineages just before coalescence ``i``. :class:`CoalescentTimes` has a constant
rate and draws; :class:`CoalescentTimesWithRate` has a rate piecewise constant on unit intervals
``(-inf, 1], [1, 2], ..., [T-1, inf)`` and evaluates densities only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.util import broadcast_shape


def _events(leaf_times: torch.Tensor, coal_times: torch.Tensor):
    """Leaves and coalescences merged, latest first (a leaf before a coalescence at a tie).

    Returns ``(times, is_coal, k_after)``, each of shape ``(..., 2N - 1)``.
    """
    shape = broadcast_shape(leaf_times.shape[:-1], coal_times.shape[:-1])
    leaf_times = leaf_times.expand(shape + leaf_times.shape[-1:])
    coal_times = coal_times.expand(shape + coal_times.shape[-1:])
    times = torch.cat([leaf_times, coal_times], -1)
    step = torch.cat([torch.ones_like(leaf_times), -torch.ones_like(coal_times)], -1)
    order = times.argsort(dim=-1, descending=True, stable=True)  # stable: leaves first at ties
    times = times.gather(-1, order)
    step = step.gather(-1, order)
    return times, step < 0, step.cumsum(-1)


def _pairs(k: torch.Tensor) -> torch.Tensor:
    return k * (k - 1) / 2


class CoalescentTimesConstraint(constraints.Constraint):
    """Coalescence times possible for the given leaves: at each one, two lineages exist."""

    event_dim = 1

    def __init__(self, leaf_times: torch.Tensor):
        self.leaf_times = leaf_times
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        _, is_coal, k_after = _events(self.leaf_times, value)
        return (~is_coal | (k_after >= 1)).all(-1) & (value == value).all(-1)

    def plain_words(self) -> tuple[str, str]:
        return (
            "coalescence times each preceded (looking back) by at least two lineages",
            "draw them from CoalescentTimes(leaf_times), or place each coalescence before the "
            "leaves whose lineages it merges",
        )


class _CoalescentBase(TorchDistribution):
    has_rsample = False

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> constraints.Constraint:
        return CoalescentTimesConstraint(self.leaf_times)

    def _rate_at(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _integral(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        times, is_coal, k_after = _events(self.leaf_times, value)
        k_before = k_after + 1
        valid = (~is_coal | (k_after >= 1)).all(-1)
        coal = torch.where(
            is_coal, (self._rate_at(times) * _pairs(k_before).clamp(min=1)).log(), 0.0
        ).sum(-1)
        spans = self._integral(times[..., :-1]) - self._integral(times[..., 1:])
        survival = (_pairs(k_after[..., :-1]) * spans).sum(-1)
        return torch.where(valid, coal - survival, -torch.inf)


class CoalescentTimes(_CoalescentBase):
    """Sorted coalescence times of ``N`` leaves under a constant pairwise ``rate``.

    A draw has shape ``batch_shape + (N - 1,)``, sorted increasingly; ``leaf_times`` may come in
    any order, with ties.

    :param leaf_times: ``(..., N)`` sampling times of the leaves.
    :param rate: pairwise coalescence rate (a constant population size), default 1.

    >>> d = CoalescentTimes(torch.zeros(2))  # two lineages merge at rate 1, looking back
    >>> d.log_prob(torch.tensor([-0.5]))  # Exponential(1) density of the 0.5 back
    tensor(-0.5000)
    """

    arg_constraints = {"leaf_times": constraints.real, "rate": constraints.positive}

    def __init__(self, leaf_times, rate=1.0, *, validate_args=None):
        self.leaf_times = torch.as_tensor(leaf_times)
        self.rate = torch.as_tensor(rate, dtype=self.leaf_times.dtype)
        batch_shape = broadcast_shape(self.leaf_times.shape[:-1], self.rate.shape)
        event_shape = (self.leaf_times.size(-1) - 1,)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def _rate_at(self, t):
        return self.rate.unsqueeze(-1).expand(t.shape)

    def _integral(self, t):
        return self.rate.unsqueeze(-1) * t

    def sample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            leaves = self.leaf_times.expand(shape + self.leaf_times.shape[-1:])
            leaves = leaves.sort(-1, descending=True).values
            rate = self.rate.expand(shape)
            n = leaves.size(-1)
            t = leaves[..., 0]
            k = torch.zeros(shape, dtype=torch.long)
            next_leaf = torch.zeros(shape, dtype=torch.long)
            num_coal = torch.zeros(shape, dtype=torch.long)
            out = leaves.new_zeros((*shape, n))  # one spare slot takes the no-ops
            for _ in range(2 * n - 1):
                leaf_time = leaves.gather(-1, next_leaf.clamp(max=n - 1).unsqueeze(-1))[..., 0]
                has_leaf = next_leaf < n
                wait = torch.empty_like(t).exponential_() / (
                    rate * _pairs(k.to(t.dtype)).clamp(min=1)
                )
                merge_time = torch.where(k >= 2, t - wait, -torch.inf)
                take_leaf = has_leaf & (leaf_time >= merge_time)
                merge = ~take_leaf & (k >= 2)
                slot = torch.where(merge, num_coal, n - 1)
                out = out.scatter(-1, slot.unsqueeze(-1), merge_time.unsqueeze(-1))
                t = torch.where(take_leaf, leaf_time, torch.where(merge, merge_time, t))
                k = k + take_leaf.long() - merge.long()
                next_leaf = next_leaf + take_leaf.long()
                num_coal = num_coal + merge.long()
            return out[..., : n - 1].sort(-1).values


class CoalescentTimesWithRate(_CoalescentBase):
    """Coalescence times of ``N`` leaves under a pairwise rate piecewise constant in time.

    ``rate_grid[..., j]`` is the rate on ``[j, j + 1]``; the first value extends to ``-inf`` and
    the last to ``+inf``. Only :meth:`log_prob` is available (no draws).

    :param leaf_times: ``(..., N)`` sampling times of the leaves.
    :param rate_grid: ``(..., T)`` pairwise rates; batch dims broadcast with ``leaf_times``'.

    >>> d = CoalescentTimesWithRate(torch.zeros(2), torch.tensor([1.0, 4.0]))
    >>> d.log_prob(torch.tensor([-0.5]))  # rate 1 before time 1
    tensor(-0.5000)
    """

    arg_constraints = {"leaf_times": constraints.real, "rate_grid": constraints.positive}

    def __init__(self, leaf_times, rate_grid, *, validate_args=None):
        self.leaf_times = torch.as_tensor(leaf_times)
        self.rate_grid = torch.as_tensor(rate_grid, dtype=self.leaf_times.dtype)
        batch_shape = broadcast_shape(self.leaf_times.shape[:-1], self.rate_grid.shape[:-1])
        event_shape = (self.leaf_times.size(-1) - 1,)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def duration(self) -> int:
        """The number ``T`` of unit time steps in ``rate_grid``."""
        return self.rate_grid.size(-1)

    def _cell(self, t):
        return t.detach().floor().clamp(0, self.duration - 1).long()

    def _grid_at(self, grid, cell):
        shape = broadcast_shape(grid.shape[:-1], cell.shape[:-1])
        return grid.expand(shape + grid.shape[-1:]).gather(-1, cell.expand(shape + cell.shape[-1:]))

    def _rate_at(self, t):
        return self._grid_at(self.rate_grid, self._cell(t))

    def _integral(self, t):
        # F(t) = int_0^t rate: linear within each cell, so start-of-cell value plus a slope.
        starts = torch.cat(
            [self.rate_grid.new_zeros((*self.rate_grid.shape[:-1], 1)), self.rate_grid], -1
        ).cumsum(-1)[..., :-1]
        cell = self._cell(t)
        return self._grid_at(starts, cell) + self._grid_at(self.rate_grid, cell) * (t - cell)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(CoalescentTimesWithRate, _instance)
        shape = torch.Size(batch_shape)
        new.leaf_times = self.leaf_times.expand(shape + self.leaf_times.shape[-1:])
        new.rate_grid = self.rate_grid.expand(shape + self.rate_grid.shape[-1:])
        super(CoalescentTimesWithRate, new).__init__(shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


class CoalescentRateLikelihood:
    """:class:`CoalescentTimesWithRate`'s log density split into one term per time cell.

    Not a distribution: built once from fixed ``leaf_times`` and ``coal_times``, it is called
    with a rate grid (or one cell's rate and its index ``t``) and returns that cell's share of
    ``log p(coal_times | leaf_times, rate_grid)``, so the rates can sit under a ``plate`` or in
    a ``markov`` loop over time. Cell ``j`` is ``[j, j + 1]``; the first reaches back to ``-inf``
    and the last on to ``+inf``. Summed over all ``duration`` cells it equals
    ``CoalescentTimesWithRate(leaf_times, rate_grid).log_prob(coal_times)``.

    >>> leaves, coals = torch.zeros(2), torch.tensor([-0.5])
    >>> CoalescentRateLikelihood(leaves, coals, 2)(torch.tensor([1.0, 3.0]))
    tensor([-0.5000,  0.0000])
    """

    def __init__(self, leaf_times, coal_times, duration: int, *, validate_args=None):
        leaf_times = torch.as_tensor(leaf_times)
        coal_times = torch.as_tensor(coal_times, dtype=leaf_times.dtype)
        if validate_args:
            valid = CoalescentTimesConstraint(leaf_times).check(coal_times)
            if not valid.all():
                raise ValueError(
                    "CoalescentRateLikelihood: some coal_times merge fewer than two lineages; "
                    "each coalescence must lie before (looking back) the leaves it merges"
                )
        self.duration = duration
        times, is_coal, k_after = _events(leaf_times, coal_times)
        edges = torch.arange(1, duration, dtype=times.dtype)
        inf = torch.tensor([torch.inf], dtype=times.dtype)
        lo = torch.cat([-inf, edges])
        hi = torch.cat([edges, inf])
        cell = times.floor().clamp(0, duration - 1).long()
        one_hot = torch.nn.functional.one_hot(cell, duration).to(times.dtype)
        coal = is_coal.to(times.dtype).unsqueeze(-1) * one_hot
        self._num_coal = coal.sum(-2)
        log_pairs = _pairs(k_after + 1).clamp(min=1).log().unsqueeze(-1)
        self._log_pairs = (coal * log_pairs).sum(-2)
        upper = times[..., :-1, None].clamp(max=hi)
        lower = times[..., 1:, None].clamp(min=lo)
        overlap = (upper - lower).clamp(min=0)
        self._exposure = (_pairs(k_after[..., :-1]).unsqueeze(-1) * overlap).sum(-2)

    def __call__(self, rate_grid: torch.Tensor, t=slice(None)) -> torch.Tensor:
        """The log-likelihood terms of cells ``t`` (all by default) under ``rate_grid``
        (the rates of those cells)."""
        return (
            self._num_coal[..., t] * rate_grid.log()
            - rate_grid * self._exposure[..., t]
            + self._log_pairs[..., t]
        )


def bio_phylo_to_times(
    tree: Any, *, get_time: Callable[[Any], float] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampling times of a phylogeny's leaves and the times of its coalescences, in the form
    :class:`CoalescentTimes` and :class:`CoalescentRateLikelihood` take.

    ``tree`` is a ``Bio.Phylo`` tree (or its root clade): anything whose clades have ``clades``
    (the children) and ``branch_length``. A node's time is the sum of the branch lengths from the
    root down to it (a missing length counts 1), or ``get_time(clade)`` when given. A node with
    ``k`` children stands for ``k - 1`` binary coalescences at its time.

    >>> from types import SimpleNamespace as Clade
    >>> leaf = lambda length: Clade(clades=[], branch_length=length)
    >>> root = Clade(clades=[leaf(2.0), Clade(clades=[leaf(1.0), leaf(0.5)], branch_length=1.0)],
    ...              branch_length=0.0)
    >>> leaves, coalescences = bio_phylo_to_times(root)
    >>> sorted(leaves.tolist()), sorted(coalescences.tolist())
    ([1.5, 2.0, 2.0], [0.0, 1.0])
    """

    def branch(clade: Any) -> float:
        return 1.0 if clade.branch_length is None else float(clade.branch_length)

    root = getattr(tree, "root", tree)
    leaf_times: list[float] = []
    coal_times: list[float] = []
    pending = [(root, branch(root))]
    while pending:
        clade, depth = pending.pop()
        time = depth if get_time is None else get_time(clade)
        children = list(clade.clades)
        if children:
            coal_times.extend([time] * (len(children) - 1))
            pending.extend((child, depth + branch(child)) for child in children)
        else:
            leaf_times.append(time)
    return torch.tensor(leaf_times), torch.tensor(coal_times)
