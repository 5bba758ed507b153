"""``Trace``: the record of one run of a model, site by site, and the log densities over it.

A trace maps site names to the messages that produced them (shallow copies), in execution order,
with two bookkeeping nodes: ``_INPUT`` (the arguments) and ``_RETURN`` (the return value). Log
densities are computed on demand and cached on the sites (``log_prob``, ``unscaled_log_prob``,
``log_prob_sum``), each one scaled by its plates' subsampling factor and masked.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
>>> round(poutine.trace(model).get_trace().log_prob_sum().item(), 4)
-0.9189
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from engine.distributions.util import broadcast_shape
from engine.errors import PPLError, ShapeError, SiteNameError, describe_site, fmt_shape
from engine.runtime import Message, is_subsample_site

SiteFilter = Callable[[str, Message], bool]


def _every_site(name: str, site: Message) -> bool:
    return True


def scale_and_mask(log_prob: torch.Tensor, scale: Any, mask: Any) -> torch.Tensor:
    """Apply a site's plate scale and mask to its log density (the mask zeroes, never NaNs).

    >>> scale_and_mask(torch.tensor([1.0, 2.0]), 3.0, torch.tensor([True, False]))
    tensor([3., 0.])
    """
    if mask is not None and mask is not True:
        if mask is False:
            return torch.zeros_like(log_prob)
        log_prob = torch.where(mask, log_prob, log_prob.new_zeros(()))
    if not (isinstance(scale, float | int) and scale == 1):
        log_prob = scale * log_prob
    return log_prob


def log_prob_shape(site: Message) -> torch.Size | None:
    """The shape a sample site's log-density has (or will have), without evaluating it; None
    when the distribution has no shapes or the value does not broadcast with them.

    >>> import engine.distributions as dist
    >>> log_prob_shape({"fn": dist.Normal(torch.zeros(3), 1.0), "value": torch.zeros(2, 3)})
    torch.Size([2, 3])
    """
    if "log_prob" in site:
        return site["log_prob"].shape
    fn, value = site["fn"], site["value"]
    batch_shape = getattr(fn, "batch_shape", None)
    event_shape = getattr(fn, "event_shape", None)
    if batch_shape is None or event_shape is None or not isinstance(value, torch.Tensor):
        return None
    try:
        return broadcast_shape(value.shape[: value.dim() - len(event_shape)], batch_shape)
    except ShapeError:
        return None


GRAPH_TYPES = ("flat", "dense")


def _in_recorded_order(names: set[str] | None, trace: Trace) -> list[str]:
    """``names`` in the order their nodes were recorded in ``trace``."""
    if not names:
        return []
    return [name for name in trace.nodes if name in names]


def _in_other_iterations(site: Message, past: Message) -> bool:
    """Whether two sites sit in different iterations of one sequential plate."""
    counters = {frame.name: frame.counter for frame in past["cond_indep_stack"]}
    return any(
        frame.name in counters and frame.counter != counters[frame.name]
        for frame in site["cond_indep_stack"]
    )


class Trace:
    """An ordered record of the sites of one run, keyed by site name.

    >>> tr = Trace()
    >>> tr.add_node("w", name="w", type="param", value=torch.ones(2))
    >>> tr.param_nodes
    ['w']
    """

    def __init__(self, graph_type: str = "flat") -> None:
        if graph_type not in GRAPH_TYPES:
            raise ValueError(
                f"Trace(graph_type={graph_type!r}): a trace is 'flat' (sites only) or 'dense' "
                "(sites and an edge from every earlier sample site each one may depend on)."
            )
        self.graph_type = graph_type
        self.nodes: dict[str, Message] = {}
        # Edges, kept only for nodes that have some (Pyro's names): flat traces pay nothing.
        self._succ: dict[str, set[str]] = {}
        self._pred: dict[str, set[str]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def add_node(self, site_name: str, **site: Any) -> None:
        """Record a site; a name may appear once, except a ``param`` read several times."""
        existing = self.nodes.get(site_name)
        if existing is not None and not (existing["type"] == site["type"] == "param"):
            raise SiteNameError(_duplicate_message(site_name, existing, site))
        self.nodes[site_name] = site

    def remove_node(self, site_name: str) -> None:
        """Forget a site and its edges."""
        del self.nodes[site_name]
        for successor in self._succ.pop(site_name, ()):
            self._pred[successor].discard(site_name)
        for predecessor in self._pred.pop(site_name, ()):
            self._succ[predecessor].discard(site_name)

    def copy(self) -> Trace:
        """A new trace with the same site dicts (shallow: values and distributions are shared)
        and the same edges."""
        new = Trace(self.graph_type)
        new.nodes = dict(self.nodes)
        new._succ = {name: set(names) for name, names in self._succ.items()}
        new._pred = {name: set(names) for name, names in self._pred.items()}
        return new

    # -- dependency edges (dense traces) ---------------------------------------------------

    def add_edge(self, from_site: str, to_site: str) -> None:
        """Record that ``to_site`` may depend on ``from_site``; a name not yet in the trace
        becomes a node with no site record (``type`` None).

        >>> tr = Trace()
        >>> tr.add_edge("a", "b"); tr.add_edge("b", "c"); tr.add_edge("a", "c")
        >>> tr.edges, sorted(tr.predecessors("c")), tr.topological_sort(reverse=True)
        ([('a', 'b'), ('a', 'c'), ('b', 'c')], ['a', 'b'], ['c', 'b', 'a'])
        """
        for name in (from_site, to_site):
            if name not in self.nodes:
                self.nodes[name] = {"name": name, "type": None}
        self._succ.setdefault(from_site, set()).add(to_site)
        self._pred.setdefault(to_site, set()).add(from_site)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Every edge ``(from_site, to_site)``, in the order of the sites."""
        return [
            (name, to)
            for name in self.nodes
            for to in _in_recorded_order(self._succ.get(name), self)
        ]

    def predecessors(self, site_name: str) -> set[str]:
        """The sites ``site_name`` may depend on."""
        return set(self._pred.get(site_name, ()))

    def successors(self, site_name: str) -> set[str]:
        """The sites that may depend on ``site_name``."""
        return set(self._succ.get(site_name, ()))

    def topological_sort(self, reverse: bool = False) -> list[str]:
        """Every node, each after all its predecessors (before them with ``reverse=True``);
        among nodes free to go, the earlier recorded goes first."""
        waiting = {name: len(self._pred.get(name, ())) for name in self.nodes}
        ready = [name for name, count in waiting.items() if count == 0]
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for successor in _in_recorded_order(self._succ.get(name), self):
                waiting[successor] -= 1
                if waiting[successor] == 0:
                    ready.append(successor)
        if len(order) < len(self.nodes):
            cycle = sorted(str(name) for name, count in waiting.items() if count > 0)
            raise ValueError(f"the trace's edges form a cycle through {cycle}")
        return order[::-1] if reverse else order

    def add_dense_edges(self) -> None:
        """Add an edge from every earlier sample site to each later one, except between two
        iterations of one sequential plate (the only independence a trace can see for sure);
        mini-batch index sites take no part. What ``trace(graph_type="dense")`` records."""
        earlier: list[Message] = []
        for name, site in self.nodes.items():
            if site["type"] != "sample" or is_subsample_site(site):
                continue
            for past in earlier:
                if not _in_other_iterations(site, past):
                    self.add_edge(past["name"], name)
            earlier.append(site)

    # -- site selections -------------------------------------------------------------------

    @property
    def param_nodes(self) -> list[str]:
        return [name for name, site in self.nodes.items() if site["type"] == "param"]

    @property
    def stochastic_nodes(self) -> list[str]:
        """Latent sample sites (plate mini-batch index sites excluded: they are not variables)."""
        return [
            name
            for name, site in self.nodes.items()
            if site["type"] == "sample" and not site["is_observed"] and not is_subsample_site(site)
        ]

    @property
    def observation_nodes(self) -> list[str]:
        return [
            name
            for name, site in self.nodes.items()
            if site["type"] == "sample" and site["is_observed"]
        ]

    def iter_stochastic_nodes(self) -> Iterator[tuple[str, Message]]:
        for name in self.stochastic_nodes:
            yield name, self.nodes[name]

    def sample_sites(self) -> Iterator[tuple[str, Message]]:
        """Every sample site that carries a density (latent or observed)."""
        for name, site in self.nodes.items():
            if site["type"] == "sample" and not is_subsample_site(site):
                yield name, site

    # -- log densities ---------------------------------------------------------------------

    def compute_log_prob(self, site_filter: SiteFilter = _every_site) -> None:
        """Compute and cache ``log_prob`` (scaled and masked) on every selected sample site.

        A distribution whose ``log_prob`` fails raises the same kind of exception, its message
        led by ``Error while computing log_prob at site '<name>':`` and followed by the shapes.
        """
        for name, site in self.sample_sites():
            if "log_prob" not in site and site_filter(name, site):
                compute_site_log_prob(site, trace=self)

    def log_prob_sum(self, site_filter: SiteFilter = _every_site) -> torch.Tensor:
        """The total log density of the selected sample sites, scaled by their plates."""
        total = 0.0
        for name, site in self.sample_sites():
            if not site_filter(name, site):
                continue
            if "log_prob_sum" not in site:
                compute_site_log_prob(site, "log_prob_sum", trace=self)
            total = total + site["log_prob_sum"]
        return total if isinstance(total, torch.Tensor) else torch.tensor(total)

    def compute_score_parts(self, site_filter: SiteFilter = _every_site) -> None:
        """Cache each selected sample site's ``score_parts`` (log-prob, score-function and
        entropy parts, scaled and masked), with its ``log_prob`` and ``log_prob_sum``.

        >>> import engine, engine.distributions as dist
        >>> def guide():
        ...     engine.sample("z", dist.Normal(0.0, 1.0))
        >>> tr = engine.poutine.trace(guide).get_trace()
        >>> tr.compute_score_parts()
        >>> tr.nodes["z"]["score_parts"].score_function  # reparameterized: no score term
        0
        """
        for name, site in self.sample_sites():
            if "score_parts" in site or not site_filter(name, site):
                continue
            try:
                parts = site["fn"].score_parts(site["value"], *site["args"], **site["kwargs"])
            except Exception as error:
                _raise_at_site(error, site, "score_parts", self)
            site["unscaled_log_prob"] = parts.log_prob
            parts = parts.scale_and_mask(site["scale"], site["mask"])
            site["score_parts"] = parts
            site["log_prob"] = parts.log_prob
            site["log_prob_sum"] = parts.log_prob.sum()

    def __getstate__(self) -> dict:
        # A site's message may hold a ``continuation`` (a function set by a handler, often a
        # closure): it only matters while the message is in flight, so a pickled trace drops it.
        nodes = {}
        for name, site in self.nodes.items():
            if site.get("continuation") is not None:
                site = {**site, "continuation": None}
            nodes[name] = site
        return {**self.__dict__, "nodes": nodes}

    def format_shapes(self, title: str = "Trace shapes", culprit: Message | None = None) -> str:
        """A table of every site's distribution, shapes, log-prob shape and plates (and, last,
        ``culprit``: a site an error kept from being recorded)."""
        from engine.poutine.shape_table import format_site_table

        return format_site_table(self, title=title, culprit=culprit)


