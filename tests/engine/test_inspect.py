"""Dependencies between sites (engine.infer.inspect): each site's parents are the sites whose
values its distribution was built from, followed through any torch operation, and nothing else."""

import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.distributions import constraints
from engine.infer.inspect import get_model_relations, trace_relations


def normal_model(data):
    mu = engine.sample("mu", dist.Normal(0.0, 1.0))
    sigma = engine.sample("sigma", dist.HalfNormal(1.0))
    engine.sample("unrelated", dist.Normal(0.0, 1.0))
    with engine.plate("data", len(data)):
        engine.sample("x", dist.Normal(mu, sigma), obs=data)


def test_parents_are_the_sites_a_distribution_is_built_from():
    relations = get_model_relations(normal_model, (torch.zeros(4),))
    assert relations["sample_sample"] == {
        "mu": [],
        "sigma": [],
        "unrelated": [],
        "x": ["mu", "sigma"],
    }
    assert relations["observed"] == ["x"]
    assert relations["plate_sample"] == {"data": ["x"]}
    assert relations["sample_dist"]["sigma"] == "HalfNormal"


def test_only_direct_parents_count():
    def chain():
        a = engine.sample("a", dist.Normal(0.0, 1.0))
        b = engine.sample("b", dist.Normal(a, 1.0))
        engine.sample("c", dist.Normal(2 * b, 1.0))

    assert get_model_relations(chain)["sample_sample"] == {"a": [], "b": ["a"], "c": ["b"]}


def test_discrete_indices_and_in_place_writes_are_followed():
    def model():
        z = engine.sample("z", dist.Categorical(torch.ones(3)))
        m = engine.sample("m", dist.Normal(0.0, 1.0))
        locs = torch.zeros(2)
        locs[1] = m  # written into a plain tensor
        engine.sample("x", dist.Normal(torch.tensor([-1.0, 0.0, 1.0])[z] + locs.sum(), 1.0))

    assert get_model_relations(model)["sample_sample"]["x"] == ["z", "m"]


def test_deterministic_sites_params_and_wrapped_distributions():
    def model():
        scale = engine.param("scale", torch.ones(2), constraint=constraints.positive)
        a = engine.sample("a", dist.Normal(0.0, 1.0))
        d = engine.deterministic("d", a * 3)
        engine.sample("w", dist.Normal(d, scale).to_event(1).mask(True))

    relations = get_model_relations(model, include_deterministic=True)
    assert relations["sample_sample"]["d"] == ["a"] and relations["sample_sample"]["w"] == ["d"]
    assert relations["sample_param"]["w"] == ["scale"]
    assert relations["param_constraint"]["scale"] is constraints.positive
    assert "d" not in relations["observed"]
    assert relations["sample_dist"] == {"a": "Normal", "d": "Deterministic", "w": "Normal"}
    # Pyro's default leaves deterministic sites out: w then depends on what d came from.
    relations = get_model_relations(model)
    assert relations["sample_sample"] == {"a": [], "w": ["a"]}
    assert "d" not in relations["sample_dist"]


def test_out_arguments_tag_only_the_tensor_written():
    def model():
        a = engine.sample("a", dist.Normal(0.0, 1.0))
        b = engine.sample("b", dist.Normal(0.0, 1.0))
        buffer = torch.empty(())
        torch.add(a, b, out=buffer)
        engine.sample("c", dist.Normal(buffer, 1.0))
        engine.sample("d", dist.Normal(a, 1.0))

    relations = get_model_relations(model)["sample_sample"]
    assert relations["c"] == ["a", "b"] and relations["d"] == ["a"]


def test_data_and_subsample_indices_are_not_parents():
    data = torch.randn(10)

    def model():
        mu = engine.sample("mu", dist.Normal(0.0, 1.0))
        with engine.plate("data", 10, subsample_size=4) as idx:
            local = engine.sample("local", dist.Normal(data[idx], 1.0))
            engine.sample("y", dist.Normal(local + mu, 1.0), obs=data[idx])

    relations = get_model_relations(model)
    assert relations["sample_sample"] == {"mu": [], "local": [], "y": ["mu", "local"]}


def test_the_model_sees_plain_tensors_and_the_trace_is_a_normal_trace():
    seen = []

    def model(data):
        mu = engine.sample("mu", dist.Normal(0.0, 1.0))
        seen.append(type(mu))
        engine.sample("x", dist.Normal(mu, 1.0), obs=data)

    data = torch.tensor(0.5)
    trace, _ = trace_relations(model, (data,))
    assert seen == [torch.Tensor]
    assert type(trace.nodes["x"]["value"]) is torch.Tensor
    assert torch.equal(trace.nodes["x"]["value"], data)
    reference = poutine.trace(poutine.replay(model, trace=trace)).get_trace(data)
    assert torch.allclose(trace.log_prob_sum(), reference.log_prob_sum())


def test_get_dependencies_moralizes_colliders_and_broken_plates():
    from engine.infer.inspect import get_dependencies

    def model(y):
        slope = engine.sample("slope", dist.Normal(0.0, 1.0))
        noise = engine.sample("noise", dist.HalfNormal(1.0))
        with engine.plate("groups", 2):
            effect = engine.sample("effect", dist.Normal(slope, 1.0))
        shifted = engine.deterministic("shifted", effect + 1.0)
        engine.sample("y", dist.Normal(shifted.sum(), noise), obs=y)

    deps = get_dependencies(model, (torch.tensor(0.3),))
    # The deterministic site is looked through: y depends on effect itself.
    assert deps["prior_dependencies"] == {
        "slope": {"slope": set()},
        "noise": {"noise": set()},
        "effect": {"effect": set(), "slope": set()},
        "y": {"y": set(), "effect": set(), "noise": set()},
    }
    # y (outside the plate) couples both elements of effect, and effect with noise (a collider).
    assert deps["posterior_dependencies"] == {
        "slope": {"slope": set(), "effect": set()},
        "noise": {"noise": set(), "effect": set(), "y": set()},
        "effect": {"effect": {"groups"}, "y": set()},
    }
