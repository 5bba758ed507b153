"""The shape table: every site of a trace with its distribution, shapes, log-prob shape and plates.

This is the first thing to read when a model's shapes go wrong, so errors raised while tracing
carry it too. Log-prob shapes are worked out from the value and batch shapes when the trace has not
computed them, so printing the table never evaluates a density.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     with engine.plate("data", 3):
...         engine.sample("x", dist.Normal(0.0, 1.0))
>>> print(poutine.trace(model).get_trace().format_shapes())
Trace shapes
 site  kind    distribution  batch  event  value  log_prob  plates
 x     sample  Normal        (3,)   ()     (3,)   (3,)      data@-1
"""

from __future__ import annotations

import torch

from engine.errors import fmt_shape
from engine.poutine.trace_struct import log_prob_shape
from engine.runtime import Message, is_subsample_site


def _distribution_name(fn: object) -> str:
    name = type(fn).__name__
    base = getattr(fn, "base_dist", None)
    ndims = getattr(fn, "reinterpreted_batch_ndims", None)
    if base is not None and ndims is not None:
        return f"{_distribution_name(base)}.to_event({ndims})"
    if base is not None and name.startswith("Masked"):
        return f"{_distribution_name(base)}.mask()"
    return name


def _log_prob_shape(site: Message) -> str:
    shape = log_prob_shape(site)
    if shape is not None:
        return fmt_shape(shape)
    return "?" if not isinstance(site["value"], torch.Tensor) else "mismatch"


def _plates(site: Message) -> str:
    parts = []
    for frame in site.get("cond_indep_stack", ()):
        where = f"@{frame.dim}" if frame.vectorized else f"[{frame.counter}]"
        parts.append(f"{frame.name}{where}")
    return " ".join(parts)


def _site_row(name: str, site: Message) -> list[str] | None:
    value = site.get("value")
    value_shape = fmt_shape(value.shape) if isinstance(value, torch.Tensor) else "-"
    if site["type"] == "param":
        return [name, "param", "", "", "", value_shape, "", _plates(site)]
    if site["type"] != "sample":
        return None
    if is_subsample_site(site):
        return [name, "subsample", "", "", "", value_shape, "", _plates(site)]
    fn = site["fn"]
    kind = "observed" if site["is_observed"] else "sample"
    if site["infer"].get("_deterministic", False):
        kind = "determ."
    has_shapes = hasattr(fn, "batch_shape")
    return [
        name,
        kind,
        _distribution_name(fn),
        fmt_shape(fn.batch_shape) if has_shapes else "",
        fmt_shape(fn.event_shape) if has_shapes else "",
        value_shape,
        _log_prob_shape(site),
        _plates(site),
    ]


def format_site_table(trace, title: str = "Trace shapes") -> str:
    """Render ``trace`` (a :class:`~engine.poutine.trace_struct.Trace`) as an aligned text table."""
    header = ["site", "kind", "distribution", "batch", "event", "value", "log_prob", "plates"]
    rows = [row for name, site in trace.nodes.items() if (row := _site_row(name, site))]
    if not rows:
        return f"{title}\n (no sites)"
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [title]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append(" " + "  ".join(cells).rstrip())
    return "\n".join(lines)
