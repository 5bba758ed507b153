"""The model graph: a model's sample sites as nodes (observed ones shaded), its plates as boxes and
the dependencies between sites as edges. ``%trace MODEL --graph`` shows it.

The edges come from :func:`engine.infer.inspect.trace_relations`, which runs the model once and
follows every site's value through the torch operations that build the later sites'
distributions (its docstring says why that way rather than autograd). The layout, overlapping
plates included, is :mod:`widgets.diagram`'s.

A graph of one run never changes, so this is a plain object rather than a widget: its MIME
bundle holds ``application/vnd.pplkernel.graph+json`` (``GRAPH_MIME``), which the JupyterLab
extension draws, and escaped HTML with the same diagram as inline SVG for other frontends.

>>> import torch, engine, engine.distributions as dist
>>> def model(data):
...     mu = engine.sample("mu", dist.Normal(0.0, 1.0))
...     with engine.plate("data", len(data)):
...         engine.sample("x", dist.Normal(mu, 1.0), obs=data)
>>> graph = ModelGraph.from_model(model, (torch.zeros(3),))
>>> graph.edges, [node["name"] for node in graph.nodes]
([('mu', 'x')], ['mu', 'x'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.infer.inspect import trace_relations
from engine.poutine.shape_table import plate_rows, site_rows
from widgets.diagram import DRAWN_KINDS, diagram_of, diagram_svg, plate_colours
from widgets.html import HtmlFallback, escape

GRAPH_MIME = "application/vnd.pplkernel.graph+json"


class ModelGraph(HtmlFallback):
    """Nodes, plates and edges of one run of a model (see the module docstring).

    ``nodes``: ``{"name", "kind", "observed", "distribution", "plates"}`` each, in the order
    the model reached them; ``plates``: ``{"name", "size", "dim", "sites"}`` each; ``edges``:
    ``(parent, child)`` pairs of site names.
    """

    mime_type = GRAPH_MIME

    def __init__(
        self,
        nodes: Sequence[Mapping[str, Any]],
        plates: Sequence[Mapping[str, Any]],
        edges: Sequence[tuple[str, str]],
        title: str = "",
    ):
        self.nodes = [dict(node) for node in nodes]
        self.plates = [dict(plate) for plate in plates]
        self.edges = [(str(source), str(target)) for source, target in edges]
        self.title = title

    @classmethod
    def from_trace(
        cls, trace: Any, parents: Mapping[str, Sequence[str]], title: str = ""
    ) -> ModelGraph:
        """The graph of ``trace``, with ``parents[site]`` the sites ``site`` depends on (the
        ``sample_sample`` of :func:`engine.infer.inspect.get_model_relations`).

        >>> import engine, engine.distributions as dist
        >>> from engine import poutine
        >>> tr = poutine.trace(lambda: engine.sample("a", dist.Normal(0.0, 1.0))).get_trace()
        >>> ModelGraph.from_trace(tr, {"a": []}).nodes[0]["observed"]
        False
        """
        rows = [row for row in site_rows(trace) if row["kind"] in DRAWN_KINDS]
        plates = plate_rows(trace)
        names = {row["site"] for row in rows}
        nodes = [
            {
                "name": row["site"],
                "kind": row["kind"],
                "observed": bool(row["observed"]),
                "distribution": str(row["distribution"]),
                "plates": [plate["name"] for plate in plates if row["site"] in plate["sites"]],
            }
            for row in rows
        ]
        edges = [
            (parent, node["name"])
            for node in nodes
            for parent in parents.get(node["name"], ())
            if parent in names
        ]
        return cls(nodes, plates, edges, title)

    @classmethod
    def from_model(
        cls,
        model: Callable,
        model_args: tuple = (),
        model_kwargs: dict[str, Any] | None = None,
        title: str = "",
    ) -> ModelGraph:
        """Run ``model(*model_args, **model_kwargs)`` once and draw its graph (Pyro's
        ``render_model`` takes the same arguments).

        >>> import engine, engine.distributions as dist
        >>> ModelGraph.from_model(lambda: engine.sample("a", dist.Normal(0.0, 1.0))).edges
        []
        """
        trace, relations = trace_relations(model, model_args, model_kwargs)
        return cls.from_trace(trace, relations["sample_sample"], title)

    def _rows(self) -> list[dict[str, Any]]:
        # The diagram reads shape_table-style rows.
        return [
            {"site": node["name"], "kind": node["kind"], "distribution": node["distribution"]}
            for node in self.nodes
        ]

    def to_json(self) -> dict[str, Any]:
        """The graph as ``GRAPH_MIME`` data: ``{"title", "nodes", "plates" (each with its
        "colour"), "edges": [{"source", "target"}], "layout"}`` (``layout`` from
        :func:`widgets.diagram.layout`); plain JSON types only."""
        colours = plate_colours(self.plates)
        return {
            "title": self.title,
            "nodes": [dict(node, plates=list(node["plates"])) for node in self.nodes],
            "plates": [
                {**plate, "sites": list(plate["sites"]), "colour": colours[plate["name"]]}
                for plate in self.plates
            ],
            "edges": [{"source": source, "target": target} for source, target in self.edges],
            "layout": diagram_of(self._rows(), self.plates, self.edges),
        }

    def to_html(self) -> str:
        """The graph as escaped HTML with an inline SVG (for frontends without the extension)."""
        svg = diagram_svg(
            self._rows(),
            self.plates,
            self.edges,
            observed={node["name"]: node["observed"] for node in self.nodes},
            css_class="ppl-graph",
        )
        title = escape(self.title or "Model graph")
        return f"<div class='ppl-model-graph'><b>{title}</b><div>{svg}</div></div>"

    def __repr__(self) -> str:
        return (
            f"ModelGraph({self.title!r}: {len(self.nodes)} sites, {len(self.edges)} edges, "
            f"{len(self.plates)} plates)"
        )


__all__ = ["GRAPH_MIME", "ModelGraph"]
