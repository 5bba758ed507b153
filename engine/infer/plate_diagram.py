"""Plate diagrams: where each site, plate box and dependency edge goes, and the same diagram as
an SVG string.

This is the one place a plate diagram is laid out and drawn on the kernel side. It lives in the
engine (plain Python, no Jupyter package) because :func:`engine.render_model` draws with it when
Graphviz is missing; the widgets (the model graph, the trace inspector) read it through
:mod:`widgets.diagram`, and their JSON carries the layout so the JupyterLab extension draws
exactly what the static fallback draws.

Plates are drawn so that every box labelled with a plate holds exactly the sites in that plate,
overlapping (non-nested) plates included. The sites are split recursively: take the plate with
the most sites among those not yet drawn around this group. If no other plate crosses it (holds
some of its sites and some others), draw it as a box around its sites, beside the rest. If one
crosses it, lay the group out as a 2 x 2 grid: the first plate is the bottom row, the crossing
plate the right column, so the two boxes overlap exactly on the sites in both. A third plate
that spans several cells of such a grid is drawn as one box per cell, each labelled with its
name: the picture stays true, at the price of a plate in pieces.

>>> shape = layout([("mu", ()), ("x", ("data",))], {"data": "data (3)"})
>>> [box["plate"] for box in shape["plates"]], [node["site"] for node in shape["nodes"]]
(['data'], ['mu', 'x'])
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def escape(value: object) -> str:
    """Any value as text, safe inside SVG/HTML elements and attributes.

    >>> escape('<a href="x">')
    '&lt;a href=&quot;x&quot;&gt;'
    """
    return html.escape(str(value), quote=True)


NODE_R = 16  # node radius
_CHAR_W = 6.6  # width of one character of 11px text, roughly: labels must fit their cells
_NODE_W = 84  # the narrowest node cell
_NODE_H = 2 * NODE_R + 36  # circle, name and distribution below it
_PER_ROW = 6  # nodes per line before wrapping
_PAD = 10  # inside a box, around its contents
_LABEL = 20  # inside a box, above its contents: the plate's label
_GAP = 16  # between blocks side by side
_MARGIN = 8

# One colour per plate, in order of first use (the extension and the fallback both read the
# colour from the data, so they agree).
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def plate_colour(index: int) -> str:
    """The colour of the ``index``-th plate.

    >>> plate_colour(0), plate_colour(len(PALETTE))
    ('#4e79a7', '#4e79a7')
    """
    return PALETTE[index % len(PALETTE)]


def _text_width(text: str) -> float:
    return _CHAR_W * len(text) + 8


@dataclass
class _Block:
    """Part of a diagram: its size, and the nodes and boxes in it, relative to its corner."""

    width: float = 0.0
    height: float = 0.0
    nodes: list[dict[str, Any]] = field(default_factory=list)
    boxes: list[dict[str, Any]] = field(default_factory=list)

    def place(self, inner: _Block, x: float, y: float) -> None:
        self.nodes += [{**node, "x": node["x"] + x, "y": node["y"] + y} for node in inner.nodes]
        self.boxes += [{**box, "x": box["x"] + x, "y": box["y"] + y} for box in inner.boxes]


def _node_row(sites: Sequence[str], widths: Mapping[str, float]) -> _Block:
    block = _Block()
    for start in range(0, len(sites), _PER_ROW):
        x = 0.0
        for site in sites[start : start + _PER_ROW]:
            block.nodes.append(
                {"site": site, "x": x + widths[site] / 2, "y": block.height + 4 + NODE_R}
            )
            x += widths[site]
        block.width = max(block.width, x)
        block.height += _NODE_H
    return block


def _boxed(plate: str, label: str, inner: _Block) -> _Block:
    block = _Block(max(inner.width, _text_width(label)) + 2 * _PAD, _LABEL + inner.height + _PAD)
    block.place(inner, _PAD, _LABEL)
    block.boxes.append({"plate": plate, "label": label, "x": 0.0, "y": 0.0, **_size(block)})
    return block


def _size(block: _Block) -> dict[str, float]:
    return {"width": block.width, "height": block.height}


def _side_by_side(blocks: Sequence[_Block]) -> _Block:
    row = _Block()
    for block in blocks:
        if not block.nodes:
            continue
        x = row.width + _GAP if row.nodes else 0.0
        row.place(block, x, 0.0)
        row.width = x + block.width
        row.height = max(row.height, block.height)
    return row


def _crossed(p: str, q: str, labels: Mapping[str, str], cells: Sequence[_Block]) -> _Block:
    """Cells (neither, only q, only p, both) in a grid: p is the bottom row, q the right
    column."""
    neither, only_q, only_p, both = cells
    left = max(neither.width, only_p.width, _text_width(labels[p]))
    right = max(only_q.width, both.width, _text_width(labels[q]))
    q_left = _PAD + left + _GAP
    p_top = _LABEL + max(neither.height, only_q.height) + _GAP
    block = _Block(q_left + _PAD + right + _PAD, p_top + _LABEL + max(only_p.height, both.height))
    block.height += _PAD
    for cell, x, y in (
        (neither, _PAD, _LABEL),
        (only_q, q_left + _PAD, _LABEL),
        (only_p, _PAD, p_top + _LABEL),
        (both, q_left + _PAD, p_top + _LABEL),
    ):
        block.place(cell, x, y)
    block.boxes.append(
        {"plate": p, "label": labels[p], "x": 0.0, "y": p_top}
        | {"width": block.width, "height": block.height - p_top}
    )
    block.boxes.append(
        {"plate": q, "label": labels[q], "x": q_left, "y": 0.0}
        | {"width": block.width - q_left, "height": block.height}
    )
    return block


def _arrange(
    sites: Sequence[str],
    plates_of: Mapping[str, frozenset[str]],
    drawn: frozenset[str],
    labels: Mapping[str, str],
    widths: Mapping[str, float],
) -> _Block:
    members: dict[str, list[str]] = {}
    for site in sites:
        for plate in plates_of[site] - drawn:
            members.setdefault(plate, []).append(site)
    if not members:
        return _node_row(sites, widths)
    # The biggest plate first (dicts keep first use, which breaks ties): nothing can hold it
    # without holding exactly its sites.
    p = max(members, key=lambda plate: len(members[plate]))
    inside = set(members[p])

    def crosses(q: str) -> bool:
        theirs = set(members[q])
        return bool(theirs & inside) and bool(theirs - inside) and bool(inside - theirs)

    crossing = [q for q in members if q != p and crosses(q)]
    if not crossing:
        outside = [site for site in sites if site not in inside]
        boxed = _boxed(p, labels[p], _arrange(members[p], plates_of, drawn | {p}, labels, widths))
        return _side_by_side([_arrange(outside, plates_of, drawn, labels, widths), boxed])
    q = max(crossing, key=lambda plate: len(members[plate]))
    in_q = set(members[q])
    cells = []
    for in_p, in_q_cell in ((False, False), (False, True), (True, False), (True, True)):
        cell_sites = [s for s in sites if (s in inside) == in_p and (s in in_q) == in_q_cell]
        cell_drawn = drawn | ({p} if in_p else set()) | ({q} if in_q_cell else set())
        cells.append(_arrange(cell_sites, plates_of, frozenset(cell_drawn), labels, widths))
    return _crossed(p, q, labels, cells)


def _control_point(start: Mapping[str, float], end: Mapping[str, float]) -> tuple[float, float]:
    """The control point of the quadratic curve from ``start`` to ``end``: left of the
    direction, bent more between nodes of one row."""
    x1, y1, x2, y2 = start["x"], start["y"], end["x"], end["y"]
    length = math.hypot(x2 - x1, y2 - y1)
    normal_x, normal_y = (y2 - y1) / length, -(x2 - x1) / length  # left of the direction
    bend = (0.25 if abs(y2 - y1) < 1 else 0.1) * length
    return (x1 + x2) / 2 + bend * normal_x, (y1 + y2) / 2 + bend * normal_y


def _vertical_extent(start: Mapping[str, float], end: Mapping[str, float]) -> tuple[float, float]:
    """The highest and lowest y the curve between two centres reaches (at its turning point,
    where ``dy/dt = 0``, or at its ends)."""
    y1, y2 = start["y"], end["y"]
    _, cy = _control_point(start, end)
    ys = [y1, y2]
    curvature = y1 - 2 * cy + y2
    if curvature:
        t = (y1 - cy) / curvature
        if 0 < t < 1:
            ys.append((1 - t) ** 2 * y1 + 2 * t * (1 - t) * cy + t**2 * y2)
    return min(ys), max(ys)


def _edge_geometry(start: Mapping[str, float], end: Mapping[str, float]) -> dict[str, str]:
    """A gently curved path from one node's rim to another's, and its arrow head (a polygon:
    SVG marker ids would clash between several diagrams on one page). Edges between nodes of
    one row bend more, or they would run through the nodes between them."""
    x1, y1, x2, y2 = start["x"], start["y"], end["x"], end["y"]
    cx, cy = _control_point(start, end)

    def rim(x: float, y: float) -> tuple[float, float, float, float]:
        towards = math.hypot(cx - x, cy - y) or 1.0
        ux, uy = (cx - x) / towards, (cy - y) / towards
        return x + NODE_R * ux, y + NODE_R * uy, ux, uy

    sx, sy, _, _ = rim(x1, y1)
    ex, ey, ux, uy = rim(x2, y2)  # (ux, uy) points from the tip back along the path
    back_x, back_y = ex + 8 * ux, ey + 8 * uy
    head = [
        (ex, ey),
        (back_x - 3.5 * uy, back_y + 3.5 * ux),
        (back_x + 3.5 * uy, back_y - 3.5 * ux),
    ]
    return {
        "path": f"M {sx:.1f} {sy:.1f} Q {cx:.1f} {cy:.1f} {ex:.1f} {ey:.1f}",
        "head": " ".join(f"{x:.1f},{y:.1f}" for x, y in head),
    }


def layout(
    sites: Sequence[tuple[str, Sequence[str]]],
    plate_labels: Mapping[str, str],
    edges: Sequence[tuple[str, str]] = (),
    captions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Positions for a plate diagram of ``sites`` (name, the names of its plates), with each
    plate's label (its box is wide enough for it) and each site's caption under its name:
    ``{"width", "height", "nodes": [{"site", "x", "y"}] (centres), "plates": [{"plate",
    "label", "x", "y", "width", "height"}] (a plate may have several boxes), "edges":
    [{"source", "target", "path", "head"}] (SVG path data and the arrow head's polygon
    points)}``.

    >>> shape = layout([("a", ()), ("b", ())], {}, edges=[("a", "b")])
    >>> shape["edges"][0]["path"].startswith("M ")
    True
    """
    captions = captions or {}
    plates_of = {name: frozenset(plates) for name, plates in sites}
    widths = {
        name: max(_NODE_W, _text_width(name), _text_width(captions.get(name, "")))
        for name, _ in sites
    }
    block = _arrange([name for name, _ in sites], plates_of, frozenset(), plate_labels, widths)
    shape = _Block(block.width + 2 * _MARGIN, block.height + 2 * _MARGIN)
    shape.place(block, _MARGIN, _MARGIN)
    centres = {node["site"]: node for node in shape.nodes}
    drawn = [
        (source, target)
        for source, target in edges
        if source != target and source in centres and target in centres
    ]
    # A long edge within one row bends up (or down) past the blocks: grow the picture so the
    # curve stays inside it.
    extents = [_vertical_extent(centres[source], centres[target]) for source, target in drawn]
    above = max([0.0] + [_MARGIN - top for top, _ in extents])
    below = max([0.0] + [bottom - (shape.height - _MARGIN) for _, bottom in extents])
    if above or below:
        grown = _Block(shape.width, shape.height + above + below)
        grown.place(shape, 0.0, above)
        shape = grown
        centres = {node["site"]: node for node in shape.nodes}
    paths = [
        {"source": source, "target": target, **_edge_geometry(centres[source], centres[target])}
        for source, target in drawn
    ]
    return {
        "width": round(shape.width, 1),
        "height": round(shape.height, 1),
        "nodes": [
            {**node, "x": round(node["x"], 1), "y": round(node["y"], 1)} for node in shape.nodes
        ],
        "plates": [
            {
                key: round(value, 1) if isinstance(value, float) else value
                for key, value in box.items()
            }
            for box in shape.boxes
        ],
        "edges": paths,
    }


