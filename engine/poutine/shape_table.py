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

import math

import torch

from engine.distributions.torch_distribution import ExpandedDistribution
from engine.errors import fmt_shape
from engine.poutine.trace_struct import log_prob_shape
from engine.runtime import Message, is_subsample_site


def distribution_name(fn: object) -> str:
    """The name a table or a message shows for a distribution.

    >>> import torch, engine.distributions as dist
    >>> distribution_name(dist.Normal(torch.zeros(3), 1.0).to_event(1))
    'Normal.to_event(1)'
    """
    name = type(fn).__name__
    base = getattr(fn, "base_dist", None)
    if isinstance(fn, ExpandedDistribution):
        # A plate broadcast a distribution that has no ``expand`` of its own (one the user wrote
        # as a TorchDistribution subclass): the table names what the model's code wrote.
        return distribution_name(base)
    ndims = getattr(fn, "reinterpreted_batch_ndims", None)
    if base is not None and ndims is not None:
        return f"{distribution_name(base)}.to_event({ndims})"
    if base is not None and name.startswith("Masked"):
        return f"{distribution_name(base)}.mask()"
    return name


def _log_prob_shape(site: Message) -> str:
    shape = log_prob_shape(site)
    if shape is not None:
        return fmt_shape(shape)
    return "?" if not isinstance(site["value"], torch.Tensor) else "mismatch"


def _enum_dims(site: Message) -> str:
    """The enumeration dims a site's log-density runs along, named by the enumerated site each
    holds (``z@-2``); an enumerated site's own dim is starred (``*z@-2``)."""
    own = site["infer"].get("_enumerate_dim")
    shape = log_prob_shape(site)
    parts = []
    for dim, holder in sorted(site["infer"].get("_enum_dims", {}).items(), reverse=True):
        varies = shape is not None and -dim <= len(shape) and shape[dim] != 1
        if dim == own:
            parts.append(f"*{holder}@{dim}")
        elif varies:
            parts.append(f"{holder}@{dim}")
    return " ".join(parts)


def _plates(site: Message) -> str:
    parts = []
    for frame in site.get("cond_indep_stack", ()):
        where = f"@{frame.dim}" if frame.vectorized else f"[{frame.counter}]"
        parts.append(f"{frame.name}{where}")
    return " ".join(parts)


COLUMNS = ("site", "kind", "distribution", "batch", "event", "value", "log_prob", "plates", "enum")


def _site_row(name: str, site: Message) -> dict[str, object] | None:
    value = site.get("value")
    value_shape = fmt_shape(value.shape) if isinstance(value, torch.Tensor) else "-"
    row: dict[str, object] = dict.fromkeys(COLUMNS, "")
    row.update(site=name, value=value_shape, plates=_plates(site), observed=False)
    row["log_prob_sum"] = None
    if site["type"] == "param":
        row["kind"] = "param"
        return row
    if site["type"] != "sample":
        return None
    if is_subsample_site(site):
        row["kind"] = "subsample"
        return row
    fn = site["fn"]
    kind = "observed" if site["is_observed"] else "sample"
    if site["infer"].get("_deterministic", False):
        kind = "determ."
    has_shapes = hasattr(fn, "batch_shape")
    row.update(
        kind=kind,
        distribution=distribution_name(fn),
        batch=fmt_shape(fn.batch_shape) if has_shapes else "",
        event=fmt_shape(fn.event_shape) if has_shapes else "",
        log_prob=_log_prob_shape(site),
        enum=_enum_dims(site),
        observed=kind == "observed",
    )
    if "log_prob_sum" in site:
        total = float(torch.as_tensor(site["log_prob_sum"]).detach())
        row["log_prob_sum"] = total if math.isfinite(total) else str(total)
    return row


def site_rows(trace) -> list[dict[str, object]]:
    """One record per site: the table's columns as text, plus ``observed`` and ``log_prob_sum``
    (None unless the trace computed it; ``"-inf"``, ``"inf"`` or ``"nan"`` as text when not
    finite). The text table and the notebook inspector share it.

    >>> import engine, engine.distributions as dist
    >>> from engine import poutine
    >>> def model():
    ...     engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
    >>> row = site_rows(poutine.trace(model).get_trace())[0]
    >>> row["site"], row["kind"], row["observed"]
    ('x', 'observed', True)
    """
    return [row for name, site in trace.nodes.items() if (row := _site_row(name, site))]


def plate_rows(trace) -> list[dict[str, object]]:
    """The vectorised plates of a trace: ``{"name", "size", "dim", "sites"}`` each, in order of
    first use (for a plate diagram)."""
    plates: dict[str, dict[str, object]] = {}
    for name, site in trace.nodes.items():
        for frame in site.get("cond_indep_stack", ()):
            if not frame.vectorized:
                continue
            entry = plates.setdefault(
                frame.name, {"name": frame.name, "size": frame.size, "dim": frame.dim, "sites": []}
            )
            if not is_subsample_site(site):
                entry["sites"].append(name)
    return list(plates.values())


def shown_columns(rows: list[dict[str, object]]) -> list[str]:
    """The columns worth showing for these rows: ``enum`` only when something is enumerated.

    >>> shown_columns([{"enum": ""}])[-1], shown_columns([{"enum": "*z@-2"}])[-1]
    ('plates', 'enum')
    """
    enumerated = any(row.get("enum") for row in rows)
    return [column for column in COLUMNS if column != "enum" or enumerated]


def format_site_table(trace, title: str = "Trace shapes", culprit: Message | None = None) -> str:
    """Render ``trace`` (a :class:`~engine.poutine.trace_struct.Trace`) as an aligned text table.

    ``culprit`` is a site the trace never recorded because an error stopped it (its distribution
    refused its arguments): it is shown last, with ``-`` for the value and log-prob it never got.
    """
    records = site_rows(trace)
    if culprit is not None and (row := _site_row(culprit["name"], culprit)) is not None:
        row.update(value="-", log_prob="-")
        records.append(row)
    header = shown_columns(records)
    rows = [[str(row[column]) for column in header] for row in records]
    if not rows:
        return f"{title}\n (no sites)"
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [title]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append(" " + "  ".join(cells).rstrip())
    return "\n".join(lines)