def compute_site_log_prob(
    site: Message, what: str = "log_prob", trace: Trace | None = None
) -> None:
    """Score a sample site in place: its ``unscaled_log_prob`` (the distribution's log-density of
    its value), its ``log_prob`` (scaled and masked by its handlers) and ``log_prob_sum``.

    A failing ``log_prob`` (a value outside the support, shapes that do not fit) re-raises as the
    same kind of exception, led by ``Error while computing <what> at site '<name>':`` and with
    the shapes of ``trace``'s sites (or of this site alone) attached.

    >>> import torch, engine, engine.distributions as dist
    >>> with engine.poutine.trace() as tracer:
    ...     _ = engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
    >>> site = tracer.trace.nodes["x"]
    >>> compute_site_log_prob(site)
    >>> round(site["log_prob_sum"].item(), 4)
    -0.9189
    """
    try:
        unscaled = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
    except Exception as error:
        _raise_at_site(error, site, what, trace)
    log_prob = scale_and_mask(unscaled, site["scale"], site["mask"])
    site["unscaled_log_prob"] = unscaled
    site["log_prob"] = log_prob
    # A scalar log-prob is its own sum: no extra op, and no extra autograd node per step.
    site["log_prob_sum"] = log_prob if log_prob.dim() == 0 else log_prob.sum()


