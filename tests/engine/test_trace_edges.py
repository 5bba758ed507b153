"""Dependency edges of a trace: ``Trace.add_edge`` and the rest, ``trace(graph_type="dense")``."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.poutine import Trace


def _diamond() -> Trace:
    tr = Trace()
    for edge in [("top", "left"), ("top", "right"), ("left", "bottom"), ("right", "bottom")]:
        tr.add_edge(*edge)
    return tr


def test_topological_sort_puts_every_node_after_its_predecessors():
    tr = _diamond()
    tr.add_edge("alone_before", "top")
    order = tr.topological_sort()
    assert sorted(order) == sorted(tr.nodes)
    for before, after in tr.edges:
        assert order.index(before) < order.index(after)
    assert tr.topological_sort(reverse=True) == order[::-1]
    assert tr.predecessors("bottom") == {"left", "right"}
    assert tr.successors("top") == {"left", "right"}


def test_remove_node_drops_its_edges_and_copy_keeps_them():
    tr = _diamond()
    kept = tr.copy()
    tr.remove_node("left")
    assert ("top", "left") not in tr.edges and ("left", "bottom") not in tr.edges
    assert tr.predecessors("bottom") == {"right"}
    assert kept.predecessors("bottom") == {"left", "right"}
    assert tr.topological_sort() == ["top", "right", "bottom"]


def test_a_cycle_is_reported_with_its_nodes():
    tr = Trace()
    tr.add_edge("a", "b")
    tr.add_edge("b", "a")
    with pytest.raises(ValueError, match=r"cycle through \['a', 'b'\]"):
        tr.topological_sort()


def model_with_plates():
    loc = engine.sample("loc", dist.Normal(0.0, 1.0))
    for i in engine.plate("groups", 2):
        engine.sample(f"group_{i}", dist.Normal(loc, 1.0))
    with engine.plate("rows", 10, subsample_size=3):
        engine.sample("row", dist.Normal(loc, 1.0))


def test_dense_trace_links_each_sample_site_to_earlier_ones_but_not_across_iterations():
    tr = poutine.trace(model_with_plates, graph_type="dense").get_trace()
    assert tr.graph_type == "dense"
    assert set(tr.edges) == {
        ("loc", "group_0"),
        ("loc", "group_1"),
        ("loc", "row"),
        ("group_0", "row"),
        ("group_1", "row"),
    }
    # the mini-batch indices of "rows" are not a variable: no edge touches them
    assert "rows" in tr.nodes and not tr.predecessors("rows") and not tr.successors("rows")


def test_flat_trace_records_no_edges_and_replay_reads_a_dense_one():
    flat = poutine.trace(model_with_plates).get_trace()
    assert flat.graph_type == "flat" and flat.edges == []
    dense = poutine.trace(model_with_plates, graph_type="dense").get_trace()
    replayed = poutine.trace(poutine.replay(model_with_plates, trace=dense)).get_trace()
    assert torch.equal(replayed.nodes["loc"]["value"], dense.nodes["loc"]["value"])


def test_an_unknown_graph_type_names_the_two_there_are():
    with pytest.raises(ValueError, match=r"'flat'.*'dense'"):
        poutine.trace(model_with_plates, graph_type="sparse")
