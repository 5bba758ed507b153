"""``TraceGraph_ELBO``: the ELBO with a Rao-Blackwellised score-function gradient.

The score-function term of a non-reparameterised guide site z only needs the costs that depend
on z: its *downstream* cost. The sites that ran before z (in the guide, and in the model) cannot
depend on it, and conditional independence removes more: inside a vectorised plate that z shares
with a cost site, element i of z only meets element i of the cost; in two different iterations of
a sequential plate, sites are independent. As in :class:`Trace_ELBO`, the score term's log q is
unscaled and the costs carry the scales. What remains is averaged against a decaying-average
baseline (``infer={"baseline": {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}}``) or a
user baseline (``"baseline_value"``, trained by least squares to the downstream cost).
All of this lowers variance; the estimator stays unbiased.

>>> import torch, engine, engine.distributions as dist
>>> def model():
...     engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
>>> round(TraceGraph_ELBO().loss(model, lambda: None), 4)
0.9189
"""

from __future__ import annotations

from typing import Any

import torch

from engine.infer.elbo import ELBO
from engine.infer.trace_elbo import is_reparameterized, score_log_prob
from engine.poutine.trace_struct import Trace
from engine.runtime import Message


def _independent(site: Message, other: Message) -> bool:
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


class TraceGraph_ELBO(ELBO):
    """The ELBO for guides with non-reparameterised sites; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._decaying_averages: dict[str, torch.Tensor] = {}

    def get_state(self) -> dict[str, Any]:
        return {"decaying_averages": dict(self._decaying_averages)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._decaying_averages = dict(state["decaying_averages"])

    def _downstream_cost(self, name: str, model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
        site = guide_trace.nodes[name]
        total = torch.zeros(())
        for trace, sign in ((guide_trace, -1.0), (model_trace, 1.0)):
            downstream = False
            for other_name, other in trace.sample_sites():
                downstream = downstream or other_name == name
                if not downstream or _independent(site, other):
                    continue
                if trace is guide_trace and other["is_observed"]:
                    continue
                total = total + sign * cost_seen_by(site, other, other["log_prob"])
        return total

    def _baseline(self, name: str, site: Message, cost: torch.Tensor) -> tuple[Any, Any]:
        """The baseline to subtract, and the baseline's own loss term (or 0)."""
        options = site["infer"].get("baseline", {})
        if "baseline_value" in options:
            value = options["baseline_value"]
            return value.detach(), ((cost.detach() - value) ** 2).sum()
        if options.get("use_decaying_avg_baseline", False):
            beta = options.get("baseline_beta", 0.90)
            previous = self._decaying_averages.get(name, torch.zeros(()))
            self._decaying_averages[name] = beta * previous + (1 - beta) * cost.detach().mean()
            return previous, 0.0
        return 0.0, 0.0

    def _particle_elbo(
        self, model_trace: Trace, guide_trace: Trace
    ) -> tuple[torch.Tensor, torch.Tensor]:
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
        elbo = surrogate = 0.0
        for _, site in model_trace.sample_sites():
            elbo = elbo + site["log_prob_sum"]
            surrogate = surrogate + site["log_prob_sum"]
        for name, site in guide_trace.iter_stochastic_nodes():
            elbo = elbo - site["log_prob_sum"]
            if is_reparameterized(site):
                surrogate = surrogate - site["log_prob_sum"]
                continue
            cost = self._downstream_cost(name, model_trace, guide_trace)
            baseline, baseline_loss = self._baseline(name, site, cost)
            advantage = (cost - baseline).detach()
            surrogate = surrogate + (score_log_prob(site) * advantage).sum() - baseline_loss
        return torch.as_tensor(elbo), torch.as_tensor(surrogate)
