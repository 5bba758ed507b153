"""Small helpers for the static HTML fallbacks (every string from user data is escaped here),
and the mixin that puts a view's fallback and its JSON MIME type into its bundle.

>>> "&lt;img src=x onerror=alert(1)&gt;" in table(["site"], [["<img src=x onerror=alert(1)>"]])
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

# One escaping rule for every view: the engine's, which its own drawings use too.
from engine.infer.plate_diagram import escape


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
    """Mixin for views: add ``text/html`` from ``self.to_html()`` to the MIME bundle, for
    frontends (and saved notebooks) that cannot render the view, and, when the class names a
    ``mime_type``, that type with ``self.to_json()`` (JSON-safe data for the JupyterLab
    extension's renderer). A widget keeps its own bundle entries; a plain object gets these.

    >>> class Note(HtmlFallback):
    ...     mime_type = "application/vnd.example+json"
    ...     def to_html(self):
    ...         return "<p>hi</p>"
    ...     def to_json(self):
    ...         return {"text": "hi"}
    >>> sorted(Note()._repr_mimebundle_()[0])
    ['application/vnd.example+json', 'text/html']
    """

    mime_type: ClassVar[str | None] = None

    def to_html(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} must define to_html()")

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} names a mime_type: define to_json()")

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict]:
        parent = getattr(super(), "_repr_mimebundle_", None)
        bundle = parent(**kwargs) if parent is not None else {}
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = self.to_html()
        if self.mime_type is not None:
            data[self.mime_type] = self.to_json()
        return data, dict(metadata or {})
