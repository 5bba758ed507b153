"""Finding where a NaN or an infinity first appeared in an SVI step.

When the loss or a gradient is not finite, the user needs the first place it showed up: a guide
site's value or log-prob, a model site's log-prob, or the gradient of a named parameter. The step
is stopped before the optimizer runs, so nothing has changed yet.

>>> import torch
>>> from engine.poutine.trace_struct import Trace
>>> tr = Trace()
>>> tr.add_node("x", name="x", type="sample", value=torch.tensor(float("nan")), is_observed=False,
...             infer={}, cond_indep_stack=(), log_prob=torch.tensor(0.0))
>>> first_nonfinite([("guide", tr)])
"guide site 'x' (no plate): its value is not finite (1 of 1 entries)"
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from engine.errors import PPLError, describe_site
from engine.poutine.trace_struct import Trace
from engine.runtime import is_subsample_site


class NonFiniteError(PPLError, ValueError):
    """An SVI step met a NaN or an infinity; no parameter was changed."""


def _count_bad(tensor: torch.Tensor) -> tuple[int, int]:
    bad = ~torch.isfinite(tensor)
    return int(bad.sum()), bad.numel()


def first_nonfinite(traces: Iterable[tuple[str, Trace]]) -> str | None:
    """Describe the first non-finite site value or log-prob, in execution order."""
    for role, tr in traces:
        for site in tr.nodes.values():
            if site["type"] != "sample" or is_subsample_site(site):
                continue
            for key, what in (("value", "value"), ("log_prob", "log-prob")):
                tensor = site.get(key)
                if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                    count, total = _count_bad(tensor.detach())
                    if count:
                        return (
                            f"{role} site {describe_site(site)}: its {what} is not finite "
                            f"({count} of {total} entries)"
                        )
    return None


def nonfinite_gradients(named_params: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Describe every parameter whose gradient holds a NaN or an infinity."""
    found = []
    for name, leaf in named_params:
        if leaf.grad is not None:
            count, total = _count_bad(leaf.grad)
            if count:
                found.append(f"param '{name}': {count} of {total} gradient entries not finite")
    return found
