"""The model graph (widgets.graph) and the plate-diagram layout (widgets.diagram): edges from a
real run, plates and overlapping plates laid out truthfully, escaped HTML, JSON-safe data."""

import json
import re

import torch

import engine
import engine.distributions as dist
from widgets.diagram import NODE_R, layout
from widgets.graph import GRAPH_MIME, ModelGraph

XSS = "<img src=x onerror=alert(1)>"


def normal_model(data):
    mu = engine.sample("mu", dist.Normal(0.0, 1.0))
    sigma = engine.sample("sigma", dist.HalfNormal(1.0))
    engine.sample("alone", dist.Normal(0.0, 1.0))
    with engine.plate("data", len(data)):
        engine.sample("x", dist.Normal(mu, sigma), obs=data)


def crossed_model():
    users = engine.plate("users", 3, dim=-2)
    items = engine.plate("items", 4, dim=-1)
    g = engine.sample("g", dist.Normal(0.0, 1.0))
    with users:
        u = engine.sample("u", dist.Normal(0.0, 1.0).expand([3, 1]))
    with items:
        v = engine.sample("v", dist.Normal(0.0, 1.0).expand([4]))
    with users, items:
        engine.sample("r", dist.Normal(u * v + g, 1.0), obs=torch.zeros(3, 4))


def test_edges_nodes_and_plates_of_a_small_model():
    graph = ModelGraph.from_model(normal_model, (torch.zeros(5),), title="normal")
    assert sorted(graph.edges) == [("mu", "x"), ("sigma", "x")]
    assert not any("alone" in edge for edge in graph.edges)
    nodes = {node["name"]: node for node in graph.nodes}
    assert list(nodes) == ["mu", "sigma", "alone", "x"]
    assert nodes["x"]["observed"] and not nodes["mu"]["observed"]
    assert nodes["x"]["plates"] == ["data"] and nodes["sigma"]["distribution"] == "HalfNormal"
    assert graph.plates == [{"name": "data", "size": 5, "dim": -1, "sites": ["x"]}]


def _inside(node, box):
    return (
        box["x"] < node["x"] - NODE_R
        and node["x"] + NODE_R < box["x"] + box["width"]
        and box["y"] < node["y"] - NODE_R
        and node["y"] + NODE_R < box["y"] + box["height"]
    )


def _check_boxes_hold_exactly_their_sites(shape, plates_of):
    for box in shape["plates"]:
        for node in shape["nodes"]:
            if _inside(node, box):
                assert box["plate"] in plates_of[node["site"]], (box["plate"], node["site"])
    for node in shape["nodes"]:
        for plate in plates_of[node["site"]]:
            boxes = [box for box in shape["plates"] if box["plate"] == plate]
            assert any(_inside(node, box) for box in boxes), (plate, node["site"])


def test_overlapping_plates_are_recorded_and_drawn_overlapping():
    graph = ModelGraph.from_model(crossed_model)
    nodes = {node["name"]: node for node in graph.nodes}
    assert sorted(nodes["r"]["plates"]) == ["items", "users"]
    assert sorted(graph.edges) == [("g", "r"), ("u", "r"), ("v", "r")]
    shape = graph.to_json()["layout"]
    boxes = {box["plate"]: box for box in shape["plates"]}
    assert set(boxes) == {"users", "items"}  # one box each: the two overlap, neither nests
    users, items = boxes["users"], boxes["items"]
    assert users["x"] < items["x"] and items["y"] < users["y"]
    _check_boxes_hold_exactly_their_sites(shape, {n: set(v["plates"]) for n, v in nodes.items()})


def test_any_mix_of_nested_and_crossing_plates_is_drawn_truthfully():
    plates_of = {
        "g": set(),
        "a": {"A"},
        "b": {"B"},
        "c": {"C"},
        "ab": {"A", "B"},
        "abc": {"A", "B", "C"},
        "n": {"outer", "inner"},
        "o": {"outer"},
    }
    labels = {plate: plate for plate in ("A", "B", "C", "outer", "inner")}
    shape = layout([(site, sorted(plates)) for site, plates in plates_of.items()], labels)
    assert {node["site"] for node in shape["nodes"]} == set(plates_of)
    _check_boxes_hold_exactly_their_sites(shape, plates_of)


def test_html_fallback_escapes_site_names():
    def model():
        a = engine.sample(XSS, dist.Normal(0.0, 1.0))
        with engine.plate(XSS + "plate", 2):
            engine.sample("b", dist.Normal(a, 1.0))

    graph = ModelGraph.from_model(model, title=XSS)
    assert graph.edges == [(XSS, "b")]
    html = graph._repr_mimebundle_()[0]["text/html"]
    assert "<img" not in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 4  # title, node, edge, plate
    assert len(re.findall(r"<g class=\"ppl-node\"", html)) == 2
    assert len(re.findall(r"<g class=\"ppl-edge\"", html)) == 1


def test_the_bundle_is_json_safe_and_self_consistent():
    data, _ = ModelGraph.from_model(normal_model, (torch.zeros(5),))._repr_mimebundle_()
    payload = json.loads(json.dumps(data[GRAPH_MIME], allow_nan=False))
    assert [node["name"] for node in payload["nodes"]] == ["mu", "sigma", "alone", "x"]
    assert sorted((e["source"], e["target"]) for e in payload["edges"]) == [
        ("mu", "x"),
        ("sigma", "x"),
    ]
    assert re.fullmatch(r"#[0-9a-f]{6}", payload["plates"][0]["colour"])
    drawn = payload["layout"]
    assert {n["site"] for n in drawn["nodes"]} == {"mu", "sigma", "alone", "x"}
    assert len(drawn["edges"]) == 2 and all(e["path"].startswith("M ") for e in drawn["edges"])
    assert "text/plain" not in data  # IPython adds the repr itself
    assert repr(ModelGraph([], [], [], "t")) == "ModelGraph('t': 0 sites, 0 edges, 0 plates)"
