"""The Trace API: node selections, log densities, format_shapes, copies."""

import re

import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine


def model(data):
    w = pyro.param("w", torch.tensor(0.5))
    mu = pyro.sample("mu", dist.Normal(w, 1.0))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=data)
    pyro.deterministic("twice_mu", 2 * mu)
    pyro.factor("penalty", -mu.abs())
    return mu


def test_node_selections():
    tr = poutine.trace(model).get_trace(torch.zeros(3))
    assert tr.param_nodes == ["w"]
    assert tr.stochastic_nodes == ["mu"]
    assert tr.observation_nodes == ["obs", "twice_mu", "penalty"]
    assert [name for name, _ in tr.iter_stochastic_nodes()] == ["mu"]
    assert "mu" in tr and len(tr) == 7


def test_log_prob_sum_and_compute_log_prob():
    data = torch.tensor([0.1, -0.3, 0.7])
    tr = poutine.trace(model).get_trace(data)
    mu = tr.nodes["mu"]["value"]
    expected = (
        dist.Normal(0.5, 1.0).log_prob(mu) + dist.Normal(mu, 1.0).log_prob(data).sum() - mu.abs()
    )
    assert torch.allclose(tr.log_prob_sum(), expected)
    tr.compute_log_prob()
    assert tr.nodes["obs"]["log_prob"].shape == (3,)
    assert tr.nodes["twice_mu"]["log_prob"] == 0  # deterministic sites carry no density
    only_obs = tr.log_prob_sum(lambda name, site: name == "obs")
    assert torch.allclose(only_obs, dist.Normal(mu, 1.0).log_prob(data).sum())


def test_log_prob_keeps_the_unscaled_value():
    def scaled():
        with pyro.plate("d", 10, subsample_size=2):
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(2))

    tr = poutine.trace(scaled).get_trace()
    tr.compute_log_prob()
    assert torch.allclose(tr.nodes["x"]["log_prob"], 5 * tr.nodes["x"]["unscaled_log_prob"])


def test_gradients_flow_through_log_prob_sum():
    tr = poutine.trace(model).get_trace(torch.zeros(2))
    tr.log_prob_sum().backward()
    assert dict(pyro.get_param_store().named_parameters())["w"].grad is not None


def test_format_shapes_lists_every_site_with_plates():
    tr = poutine.trace(model).get_trace(torch.zeros(3))
    table = tr.format_shapes()
    lines = table.splitlines()
    assert lines[0] == "Trace shapes"
    header = lines[1].split()
    assert header == [
        "site",
        "kind",
        "distribution",
        "batch",
        "event",
        "value",
        "log_prob",
        "plates",
    ]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["obs"] == ["obs", "observed", "Normal", "(3,)", "()", "(3,)", "(3,)", "data@-1"]
    assert rows["mu"][:3] == ["mu", "sample", "Normal"]
    assert rows["w"][:2] == ["w", "param"]
    assert rows["twice_mu"][1] == "determ."


def test_format_shapes_shows_to_event_and_computed_log_prob():
    def vector_model():
        with pyro.plate("groups", 2):
            pyro.sample("v", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    tr = poutine.trace(vector_model).get_trace()
    row = next(line for line in tr.format_shapes().splitlines() if line.split()[0] == "v")
    assert re.search(r"Normal\.to_event\(1\)\s+\(2,\)\s+\(3,\)\s+\(2, 3\)\s+\(2,\)", row)


def test_copy_and_remove_node():
    tr = poutine.trace(model).get_trace(torch.zeros(1))
    clone = tr.copy()
    clone.remove_node("mu")
    assert "mu" in tr and "mu" not in clone


class Shifted(dist.TorchDistribution):
    """A distribution written by a user, without an ``expand`` of its own."""

    arg_constraints = {}
    support = dist.constraints.real

    def __init__(self, shift):
        self.shift = torch.as_tensor(shift)
        super().__init__(self.shift.shape)

    def log_prob(self, value):
        return dist.Normal(self.shift, 1.0).log_prob(value)


def test_format_shapes_names_a_user_distribution_that_a_plate_expanded():
    def shifted(data):
        with pyro.plate("data", len(data)):
            pyro.sample("obs", Shifted(2.0), obs=data)

    tr = poutine.trace(shifted).get_trace(torch.zeros(4))
    assert isinstance(tr.nodes["obs"]["fn"], dist.ExpandedDistribution)
    row = tr.format_shapes().splitlines()[2].split()
    assert row == ["obs", "observed", "Shifted", "(4,)", "()", "(4,)", "(4,)", "data@-1"]
