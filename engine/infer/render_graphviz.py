"""The Graphviz side of :func:`engine.render_model`: a :class:`GraphSpec` as a
``graphviz.Digraph`` styled as Pyro styles it, shown without a traceback when Graphviz's ``dot``
program is missing, and written to a file.

This module imports the ``graphviz`` package at the top; :mod:`engine.infer.render` imports it
only when that package is installed.

>>> from engine.infer.render import GraphSpec, ModelDiagram
>>> spec = GraphSpec(plates=["N"])
>>> spec.nodes["x"] = {"kind": "sample", "observed": True, "distribution": "Normal",
...                    "constraint": None, "plates": ("N",)}
>>> graph = to_digraph(spec, ModelDiagram(spec))
>>> isinstance(graph, graphviz.Digraph), "subgraph cluster_N" in graph.source
(True, True)
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import graphviz

from engine.errors import RenderError
from engine.infer.render import GraphSpec, ModelDiagram

# Pyro's node styles: fill by observed-ness (a gradient for "observed in some runs").
_FILL = {False: "white", True: "gray", None: "gray:white"}
_INSTALL = "apt-get install graphviz, brew install graphviz or conda install graphviz"


class ModelDigraph(graphviz.Digraph):
    """A ``graphviz.Digraph`` that, when Graphviz cannot draw it for a notebook (``dot`` is
    missing or fails), shows :attr:`diagram`, the engine's own drawing of the same graph, with
    a one-line note, instead of raising. Everything else is ``graphviz.Digraph``'s.

    >>> graph = ModelDigraph()
    >>> graph.diagram is None
    True
    """

    diagram: ModelDiagram | None = None

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            return super()._repr_mimebundle_(include=include, exclude=exclude, **kwargs)
        except graphviz.ExecutableNotFound:
            note = (
                "Graphviz's `dot` program was not found, so this is the engine's own drawing "
                f"of the model; install Graphviz ({_INSTALL}) for Graphviz's layout."
            )
        except graphviz.CalledProcessError as error:
            note = (
                f"Graphviz's `dot` failed (exit status {error.returncode}), so this is the "
                "engine's own drawing of the model."
            )
        return _fallback_bundle(self.diagram, note, include, exclude)

    def unflatten(self, *args: Any, **kwargs: Any) -> Any:
        """Graphviz's ``unflatten`` (a better aspect ratio for wide graphs, as Pyro's tutorial
        shows); where Graphviz's ``unflatten`` program is missing, a warning and this graph
        as it is, so the cell still shows a picture."""
        try:
            return super().unflatten(*args, **kwargs)
        except graphviz.ExecutableNotFound:
            warnings.warn(
                "Graphviz's `unflatten` program was not found, so the graph is shown as it is; "
                f"install Graphviz ({_INSTALL}) to unflatten it.",
                RuntimeWarning,
                stacklevel=2,
            )
            return self

    def copy(self) -> ModelDigraph:
        """A copy that keeps the fallback drawing (``graphviz`` copies only its own state)."""
        duplicate = super().copy()
        duplicate.diagram = self.diagram
        return duplicate


def _fallback_bundle(
    diagram: ModelDiagram | None, note: str, include: Any, exclude: Any
) -> dict[str, Any]:
    if diagram is None:  # a graph built by hand: only the note can be shown
        bundle = {"text/plain": note}
    else:
        noted = diagram.with_note(note)
        bundle = {"text/html": noted._repr_html_(), "image/svg+xml": noted._repr_svg_()}
    if include is not None:
        bundle = {key: value for key, value in bundle.items() if key in set(include)}
    return {key: value for key, value in bundle.items() if key not in set(exclude or ())}


def _add_nodes(
    graph: graphviz.Digraph,
    spec: GraphSpec,
    names: list[str],
) -> None:
    for name in names:
        node = spec.nodes[name]
        if node["kind"] == "param":
            shape, style = "plain", "filled"
        else:
            shape = "ellipse"
            style = "filled,dashed" if node["kind"] == "deterministic" else "filled"
        graph.node(name, label=name, shape=shape, style=style, fillcolor=_FILL[node["observed"]])


def _cluster(
    spec: GraphSpec, prefix: tuple[str, ...], paths: dict[str, tuple[str, ...]], used: set[str]
) -> graphviz.Digraph:
    """The box of the plates ``prefix`` (innermost last) with its sites and its inner boxes,
    built inside out: graphviz copies a subgraph's body when it is added."""
    plate = prefix[-1]
    # The first box of a plate is named as Pyro names it; pieces of an overlapping plate get
    # a suffix (Graphviz merges clusters of one name).
    cluster_name = f"cluster_{plate}"
    piece = 1
    while cluster_name in used:
        piece += 1
        cluster_name = f"cluster_{plate}__{piece}"
    used.add(cluster_name)
    cluster = graphviz.Digraph(name=cluster_name)
    cluster.attr(label=plate, labeljust="r", labelloc="b")
    _add_nodes(cluster, spec, [name for name, path in paths.items() if path == prefix])
    for inner in _children(prefix, paths):
        cluster.subgraph(_cluster(spec, inner, paths, used))
    return cluster


