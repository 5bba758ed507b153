"""The trace inspector: every site of one model run with its distribution, shapes, plates and
log-density, and the plates with their sites. ``%%model`` and ``%trace`` show it.

The rows live in traits, so a saved notebook keeps them. The bundle also carries them as
``application/vnd.pplkernel.trace+json`` (``TRACE_MIME``), which the JupyterLab extension renders
as a sortable, plate-grouped table, and as escaped HTML for frontends with neither.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     with engine.plate("data", 3):
...         engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(3))
>>> inspector = TraceInspector.from_trace(poutine.trace(model).get_trace(), title="model")
>>> inspector.sites[0]["site"], inspector.plates[0]["size"]
('x', 3)
>>> inspector.to_json()["plates"][0]["colour"]
'#4e79a7'
"""

from __future__ import annotations

import pathlib
from typing import Any

import anywidget
import traitlets

from engine.poutine.shape_table import plate_rows, shown_columns, site_rows
from widgets.diagram import diagram_of, diagram_svg, plate_colours
from widgets.html import HtmlFallback, escape, table

TRACE_MIME = "application/vnd.pplkernel.trace+json"


class TraceInspector(HtmlFallback, anywidget.AnyWidget):
    """A table of a trace's sites and a list of its plates (see the module docstring)."""

    _esm = pathlib.Path(__file__).with_name("inspector.js")
    mime_type = TRACE_MIME
    title = traitlets.Unicode("").tag(sync=True)
    sites = traitlets.List().tag(sync=True)
    plates = traitlets.List().tag(sync=True)
    # The plate diagram, drawn here (widgets.diagram.diagram_svg) and kept in step with the
    # rows: the view and the HTML fallback show the same picture.
    diagram_svg = traitlets.Unicode("").tag(sync=True)

    @classmethod
    def from_trace(cls, trace: Any, title: str = "") -> TraceInspector:
        """Inspect ``trace`` (log-densities are shown where the trace computed them)."""
        return cls(title=title, sites=site_rows(trace), plates=plate_rows(trace))

    @traitlets.observe("sites", "plates")
    def _draw_diagram(self, change: Any) -> None:
        self.diagram_svg = diagram_svg(self.sites, self.plates) if self.sites else ""

    def _rows(self, columns: list[str]) -> list[list[object]]:
        rows = []
        for site in self.sites:
            total = site.get("log_prob_sum")
            shown_total = f"{total:.4g}" if isinstance(total, float) else str(total or "")
            rows.append([*(site[column] for column in columns), shown_total])
        return rows

    def to_json(self) -> dict[str, Any]:
        """The inspector as ``TRACE_MIME`` data: ``{"title", "sites" (shape_table.site_rows),
        "plates" (plate_rows, each with its "colour"), "diagram" (widgets.diagram.layout)}``;
        only strings, numbers, booleans and None, so it is valid JSON."""
        colours = plate_colours(self.plates)
        return {
            "title": self.title,
            "sites": [dict(site) for site in self.sites],
            "plates": [{**plate, "colour": colours[plate["name"]]} for plate in self.plates],
            "diagram": diagram_of(self.sites, self.plates),
        }

    def to_html(self) -> str:
        """The inspector as static, escaped HTML."""
        plates = ", ".join(
            f"{escape(p['name'])} (size {p['size']}, dim {p['dim']}): "
            + escape(", ".join(p["sites"]))
            for p in self.plates
        )
        parts = [f"<div class='ppl-inspector'><b>{escape(self.title or 'Trace')}</b>"]
        columns = shown_columns(self.sites)
        parts.append(table([*columns, "log_prob sum"], self._rows(columns)))
        if plates:
            parts.append(f"<div>plates: {plates}</div>")
        parts.append(self.diagram_svg)
        parts.append("</div>")
        return "".join(parts)
