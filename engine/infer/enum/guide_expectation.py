"""Costs in expectation over a guide's enumerated sites, at the cost of the forward algorithm.

A cost that depends on enumerated guide sites (``x_t`` of a chain, say) is weighted by their
joint probability under the guide. That marginal involves every site they depend on, back to the
first one, but never needs their joint table: the guide's log-densities are normalised
conditionals, so one pass in the guide's order keeps a *belief*, the joint log-probability of
just the sites still needed later, adds each site's conditional as it comes, answers each cost
once all its sites are in, and sums a site out as soon as nothing later needs it (an element of
a plate summed out leaves a belief that no longer varies along the plate). Under ``markov`` the
belief stays as small as the window, so a chain of T states costs O(T K^2), like the model's.

>>> import torch
>>> from engine.infer.enum.sum_product import Factor
>>> first = Factor(torch.tensor([0.4, 0.6]).log(), ("a",), ("a",))
>>> given_a = torch.tensor([[0.9, 0.1], [0.3, 0.7]]).log()  # rows: a, columns: b
>>> second = Factor(given_a, ("a", "b"), ("b",))
>>> cost = Factor(torch.tensor([1.0, 5.0]), ("b",), ("x",))  # depends on b alone
>>> [expected] = expectations([cost], {"a": first, "b": second}, {})
>>> round(expected.tensor.item(), 4)  # P(b=1) = 0.4 * 0.1 + 0.6 * 0.7 = 0.46
2.84
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.infer.enum.sum_product import Factor, Plate, align, combine, guide_sites_across_plates


def expectations(
    costs: Sequence[Factor],
    weights: dict[str, Factor],
    plates: dict[str, Plate],
    keep: tuple[str, ...] = (),
) -> list[Factor]:
    """Each cost in expectation over the enumerated guide sites it depends on: a factor over
    plates only. ``weights`` are the guide sites' log-densities (unmasked, unscaled), by name,
    in the order the guide sampled them. With ``keep``, those sites are weighted but not summed
    out: each of their values' share of the expectation."""
    order = {name: position for position, name in enumerate(weights)}
    queries = [_query(cost, weights, keep) for cost in costs]
    # When each query can be answered (once its last site is in) and how long each site must
    # stay in the belief (until its last query, or the last site whose conditional it is in).
    answer_at: dict[int, list[int]] = {}
    last_use = dict(order)
    for name, weight in weights.items():
        for parent in weight.labels:
            if parent in weights and parent != name:
                last_use[parent] = max(last_use[parent], order[name])
    for index, query in enumerate(queries):
        if query:
            at = max(order[name] for name in query)
            answer_at.setdefault(at, []).append(index)
            for name in query:
                last_use[name] = max(last_use[name], at)
    needed = _ancestors([name for query in queries for name in query], weights)
    results: list[Factor | None] = [
        None if query else cost for cost, query in zip(costs, queries, strict=True)
    ]
    belief: Factor | None = None
    for name, position in order.items():
        if name not in needed:
            continue  # sums to one: nothing asked depends on it
        belief = weights[name] if belief is None else combine([belief, weights[name]])
        for index in answer_at.get(position, ()):
            results[index] = _expected(costs[index], queries[index], belief, weights, plates, keep)
        gone = [
            label for label in belief.labels if label in weights and last_use[label] <= position
        ]
        belief = _sum_out(belief, gone, weights, plates)
    return results  # type: ignore[return-value]  # every query is answered at its last site


def _query(cost: Factor, weights: dict[str, Factor], keep: tuple[str, ...]) -> tuple[str, ...]:
    """The guide sites whose joint probability weighs ``cost``."""
    labels = [label for label in cost.labels if label in weights]
    return tuple(dict.fromkeys([*labels, *keep])) if labels or keep else ()


def _ancestors(names: list[str], weights: dict[str, Factor]) -> set[str]:
    """``names`` and every guide site their conditionals depend on, directly or not."""
    seen: set[str] = set()
    while names:
        name = names.pop()
        if name not in seen:
            seen.add(name)
            names.extend(label for label in weights[name].labels if label in weights)
    return seen


def _sum_out(
    belief: Factor, names: list[str], weights: dict[str, Factor], plates: dict[str, Plate]
) -> Factor:
    """The belief with the sites ``names`` summed out, and the plates no site left in it lives
    in dropped (summed-out conditionals make it constant along them)."""
    if not names:
        return belief
    tensor = belief.tensor.logsumexp([belief.labels.index(name) for name in names])
    labels = tuple(label for label in belief.labels if label not in names)
    held = {p for label in labels if label in weights for p in weights[label].plates(plates)}
    loose = [i for i, label in enumerate(labels) if label in plates and label not in held]
    if loose:
        tensor = tensor.mean(loose)
        labels = tuple(label for i, label in enumerate(labels) if i not in loose)
    return Factor(tensor, labels, belief.sites)


def _expected(
    cost: Factor,
    query: tuple[str, ...],
    belief: Factor,
    weights: dict[str, Factor],
    plates: dict[str, Plate],
    keep: tuple[str, ...],
) -> Factor:
    others = [label for label in belief.labels if label in weights and label not in query]
    marginal = _sum_out(belief, others, weights, plates)
    outside = marginal.plates(plates) - cost.plates(plates)
    if outside and not keep:
        raise guide_sites_across_plates(sorted(query), sorted(outside), cost.sites)
    labels, (log_w, c) = align([marginal, cost])
    summed = [labels.index(label) for label in labels if label in weights and label not in keep]
    weighted = log_w.exp() * c
    expected = weighted.sum(summed) if summed else weighted
    kept = tuple(label for label in labels if label not in weights or label in keep)
    return Factor(expected, kept, cost.sites, cost.scale)