def _children(prefix: tuple[str, ...], paths: dict[str, tuple[str, ...]]) -> list[tuple[str, ...]]:
    depth = len(prefix)
    children: list[tuple[str, ...]] = []
    for path in paths.values():
        if len(path) > depth and path[:depth] == prefix and path[: depth + 1] not in children:
            children.append(path[: depth + 1])
    return children


def to_digraph(spec: GraphSpec, diagram: ModelDiagram) -> ModelDigraph:
    """``spec`` as a Graphviz graph: sites as ellipses (observed filled grey, deterministic
    dashed), params as bare names, plates as clusters labelled with their names, and with
    ``diagram.render_distributions`` a legend of distributions and constraints, as Pyro draws
    it. ``diagram`` is what a notebook shows when ``dot`` is missing."""
    graph = ModelDigraph()
    graph.diagram = diagram
    paths = spec.plate_paths()
    _add_nodes(graph, spec, [name for name, path in paths.items() if not path])
    used: set[str] = set()
    for outer in _children((), paths):
        graph.subgraph(_cluster(spec, outer, paths, used))
    for parent, child in spec.edges:
        graph.edge(parent, child)
    if diagram.render_distributions:
        lines = [
            rf"{name} ~ {node['distribution']}\l"
            for name, node in spec.nodes.items()
            if node["kind"] != "param"
        ]
        if spec.show_params:
            lines += [rf"{name} : {constraint}\l" for name, constraint in spec.constraints.items()]
        graph.node("distribution_description_node", label="".join(lines), shape="plaintext")
    return graph


def write_file(graph: graphviz.Digraph, filename: str | os.PathLike[str]) -> str:
    """Write ``graph`` to ``filename`` through Graphviz, the suffix naming the format (as
    Pyro's ``render_model(filename=...)``); return the path written. A missing suffix, a format
    Graphviz does not know, or a missing ``dot`` is a :class:`~engine.errors.RenderError`."""
    path = os.fspath(filename)
    stem, suffix = os.path.splitext(path)
    fmt = suffix[1:].lower()
    if not fmt:
        raise RenderError(
            f"render_model cannot write {path!r}: the file name needs a suffix that names the "
            "format, e.g. 'model.pdf', 'model.png' or 'model.svg'."
        )
    if fmt not in graphviz.FORMATS:
        raise RenderError(
            f"render_model cannot write {path!r}: Graphviz does not know the format {fmt!r}. "
            "Use a suffix such as .pdf, .png, .svg, .jpg or .dot."
        )
    try:
        return graph.render(stem, view=False, cleanup=True, format=fmt)
    except graphviz.ExecutableNotFound:
        raise RenderError(
            f"render_model could not write {path!r}: Graphviz's `dot` program, which draws the "
            f"file, was not found on PATH. Install Graphviz ({_INSTALL}), or leave out "
            "filename= to see the model drawn in the notebook."
        ) from None


__all__ = ["ModelDigraph", "to_digraph", "write_file"]
