"""Finding where a NaN or an infinity first appeared in a run of a guide and a model.

When a loss, a gradient or a potential energy is not finite, the user needs the first place it
showed up. Sites are searched in execution order (the guide first, then the model), and within a
site in the order its numbers come about: the arguments its distribution was given, then its value
(drawn, or the observed data), then its log-prob. An infinite argument counts only where the site
goes wrong with it (``Categorical(logits=...)`` with ``-inf`` entries to rule categories out is
fine); a NaN argument always counts.

>>> import torch
>>> from engine.poutine.trace_struct import Trace
>>> tr = Trace()
>>> tr.add_node("x", name="x", type="sample", value=torch.tensor(float("nan")), is_observed=False,
...             infer={}, cond_indep_stack=(), log_prob=torch.tensor(0.0), fn=None)
>>> find_first_nonfinite([("guide", tr)]).describe()
"guide site 'x' (no plate): its value is not finite (1 of 1 entries: nan)"
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch.distributions.utils import lazy_property

from engine.errors import describe_site
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, is_subsample_site
from engine.source_lines import Location, describe_location


class NonFiniteReport(str):
    """The text of a non-finite problem, carrying the table of the sites up to its culprit
    for the :class:`NonFiniteError` raised with it. Being a ``str``, it goes wherever the text
    goes (progress listeners, monitors); the table is rendered already, so a report kept by a
    monitor for every skipped step holds no traces or tensors."""

    table: str | None = None
    table_heading: str | None = None


@dataclass
class NonFiniteSite:
    """The first non-finite number of a run: which site, of which program, and what of it."""

    role: str  # "guide" or "model"
    site: Message
    what: str  # "the argument 'loc' of its Normal", "its value", "its observed value", ...
    count: int
    total: int
    kinds: str  # the kinds of bad entries: "nan", "inf, -inf"
    trace: Trace
    location: Location | None = None

    def describe(self) -> str:
        """``model site 'y' (no plate), at line 4 of m.py: ... is not finite (1 of 1 entries:
        nan)``."""
        where = f", at {describe_location(*self.location)}" if self.location else ""
        return (
            f"{self.role} site {describe_site(self.site)}{where}: {self.what} is not finite "
            f"({self.count} of {self.total} entries: {self.kinds})"
        )

    def trace_through_site(self) -> Trace:
        """The trace this site is in, up to and including it."""
        kept = Trace()
        for name, site in self.trace.nodes.items():
            kept.nodes[name] = site
            if site is self.site:
                break
        return kept

    def attach_to(self, text: str) -> NonFiniteReport:
        """``text`` as a report carrying the table of the sites up to this one."""
        report = NonFiniteReport(text)
        report.table = self.trace_through_site().format_shapes()
        report.table_heading = (
            f"Sites of the {self.role} up to the first non-finite value (the last, "
            f"'{self.site['name']}'):"
        )
        return report


def _bad_entries(tensor: object) -> tuple[int, int, str] | None:
    """``(count, total, kinds)`` of the non-finite entries of a float tensor, or None."""
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        return None
    tensor = tensor.detach()
    bad = ~torch.isfinite(tensor)
    count = int(bad.sum())
    if not count:
        return None
    kinds = [
        word
        for word, present in (
            ("nan", torch.isnan(tensor).any()),
            ("inf", torch.isposinf(tensor).any()),
            ("-inf", torch.isneginf(tensor).any()),
        )
        if bool(present)
    ]
    return count, bad.numel(), ", ".join(kinds)


def _arguments(fn: object) -> Iterator[tuple[str, str, object, bool]]:
    """``(distribution name, argument, value, derived)`` for the arguments a distribution (and
    those it wraps: ``to_event``, ``mask``, ``expand``) holds. ``derived`` marks the
    either-or pairs torch fills in lazily (``logits`` from ``probs``): an infinite one there may
    stand for a legitimate probability of 0 or 1."""
    depth = 0
    while fn is not None and depth < 8:
        constraints = getattr(type(fn), "arg_constraints", None)
        if isinstance(constraints, dict):
            for name in constraints:
                if name in vars(fn):
                    derived = isinstance(getattr(type(fn), name, None), lazy_property)
                    yield type(fn).__name__, name, vars(fn)[name], derived
        fn, depth = getattr(fn, "base_dist", None), depth + 1


def _site_problem(site: Message) -> tuple[str, tuple[int, int, str]] | None:
    value_kind = "its observed value" if site["is_observed"] else "its value"
    value = _bad_entries(site.get("value"))
    log_prob = _bad_entries(site.get("log_prob"))
    site_goes_wrong = value is not None or log_prob is not None
    for dist_name, argument, tensor, derived in _arguments(site.get("fn")):
        bad = _bad_entries(tensor)
        if bad is None:
            continue
        if "nan" in bad[2] or (site_goes_wrong and not derived):
            return f"the argument '{argument}' of its {dist_name}", bad
    if value is not None:
        return value_kind, value
    if log_prob is not None:
        return "its log-prob", log_prob
    return None


def find_first_nonfinite(
    traces: Iterable[tuple[str, Trace]], lines: dict[str, dict[str, Location]] | None = None
) -> NonFiniteSite | None:
    """The first non-finite argument, value or log-prob, in execution order, of the
    ``(role, trace)`` pairs; ``lines[role][site]`` is the user's line of a site, when known."""
    for role, tr in traces:
        for site in tr.nodes.values():
            if site["type"] != "sample" or is_subsample_site(site):
                continue
            problem = _site_problem(site)
            if problem is not None:
                what, (count, total, kinds) = problem
                location = (lines or {}).get(role, {}).get(site["name"])
                return NonFiniteSite(role, site, what, count, total, kinds, tr, location)
    return None


def nonfinite_gradients(named_params: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Describe every parameter whose gradient holds a NaN or an infinity."""
    found = []
    for name, leaf in named_params:
        bad = _bad_entries(leaf.grad)
        if bad is not None:
            found.append(f"param '{name}': {bad[0]} of {bad[1]} gradient entries not finite")
    return found
