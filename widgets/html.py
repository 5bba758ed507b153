"""Small helpers for the static HTML fallbacks: every string from user data is escaped here.

>>> "&lt;img src=x onerror=alert(1)&gt;" in table(["site"], [["<img src=x onerror=alert(1)>"]])
True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


def escape(value: object) -> str:
    """Any value as text, safe inside HTML elements and attributes."""
    return html.escape(str(value), quote=True)


def table(
    header: Sequence[str], rows: Iterable[Sequence[object]], css_class: str = "ppl-table"
) -> str:
    """An HTML table with escaped cells."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f'<table class="{escape(css_class)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


class HtmlFallback:
    """Mixin for widgets: add ``text/html`` from ``self.to_html()`` to the widget's MIME bundle,
    for frontends (and saved notebooks) that cannot render the widget."""

    def to_html(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict]:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = self.to_html()
        return data, metadata