def _raise_at_site(error: Exception, site: Message, what: str, trace: Trace | None) -> None:
    """Raise ``error`` again, as the same type, with the site it happened at (Pyro's wording
    leads, so code that matches on it keeps working) and the shapes that explain it."""
    heading = f"Error while computing {what} at site '{site['name']}':"
    table = _shape_table(site, trace)
    if isinstance(error, PPLError):
        # The engine's own errors know what went wrong but not where: add the site and plates,
        # and let the error render the table when it is read. They are complete on their own.
        kind = "Observed site" if site["is_observed"] else "Sample site"
        located = type(error)(f"{heading}\n{kind} {describe_site(site)}: {error.message}")
        located.attach_site_table(table, heading="Sites of the trace:")
        raise located from None
    try:
        located = type(error)(f"{heading}\n{error}\n{table()}")
    except Exception:
        raise error from None  # an exception type that takes other arguments: keep it as is
    raise located.with_traceback(error.__traceback__) from error


def _shape_table(site: Message, trace: Trace | None) -> Callable[[], str]:
    def render() -> str:
        if trace is not None and site["name"] in trace.nodes:
            return trace.format_shapes()
        alone = Trace()
        alone.nodes[site["name"]] = site
        return alone.format_shapes()

    return render


def _describe_kind(site: Message) -> str:
    if site["type"] != "sample":
        return f"a {site['type']} site"
    if is_subsample_site(site):
        return "a subsampled plate"
    return "an observed site" if site["is_observed"] else "a latent sample site"


def _duplicate_message(name: str, first: Message, second: dict) -> str:
    first_shape = getattr(first.get("value"), "shape", None)
    second_shape = getattr(second.get("value"), "shape", None)
    shapes = ""
    if first_shape is not None and second_shape is not None:
        shapes = f" (values of shape {fmt_shape(first_shape)} and {fmt_shape(second_shape)})"
    if is_subsample_site(first) and is_subsample_site(second):
        return (
            f"Plate '{name}' draws its mini-batch twice in one run. Create the plate once "
            f'(`{name}_plate = plate("{name}", size, subsample_size=...)`) and re-enter that '
            f"object with `with {name}_plate:`, so every site sees the same indices."
        )
    # Pyro's wording ("Multiple sample sites named ...") leads, for code that matches on it.
    both_samples = first["type"] == "sample" and second.get("type") == "sample"
    opening = "Multiple sample sites named" if both_samples else "Multiple sites named"
    return (
        f"{opening} '{name}' in one run: first {_describe_kind(first)}, "
        f"then {_describe_kind(second)}{shapes}. Every site needs its own name. Inside a "
        f'Python loop, put the index in the name (f"{name}_{{i}}"), or replace the loop by '
        "`with plate(...)` to draw all values in one vectorised site."
    )
