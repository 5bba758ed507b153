"""The plate diagram of the widgets: site and plate records (``engine.poutine.shape_table``
rows) turned into :func:`engine.infer.plate_diagram.layout`'s positions, labelled and coloured
the way the inspector and the model graph show them, and drawn by :func:`diagram_svg`: the one
drawing of every kernel-side view (the inspector widget and its HTML fallback, the model
graph's fallback). The JupyterLab extension draws the same layout from the MIME data.

The layout and the SVG drawing themselves live in :mod:`engine.infer.plate_diagram` (the engine
draws the same diagram for :func:`engine.render_model` when Graphviz is missing, and the engine
never imports the widgets); they are re-exported here for the widgets.

>>> shape = layout([("mu", ()), ("x", ("data",))], {"data": "data (3)"})
>>> [box["plate"] for box in shape["plates"]], [node["site"] for node in shape["nodes"]]
(['data'], ['mu', 'x'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.infer.plate_diagram import NODE_R, PALETTE, layout, plate_colour, to_svg

# The site kinds a diagram draws (a shape_table row's "kind"): params and mini-batch indices are
# not random variables.
DRAWN_KINDS = ("sample", "observed", "determ.")


def plate_colours(plates: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each plate record's colour, by its order of first use.

    >>> plate_colours([{"name": "data"}, {"name": "time"}])
    {'data': '#4e79a7', 'time': '#f28e2b'}
    """
    return {plate["name"]: plate_colour(i) for i, plate in enumerate(plates)}


def plate_label(plate: Mapping[str, Any]) -> str:
    """How a plate box is labelled.

    >>> plate_label({"name": "data", "size": 8, "dim": -1})
    'data (8, dim -1)'
    """
    return f"{plate['name']} ({plate['size']}, dim {plate['dim']})"


def diagram_of(
    sites: Sequence[Mapping[str, Any]],
    plates: Sequence[Mapping[str, Any]],
    edges: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The :func:`layout` of site and plate records (``shape_table.site_rows`` and
    ``plate_rows``), captioned with each site's distribution.

    >>> shape = diagram_of(
    ...     [{"site": "x", "kind": "observed", "distribution": "Normal"}],
    ...     [{"name": "data", "size": 3, "dim": -1, "sites": ["x"]}],
    ... )
    >>> shape["plates"][0]["label"], shape["nodes"][0]["site"]
    ('data (3, dim -1)', 'x')
    """
    shown = [row for row in sites if row["kind"] in DRAWN_KINDS]
    placed = [
        (row["site"], [plate["name"] for plate in plates if row["site"] in plate["sites"]])
        for row in shown
    ]
    labels = {plate["name"]: plate_label(plate) for plate in plates}
    captions = {row["site"]: str(row["distribution"]) for row in shown}
    return layout(placed, labels, edges, captions)


def diagram_svg(
    sites: Sequence[Mapping[str, Any]],
    plates: Sequence[Mapping[str, Any]],
    edges: Sequence[tuple[str, str]] = (),
    observed: Mapping[str, bool | None] | None = None,
    css_class: str = "ppl-plate-diagram",
) -> str:
    """The plate diagram of site and plate records as inline SVG (every name escaped): plates
    in their colours, observed sites shaded (``observed`` overrides what the rows' kinds say),
    deterministic sites dashed, each site captioned with its distribution.

    >>> svg = diagram_svg(
    ...     [{"site": "<x>", "kind": "observed", "distribution": "Normal"}],
    ...     [{"name": "data", "size": 3, "dim": -1, "sites": ["<x>"]}],
    ... )
    >>> "&lt;x&gt;" in svg and "<x>" not in svg, 'data-plate="data"' in svg
    (True, True)
    """
    shown = [row for row in sites if row["kind"] in DRAWN_KINDS]
    if observed is None:
        observed = {row["site"]: row["kind"] == "observed" for row in shown}
    return to_svg(
        diagram_of(sites, plates, edges),
        observed,
        plate_colours(plates),
        captions={row["site"]: str(row["distribution"]) for row in shown},
        css_class=css_class,
        dashed={row["site"] for row in shown if row["kind"] == "determ."},
    )


__all__ = [
    "DRAWN_KINDS",
    "NODE_R",
    "PALETTE",
    "diagram_of",
    "diagram_svg",
    "layout",
    "plate_colour",
    "plate_colours",
    "plate_label",
    "to_svg",
]
