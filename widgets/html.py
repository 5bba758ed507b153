"""Small helpers for the static HTML fallbacks: every string from user data is escaped here.

>>> "&lt;img src=x onerror=alert(1)&gt;" in table(["site"], [["<img src=x onerror=alert(1)>"]])
True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence


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