def to_svg(
    shape: Mapping[str, Any],
    observed: Mapping[str, bool | None],
    colours: Mapping[str, str],
    captions: Mapping[str, str] | None = None,
    css_class: str = "ppl-plate-diagram",
    dashed: Collection[str] = (),
    plain: Collection[str] = (),
) -> str:
    """``shape`` (from :func:`layout`) as an inline SVG string, every name escaped. Observed
    sites are shaded (half shaded where ``observed`` is None: observed in some runs only), sites
    in ``dashed`` get a dashed outline (deterministic values), sites in ``plain`` are drawn as
    their name alone (params), each plate box in its colour.

    >>> svg = to_svg(layout([("<b>", ())], {}), {"<b>": True}, {})
    >>> "&lt;b&gt;" in svg and "<b>" not in svg
    True
    >>> "stroke-dasharray" in to_svg(layout([("d", ())], {}), {}, {}, dashed={"d"})
    True
    """
    captions = captions or {}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(css_class)}" '
        f'width="{shape["width"]}" height="{shape["height"]}" role="img" font-size="11" '
        'font-family="sans-serif">'
    ]
    for box in shape["plates"]:
        colour = escape(colours.get(box["plate"], "#555555"))
        parts.append(
            f'<g class="ppl-plate" data-plate="{escape(box["plate"])}">'
            f'<rect x="{box["x"]}" y="{box["y"]}" width="{box["width"]}" '
            f'height="{box["height"]}" rx="6" fill="{colour}" fill-opacity="0.06" '
            f'stroke="{colour}" stroke-width="1.5"/>'
            f'<text x="{box["x"] + 6}" y="{box["y"] + 14}" fill="{colour}">'
            f"{escape(box['label'])}</text></g>"
        )
    for edge in shape["edges"]:
        parts.append(
            f'<g class="ppl-edge" data-source="{escape(edge["source"])}" '
            f'data-target="{escape(edge["target"])}"><path d="{escape(edge["path"])}" '
            'fill="none" stroke="#444" stroke-width="1.2"/>'
            f'<polygon points="{escape(edge["head"])}" fill="#444"/></g>'
        )
    for node in shape["nodes"]:
        name = node["site"]
        x, y = node["x"], node["y"]
        parts.append(f'<g class="ppl-node" data-site="{escape(name)}">')
        if name in plain:
            parts.append(
                f'<text x="{x}" y="{y + 4}" text-anchor="middle" font-weight="bold">'
                f"{escape(name)}</text>"
            )
        else:
            parts.append(_node_circle(x, y, observed.get(name, False), name in dashed))
            parts.append(
                f'<text x="{x}" y="{y + NODE_R + 13}" text-anchor="middle">{escape(name)}</text>'
            )
        if captions.get(name):
            parts.append(
                f'<text x="{x}" y="{y + NODE_R + 26}" text-anchor="middle" fill="#777" '
                f'font-size="10">{escape(captions[name])}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


_SHADE = "#c8c8c8"


def _node_circle(x: float, y: float, observed: bool | None, dashed: bool) -> str:
    outline = ' stroke-dasharray="4,2"' if dashed else ""
    fill = _SHADE if observed else "#ffffff"
    circle = f'<circle cx="{x}" cy="{y}" r="{NODE_R}" fill="{fill}" stroke="#222"{outline}/>'
    if observed is not None:
        return circle
    # Observed in some runs only: the left half shaded (Graphviz draws a gray:white gradient).
    half = (
        f'<path d="M {x} {y - NODE_R} A {NODE_R} {NODE_R} 0 0 0 {x} {y + NODE_R} Z" '
        f'fill="{_SHADE}"/>'
    )
    outline_only = f'<circle cx="{x}" cy="{y}" r="{NODE_R}" fill="none" stroke="#222"{outline}/>'
    return circle + half + outline_only


__all__ = ["NODE_R", "PALETTE", "escape", "layout", "plate_colour", "to_svg"]
