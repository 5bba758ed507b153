"""Which part of a cost a site's score-function term needs (Rao-Blackwellisation by plates).

Element i of a site inside a vectorised plate only meets element i of the costs that share the
plate; sites in different iterations of a sequential plate are independent. Dropping the rest
keeps the gradient estimator unbiased and removes most of its variance.

>>> import torch
>>> from engine.runtime import CondIndepStackFrame
>>> frame = CondIndepStackFrame("data", -1, 3)
>>> z = {"cond_indep_stack": (frame,)}
>>> global_cost = {"cond_indep_stack": ()}
>>> cost_seen_by(z, z, torch.tensor([1.0, 2.0, 3.0])).tolist()
[1.0, 2.0, 3.0]
>>> cost_seen_by(global_cost, z, torch.tensor([1.0, 2.0, 3.0])).tolist()
[6.0]
"""

from __future__ import annotations

import torch

from engine.runtime import Message


def independent_sites(site: Message, other: Message) -> bool:
    """Whether two sites sit in different iterations of one sequential plate."""
    counters = {f.name: f.counter for f in site["cond_indep_stack"] if not f.vectorized}
    return any(
        not f.vectorized and f.name in counters and counters[f.name] != f.counter
        for f in other["cond_indep_stack"]
    )


def cost_seen_by(site: Message, cost_site: Message, cost: torch.Tensor) -> torch.Tensor:
    """The part of ``cost`` (a cost site's scaled per-element log density) that site z can
    influence: summed over plate dims z does not share, kept elementwise along the vectorised
    plates it shares."""
    shared = {
        f.dim
        for f in site["cond_indep_stack"]
        if f.vectorized and f in cost_site["cond_indep_stack"]
    }
    summed_dims = [d for d in range(-cost.dim(), 0) if d not in shared and cost.shape[d] != 1]
    return cost.sum(dim=summed_dims, keepdim=True) if summed_dims else cost
