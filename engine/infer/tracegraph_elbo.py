"""``TraceGraph_ELBO``: the ELBO with a Rao-Blackwellised score-function gradient.

The score-function term of a non-reparameterised guide site z only needs the costs that depend
on z: its *downstream* cost. The sites that ran before z (in the guide, and in the model) cannot
depend on it, and conditional independence removes more: inside a vectorised plate that z shares
with a cost site, element i of z only meets element i of the cost; in two different iterations of
a sequential plate, sites are independent. As in :class:`Trace_ELBO`, the score term's log q is
unscaled and the costs carry the scales. What remains is compared with a baseline, a
guess of the cost that does not depend on z's draw: a decaying average of past costs
(``infer={"baseline": {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}}``), a learnt one
(``"nn_baseline": module, "nn_baseline_input": x``, the module applied to ``x``; or
``"baseline_value"``, a tensor the user's own module computes), or the sum of the average and a
learnt one. A learnt baseline is trained by least squares to the downstream cost, through the
parameters of its module (registered with ``engine.module``). All of this lowers variance; the
estimator stays unbiased.

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
from engine.infer.trace_elbo import is_reparameterized, score_log_prob, total_seen_by
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, is_subsample_site

BASELINE_OPTIONS = frozenset(
    {
        "use_decaying_avg_baseline",
        "baseline_beta",
        "baseline_value",
        "nn_baseline",
        "nn_baseline_input",
    }
)


class TraceGraph_ELBO(ELBO):
    """The ELBO for guides with non-reparameterised sites; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._decaying_averages: dict[str, torch.Tensor] = {}
        self._pending_averages: dict[str, torch.Tensor] = {}

    def get_state(self) -> dict[str, Any]:
        return {"decaying_averages": dict(self._decaying_averages)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._decaying_averages = dict(state["decaying_averages"])

    def commit_step(self) -> None:
        # Baselines move only with a step that was taken: a failed, skipped or evaluation-only
        # run leaves them as they were.
        self._decaying_averages.update(self._pending_averages)
        self._pending_averages = {}

    def _downstream_cost(self, name: str, model_trace: Trace, guide_trace: Trace) -> torch.Tensor:
        site = guide_trace.nodes[name]
        guide_order = list(guide_trace.nodes)
        # Guide sites from z on may depend on z; so may every model site from the first model
        # position of any of them (the model may sample them in another order than the guide).
        downstream_guide = set(guide_order[guide_order.index(name) :])
        model_order = list(model_trace.nodes)
        model_start = min(
            (model_order.index(n) for n in downstream_guide if n in model_trace.nodes),
            default=len(model_order),
        )
        costs = [
            (other, -other["log_prob"])
            for other_name, other in guide_trace.sample_sites()
            if other_name in downstream_guide and not other["is_observed"]
        ]
        costs += [
            (other, other["log_prob"])
            for position, other in enumerate(model_trace.nodes.values())
            if position >= model_start
            and other["type"] == "sample"
            and not is_subsample_site(other)
        ]
        return total_seen_by(site, costs)

    def _elbo_and_surrogate(self, model, guide, args, kwargs):
        self._pending_averages = {}  # whatever an earlier, uncommitted run left
        return super()._elbo_and_surrogate(model, guide, args, kwargs)

    def _baseline(self, name: str, site: Message, cost: torch.Tensor) -> tuple[Any, Any]:
        """The baseline to subtract, and the baseline's own loss term (or 0)."""
        options = site["infer"].get("baseline", {})
        unknown = set(options) - BASELINE_OPTIONS
        if unknown:
            raise ValueError(
                f"site '{name}': unknown baseline options {sorted(unknown)}; the options are "
                f"{sorted(BASELINE_OPTIONS)}."
            )
        learnt = self._learnt_baseline(name, options)
        average = 0.0
        if options.get("use_decaying_avg_baseline", False):
            beta = options.get("baseline_beta", 0.90)
            # Particles of one step update the average in turn; it is kept only if the step is.
            average = self._pending_averages.get(
                name, self._decaying_averages.get(name, torch.zeros(()))
            )
            mean_cost = cost.detach().mean()
            if torch.isfinite(mean_cost):
                self._pending_averages[name] = beta * average + (1 - beta) * mean_cost
        if learnt is None:
            return average, 0.0
        if torch.broadcast_shapes(learnt.shape, cost.shape) != cost.shape:
            raise ValueError(
                f"site '{name}': the learnt baseline has shape {tuple(learnt.shape)}, but the "
                f"downstream cost it guesses has shape {tuple(cost.shape)} (one per element of "
                "the site's plates); give the baseline that shape, e.g. squeeze a trailing dim."
            )
        # The learnt part is fitted to what the average leaves over; only its module learns.
        baseline = average + learnt
        return baseline.detach(), ((cost.detach() - baseline) ** 2).sum()

    @staticmethod
    def _learnt_baseline(name: str, options: dict[str, Any]) -> torch.Tensor | None:
        """``nn_baseline(nn_baseline_input)`` or ``baseline_value``, or None for neither."""
        if "nn_baseline" in options and "baseline_value" in options:
            raise ValueError(
                f"site '{name}': give nn_baseline or baseline_value, not both (baseline_value is "
                "a tensor your module already computed; nn_baseline is the module itself)."
            )
        if "baseline_value" in options:
            return torch.as_tensor(options["baseline_value"])
        if "nn_baseline" not in options:
            return None
        module = options["nn_baseline"]
        if not callable(module) or "nn_baseline_input" not in options:
            raise ValueError(
                f"site '{name}': nn_baseline must be a module (a callable) and comes with "
                "nn_baseline_input, what it reads: infer={'baseline': {'nn_baseline': net, "
                "'nn_baseline_input': x}}."
            )
        # The baseline learns from the cost only: no gradient flows back into its input.
        inputs = options["nn_baseline_input"]
        if isinstance(inputs, (tuple, list)):
            return module(*(torch.as_tensor(x).detach() for x in inputs))
        return module(torch.as_tensor(inputs).detach())

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
