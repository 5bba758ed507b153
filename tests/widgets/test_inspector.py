"""The trace inspector's MIME bundle: the widget view, the escaped HTML fallback and the
JSON data the JupyterLab extension renders."""

import json

import torch

import engine
import engine.distributions as dist
from engine import poutine
from widgets import TraceInspector
from widgets.inspector import TRACE_MIME

XSS = "<img src=x onerror=alert(1)>"


def model():
    mu = engine.sample("mu", dist.Normal(0.0, 1.0))
    with engine.plate("data", 3):
        engine.sample(XSS, dist.Normal(mu, 1.0), obs=torch.zeros(3))
        engine.sample("bad", dist.Normal(mu, 1.0), obs=torch.full((3,), float("inf")))


def bundle():
    trace = poutine.trace(model).get_trace()
    trace.compute_log_prob()
    return TraceInspector.from_trace(trace, title="demo")._repr_mimebundle_()[0]


def test_bundle_has_the_widget_the_fallback_and_the_trace_json():
    data = bundle()
    assert {"application/vnd.jupyter.widget-view+json", "text/html", TRACE_MIME} <= set(data)
    assert "<img" not in data["text/html"]


def test_trace_json_is_json_safe_and_carries_rows_plates_and_diagram():
    payload = json.loads(json.dumps(bundle()[TRACE_MIME], allow_nan=False))
    assert payload["title"] == "demo"
    rows = {row["site"]: row for row in payload["sites"]}
    assert list(rows) == ["mu", XSS, "bad"]
    assert rows[XSS]["observed"] and rows[XSS]["value"] == "(3,)"
    assert rows[XSS]["plates"] == "data@-1"
    assert isinstance(rows["mu"]["log_prob_sum"], float)
    assert rows["bad"]["log_prob_sum"] in ("-inf", "nan")  # not a JSON number: text
    assert payload["plates"] == [
        {"name": "data", "size": 3, "dim": -1, "sites": [XSS, "bad"], "colour": "#4e79a7"}
    ]
    diagram = payload["diagram"]
    assert [box["plate"] for box in diagram["plates"]] == ["data"]
    assert [node["site"] for node in diagram["nodes"]] == ["mu", XSS, "bad"]
    assert diagram["edges"] == []


def test_the_widget_and_its_fallback_show_one_drawing_of_the_plate_diagram():
    trace = poutine.trace(model).get_trace()
    inspector = TraceInspector.from_trace(trace, title="demo")
    svg = inspector.diagram_svg
    # Drawn once, in Python: plate colour, captions, observed sites shaded, names escaped.
    assert 'data-plate="data"' in svg and 'stroke="#4e79a7"' in svg
    assert svg.count('class="ppl-node"') == 3 and ">Normal<" in svg
    assert "<img" not in svg and "&lt;img" in svg
    assert svg in inspector.to_html()
    inspector.sites = inspector.sites[:1]  # another run: the drawing follows the rows
    assert inspector.diagram_svg.count('class="ppl-node"') == 1
