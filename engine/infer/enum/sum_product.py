"""Exact marginalisation of enumerated sites: variable elimination over factors that live in
different plates.

Each sample site's log-density becomes a :class:`Factor`: a tensor with one *label* per dim, the
name of a plate or of an enumerated site (enum dims are recycled under ``markov``, so a dim alone
does not say which site it holds; the label does). :func:`contract` then eliminates the
enumerated sites the way tensor variable elimination for plated factor graphs does: take the
plates with the most plates first; at a set of plates, sum out (log-sum-exp, or max) the sites
that live exactly there, one at a time in the order that keeps tensors smallest; the result may
still depend on sites of fewer plates, so multiply it out over the plates those sites are not in
(a sum of logs, times the plate's subsampling scale) and hand it down to their plates.

A site's ``scale`` that is not a vectorised plate's subsampling factor (``poutine.scale``, a
sequential plate's subsampling) travels with its factor and multiplies the log-density once the
enumerated sites are summed out, as long as the factors combined share it (so a mini-batch scale
keeps its meaning); factors of different scales are combined with each scale applied to its own
log-density first (tempering).

>>> import torch
>>> prior = Factor(torch.tensor([0.3, 0.7]).log(), ("z",), ("z",))
>>> likelihood = Factor(torch.tensor([0.9, 0.2]).log(), ("z",), ("x",))
>>> [total] = contract([prior, likelihood], {"z": Variable(2, frozenset())}, {}, {"z"})
>>> round(total.tensor.exp().item(), 2)  # 0.3 * 0.9 + 0.7 * 0.2
0.41
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch

from engine.errors import EnumerationError

Scale = float | torch.Tensor


@dataclass(frozen=True)
class Variable:
    """An enumerated site: how many values it has, the plates it lives in, and whether it was
    drawn inside ``markov`` (then its dim may be recycled once later sites stop seeing it)."""

    size: int
    plates: frozenset[str]
    windowed: bool = False
    sampled: bool = False  # ``num_samples`` draws (Tensor Monte Carlo), not its whole support


@dataclass(frozen=True)
class Plate:
    """A vectorised plate: its size in this run and its subsampling scale (full size / size)."""

    size: int
    scale: float = 1.0


@dataclass(frozen=True, eq=False)  # compared by identity: tensors have no truth value
class Factor:
    """A log-density tensor whose dims are named by ``labels`` (plates or enumerated sites), with
    the sites it came from (for error messages) and its non-plate ``scale``."""

    tensor: torch.Tensor
    labels: tuple[str, ...]
    sites: tuple[str, ...]
    scale: Scale = 1.0

    def plates(self, plates: dict[str, Plate]) -> frozenset[str]:
        return frozenset(label for label in self.labels if label in plates)


@dataclass(frozen=True)
class Elimination:
    """One eliminated site, for :mod:`engine.infer.enum.discrete`: the combined log-density
    ``table`` (the site's label last) before the site was summed or maximised out."""

    name: str
    table: Factor


def align(factors: Iterable[Factor]) -> tuple[tuple[str, ...], list[torch.Tensor]]:
    """The union of the factors' labels and each tensor viewed so that they broadcast on it.

    >>> i, j = Factor(torch.zeros(2), ("i",), ()), Factor(torch.zeros(3), ("j",), ())
    >>> labels, (a, b) = align([i, j])
    >>> labels, a.shape, b.shape
    (('i', 'j'), torch.Size([2, 1]), torch.Size([1, 3]))
    """
    factors = list(factors)
    labels: list[str] = []
    for factor in factors:
        labels.extend(label for label in factor.labels if label not in labels)
    tensors = []
    for factor in factors:
        order = sorted(range(len(factor.labels)), key=lambda i: labels.index(factor.labels[i]))
        tensor = factor.tensor.permute(order) if order != sorted(order) else factor.tensor
        shape = [1] * len(labels)
        for axis in order:
            shape[labels.index(factor.labels[axis])] = factor.tensor.shape[axis]
        tensors.append(tensor.reshape(shape))
    return tuple(labels), tensors


def _same_scale(a: Scale, b: Scale) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return bool(torch.equal(torch.as_tensor(a), torch.as_tensor(b)))
    return a == b


def _scaled(factor: Factor) -> torch.Tensor:
    scale = factor.scale
    if isinstance(scale, float | int) and scale == 1:
        return factor.tensor
    return factor.tensor * scale


def combine(factors: list[Factor]) -> Factor:
    """The product of ``factors`` (a sum of log-densities) as one factor."""
    if len(factors) == 1:
        return factors[0]
    sites = tuple(site for factor in factors for site in factor.sites)
    common = all(_same_scale(f.scale, factors[0].scale) for f in factors[1:])
    if common:
        labels, tensors = align(factors)
        scale = factors[0].scale
    else:
        labels, tensors = align(replace(f, tensor=_scaled(f), scale=1.0) for f in factors)
        scale = 1.0
    return Factor(_sum(tensors), labels, sites, scale)


def _sum(tensors: list[torch.Tensor]) -> torch.Tensor:
    total = tensors[0]
    for tensor in tensors[1:]:
        total = total + tensor
    return total


def reduce_plates(factor: Factor, names: Iterable[str], plates: dict[str, Plate]) -> Factor:
    """Multiply ``factor`` out over the plates ``names``: sum its log-density over their dims,
    times their subsampling factors. The factor's own scale stays with it, for later."""
    names = [name for name in names if name in factor.labels]
    if not names:
        return factor
    tensor = factor.tensor.sum([factor.labels.index(name) for name in names])
    for name in names:
        if plates[name].scale != 1:
            tensor = tensor * plates[name].scale
    labels = tuple(label for label in factor.labels if label not in names)
    return Factor(tensor, labels, factor.sites, factor.scale)


def plate_total(factor: Factor, plates: dict[str, Plate], keep: str | None = None) -> torch.Tensor:
    """A factor with no enumerated site left, summed over its plates and scaled: its share of
    the log-density. With ``keep``, that plate's dim is kept (one total per element; a factor
    that does not run along it gives one total for all).

    >>> plate_total(Factor(torch.ones(3), ("data",), ("x",), 0.5), {"data": Plate(3, 2.0)})
    tensor(3.)
    >>> chains_by_data = Factor(torch.ones(2, 3), ("chains", "data"), ("x",))
    >>> plate_total(chains_by_data, {"chains": Plate(2), "data": Plate(3)}, keep="chains")
    tensor([3., 3.])
    """
    summed = [label for label in factor.labels if label != keep]
    return _scaled(reduce_plates(factor, summed, plates))


def _table_size(factors: list[Factor]) -> int:
    """The number of entries of the table that combining ``factors`` would build."""
    sizes: dict[str, int] = {}
    for factor in factors:
        sizes.update(zip(factor.labels, factor.tensor.shape, strict=True))
    cost = 1
    for size in sizes.values():
        cost *= size
    return cost


def _eliminate_all(
    factors: list[Factor],
    names: set[str],
    semiring: str,
    record: Callable[[Elimination], None] | None,
) -> list[Factor]:
    """Sum (or max) ``names`` out of ``factors``, one site at a time, cheapest first.

    Each site's cost (the size of the table its elimination builds) is kept up to date as
    factors come and go, and only for the sites of the table just built: recomputing every cost
    at every step is cubic in the number of sites, which a long HMM (and torch.compile, tracing
    every step in Python) pays dearly.
    """
    live = dict(enumerate(factors))  # insertion order: the order the factors are combined in
    next_key = len(factors)
    touching: dict[str, list[int]] = {name: [] for name in names}
    for key, factor in live.items():
        for label in factor.labels:
            if label in touching:
                touching[label].append(key)
    costs = {name: _table_size([live[key] for key in keys]) for name, keys in touching.items()}
    while costs:
        # (cost, name) pairs rather than min(..., key=...), which torch.compile cannot trace.
        _, name = min([(cost, n) for n, cost in costs.items()])
        del costs[name]
        keys = touching.pop(name)
        if not keys:
            continue  # a site with a single value: nothing depends on which
        table = combine([live.pop(key) for key in keys])
        axis = table.labels.index(name)
        if record is not None:
            order = [i for i in range(len(table.labels)) if i != axis] + [axis]
            labels = tuple(table.labels[i] for i in order)
            moved = replace(table, tensor=table.tensor.permute(order), labels=labels)
            record(Elimination(name, moved))
        tensor = table.tensor.amax(axis) if semiring == "max" else table.tensor.logsumexp(axis)
        labels = table.labels[:axis] + table.labels[axis + 1 :]
        live[next_key] = Factor(tensor, labels, table.sites, table.scale)
        gone = set(keys)
        for label in labels:
            if label in touching:
                touching[label] = [key for key in touching[label] if key not in gone]
                touching[label].append(next_key)
                costs[label] = _table_size([live[key] for key in touching[label]])
        next_key += 1
    return list(live.values())


def _components(factors: list[Factor], names: set[str]) -> list[tuple[list[Factor], set[str]]]:
    """Group factors that share a site of ``names`` (directly or through others)."""
    groups: list[tuple[list[Factor], set[str]]] = []
    for factor in factors:
        shared = names.intersection(factor.labels)
        members, labels = [factor], set(shared)
        kept = []
        for group in groups:
            if group[1] & shared:
                members = group[0] + members
                labels |= group[1]
            else:
                kept.append(group)
        # A new list rather than list.remove: torch.compile cannot compare the groups.
        groups = [*kept, (members, labels)]
    return groups


def contract(
    factors: list[Factor],
    variables: dict[str, Variable],
    plates: dict[str, Plate],
    eliminate: set[str],
    semiring: str = "log",
    record: Callable[[Elimination], None] | None = None,
) -> list[Factor]:
    """Eliminate the sites ``eliminate`` from ``factors`` (see the module docstring).

    Returns the factors left: none of them carries an eliminated site, and each keeps the plates
    it still lives in (sum them out with :func:`reduce_plates`). ``semiring="max"`` maximises
    instead of summing (MAP); ``record`` sees every elimination in order.
    """
    by_plates: dict[frozenset[str], list[Factor]] = {}
    for factor in factors:
        by_plates.setdefault(factor.plates(plates), []).append(factor)
    done: list[Factor] = []
    while by_plates:
        # The innermost plate set first (the first of the largest, as max(..., key=len) would
        # pick; written out because torch.compile cannot trace max with a key).
        here = next(iter(by_plates))
        for candidate in by_plates:
            if len(candidate) > len(here):
                here = candidate
        at_here = by_plates.pop(here)
        local = {name for name in eliminate if variables[name].plates == here}
        for members, names in _components(at_here, local):
            for factor in _eliminate_all(members, names, semiring, record):
                _hand_down(factor, here, variables, plates, eliminate, by_plates, done)
    return done


def _hand_down(
    factor: Factor,
    here: frozenset[str],
    variables: dict[str, Variable],
    plates: dict[str, Plate],
    eliminate: set[str],
    by_plates: dict[frozenset[str], list[Factor]],
    done: list[Factor],
) -> None:
    """Move a factor whose sites of ``here`` are gone down to the plates of the sites it still
    needs to see eliminated, multiplying it out over the other plates."""
    pending = [label for label in factor.labels if label in eliminate]
    if not pending:
        done.append(factor)
        return
    target = frozenset().union(*(variables[name].plates for name in pending))
    if target == here:
        raise EnumerationError(
            f"Sites {', '.join(repr(name) for name in sorted(pending))} are enumerated in "
            "different plates "
            + ", ".join(f"'{n}' ({_plates_text(variables[n].plates)})" for n in sorted(pending))
            + f" and meet in the log-density of {_sites_text(factor.sites)}, inside plates "
            f"{_plates_text(here)}. Summing them out exactly would need every combination of "
            "values across a whole plate. Expected tree-structured plate nesting: enumerate "
            "only one of them, or put both in the same plates."
        )
    for label in factor.labels:
        if label in variables and label not in eliminate:
            crossed = (here - target) & variables[label].plates
            if crossed:
                raise guide_sites_across_plates([label], crossed, factor.sites)
    reduced = reduce_plates(factor, sorted(here - target), plates)
    by_plates.setdefault(target, []).append(reduced)


def guide_sites_across_plates(
    guide_sites: Iterable[str], plates: Iterable[str], sites: Iterable[str]
) -> EnumerationError:
    """The error for guide-enumerated sites whose plates a log-density must be multiplied out
    over while it still depends on them.

    >>> str(guide_sites_across_plates(["z"], ["data"], ["x"]))[:40]
    "The guide's enumerated site(s) 'z' live "
    """
    return EnumerationError(
        f"The guide's enumerated site(s) {', '.join(map(repr, guide_sites))} live in plate(s) "
        f"{_plates_text(plates)}, but the log-density of {_sites_text(sites)} depends on them "
        "outside those plates (directly, or through a model site summed out there): the "
        "expectation would need every combination of values across the plate. Enumerate "
        "those sites in the model instead of the guide."
    )


def _plates_text(names: Iterable[str]) -> str:
    names = sorted(names)
    return "no plate" if not names else ", ".join(f"'{name}'" for name in names)


def _sites_text(sites: Iterable[str]) -> str:
    sites = list(dict.fromkeys(sites))
    return "site " + repr(sites[0]) if len(sites) == 1 else "sites " + ", ".join(map(repr, sites))
