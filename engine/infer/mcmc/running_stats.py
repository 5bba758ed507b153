"""Statistics kept while draws stream past, for :class:`~engine.infer.mcmc.api.StreamingMCMC`:
each takes one value at a time (``update``), combines with another of its kind (``merge``, a
new object: two chains pooled) and reports a dict (``get``). They are the same protocol as
Pyro's streaming statistics, so either kind can be handed to ``StreamingMCMC(statistics=...)``.

>>> import torch
>>> stats = StatsOfDict({"x": CountMeanVarianceStats}, default=CountStats)
>>> for value in (1.0, 2.0, 4.0):
...     stats.update({"x": torch.tensor(value), "y": torch.zeros(3)})
>>> stats.get()["x"]["variance"], stats.get()["y"]
(tensor(2.3333), {'count': 3})
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import Any

import torch

from engine.infer.mcmc.mass_matrix import WelfordCovariance


class StreamingStats(ABC):
    """A statistic of a stream of values."""

    @abstractmethod
    def update(self, sample: Any) -> None:
        """Take in one more value."""

    @abstractmethod
    def merge(self, other: StreamingStats) -> StreamingStats:
        """A new statistic of both streams (``self`` and ``other`` stay as they are)."""

    @abstractmethod
    def get(self) -> dict[str, Any]:
        """The statistic so far."""

    def _check_same_kind(self, other: StreamingStats) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(self).__name__} with {type(other).__name__}")


class CountStats(StreamingStats):
    """How many values came (the cheapest statistic).

    >>> stats = CountStats(); stats.update(None); stats.merge(stats).get()
    {'count': 2}
    """

    def __init__(self):
        self.count = 0

    def update(self, sample: Any) -> None:
        self.count += 1

    def merge(self, other: StreamingStats) -> CountStats:
        self._check_same_kind(other)
        merged = CountStats()
        merged.count = self.count + other.count
        return merged

    def get(self) -> dict[str, Any]:
        return {"count": self.count}


class CountMeanStats(StreamingStats):
    """Count and elementwise mean of tensors of one shape.

    >>> stats = CountMeanStats()
    >>> for value in ([0.0, 2.0], [2.0, 6.0]):
    ...     stats.update(torch.tensor(value))
    >>> stats.get()
    {'count': 2, 'mean': tensor([1., 4.])}
    """

    def __init__(self):
        self.count = 0
        self.total: torch.Tensor | float = 0.0

    def update(self, sample: torch.Tensor) -> None:
        self.count += 1
        self.total = self.total + sample.detach()

    def merge(self, other: StreamingStats) -> CountMeanStats:
        self._check_same_kind(other)
        merged = CountMeanStats()
        merged.count, merged.total = self.count + other.count, self.total + other.total
        return merged

    def get(self) -> dict[str, Any]:
        if self.count == 0:
            return {"count": 0}
        return {"count": self.count, "mean": self.total / self.count}


class CountMeanVarianceStats(StreamingStats):
    """Count, elementwise mean and variance (with Bessel's correction) of tensors of one shape,
    by Welford's update (:class:`~engine.infer.mcmc.mass_matrix.WelfordCovariance`, the
    estimator warm-up adapts the mass matrix with).

    >>> stats = CountMeanVarianceStats()
    >>> for value in (1.0, 2.0, 4.0):
    ...     stats.update(torch.tensor(value))
    >>> stats.get()
    {'count': 3, 'mean': tensor(2.3333), 'variance': tensor(2.3333)}
    """

    def __init__(self):
        self._estimate: WelfordCovariance | None = None
        self._shape: torch.Size | None = None

    def update(self, sample: torch.Tensor) -> None:
        sample = sample.detach()
        if self._estimate is None:
            self._shape = sample.shape
            self._estimate = WelfordCovariance(
                1, sample.numel(), dense=False, dtype=sample.dtype, device=sample.device
            )
        self._estimate.update(sample.reshape(1, -1))

    def merge(self, other: StreamingStats) -> CountMeanVarianceStats:
        self._check_same_kind(other)
        merged = CountMeanVarianceStats()
        if self._estimate is None or other._estimate is None:
            source = self if other._estimate is None else other
            merged._shape = source._shape
            merged._estimate = None if source._estimate is None else copy.copy(source._estimate)
            return merged
        merged._shape = self._shape
        merged._estimate = self._estimate.merged(other._estimate)
        return merged

    def get(self) -> dict[str, Any]:
        if self._estimate is None:
            return {"count": 0}
        estimate, shape = self._estimate, self._shape
        return {
            "count": estimate.count,
            "mean": estimate.mean[0].reshape(shape),
            "variance": estimate.covariance(regularize=False)[0].reshape(shape),
        }


class StackStats(StreamingStats):
    """Every value, stacked along a new first dim (no saving of memory: for checks).

    >>> stats = StackStats()
    >>> stats.update(torch.tensor(1.0)); stats.update(torch.tensor(2.0))
    >>> stats.get()
    {'count': 2, 'samples': tensor([1., 2.])}
    """

    def __init__(self):
        self.samples: list[torch.Tensor] = []

    def update(self, sample: torch.Tensor) -> None:
        self.samples.append(sample.detach())

    def merge(self, other: StreamingStats) -> StackStats:
        self._check_same_kind(other)
        merged = StackStats()
        merged.samples = self.samples + other.samples
        return merged

    def get(self) -> dict[str, Any]:
        if not self.samples:
            return {"count": 0}
        return {"count": len(self.samples), "samples": torch.stack(self.samples)}


class StatsOfDict(StreamingStats):
    """Statistics of dict-valued samples, one statistic per key: ``types[key]`` makes the
    statistic of that key, ``default`` that of every other key (its count only, by default)."""

    def __init__(
        self,
        types: dict[Hashable, Callable[[], StreamingStats]] | None = None,
        default: Callable[[], StreamingStats] = CountStats,
    ):
        self.types = dict(types or {})
        self.default = default
        self.stats: dict[Hashable, StreamingStats] = {}

    def update(self, sample: dict[Hashable, Any]) -> None:
        for key, value in sample.items():
            if key not in self.stats:
                self.stats[key] = self.types.get(key, self.default)()
            self.stats[key].update(value)

    def merge(self, other: StreamingStats) -> StatsOfDict:
        self._check_same_kind(other)
        merged = StatsOfDict(self.types, self.default)
        for key in {**self.stats, **other.stats}:
            mine, theirs = self.stats.get(key), other.stats.get(key)
            if mine is None or theirs is None:
                merged.stats[key] = copy.deepcopy(mine if theirs is None else theirs)
            else:
                merged.stats[key] = mine.merge(theirs)
        return merged

    def get(self) -> dict[Hashable, dict[str, Any]]:
        return {key: stats.get() for key, stats in self.stats.items()}


__all__ = [
    "CountMeanStats",
    "CountMeanVarianceStats",
    "CountStats",
    "StackStats",
    "StatsOfDict",
    "StreamingStats",
]
