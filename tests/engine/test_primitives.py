"""The primitives: sample, param, deterministic, factor, module, set_rng_seed, validation."""

import random

import numpy as np
import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.distributions import constraints


def test_sample_without_handlers_draws_or_returns_obs():
    assert pyro.sample("x", dist.Normal(0.0, 1.0)).shape == ()
    obs = torch.tensor(3.0)
    assert pyro.sample("x", dist.Normal(0.0, 1.0), obs=obs) is obs
    assert pyro.sample("x", dist.Normal(0.0, 1.0).expand([2])).shape == (2,)


def test_sample_passes_extra_args_to_fn():
    def draw(n):
        return torch.arange(float(n))

    with poutine.trace() as tracer:
        value = pyro.sample("seq", draw, 3)
    assert value.tolist() == [0.0, 1.0, 2.0]
    assert tracer.trace.nodes["seq"]["args"] == (3,)


def test_obs_mask_observes_some_entries_and_imputes_the_rest():
    obs = torch.tensor([1.0, float("nan"), 3.0])
    mask = torch.tensor([True, False, True])

    def model():
        with pyro.plate("data", 3):
            return pyro.sample("x", dist.Normal(0.0, 1.0), obs=obs, obs_mask=mask)

    tr = poutine.trace(model).get_trace()
    value = tr.nodes["x"]["value"]
    assert value[0] == 1.0 and value[2] == 3.0 and torch.isfinite(value[1])
    assert "x_unobserved" in tr.stochastic_nodes and "x_observed" in tr.observation_nodes
    tr.compute_log_prob()
    observed_lp = tr.nodes["x_observed"]["log_prob"]
    assert observed_lp[1] == 0 and observed_lp[0] == dist.Normal(0.0, 1.0).log_prob(obs[0])
    assert tr.nodes["x_unobserved"]["log_prob"][0] == 0


def test_param_creation_constraint_and_reuse():
    w = pyro.param("w", torch.tensor([1.0, 2.0]), constraint=constraints.positive)
    assert torch.allclose(w, torch.tensor([1.0, 2.0]))
    assert torch.allclose(w.unconstrained(), torch.log(torch.tensor([1.0, 2.0])))
    again = pyro.param("w", torch.tensor([5.0, 5.0]))  # init ignored once it exists
    assert torch.allclose(again, w)
    assert torch.allclose(pyro.param("w"), w)


def test_param_lazy_init_is_called_once():
    calls = []

    def init():
        calls.append(1)
        return torch.zeros(2)

    pyro.param("lazy", init)
    pyro.param("lazy", init)
    assert len(calls) == 1


def test_param_site_in_a_trace_and_under_a_plate():
    def model():
        with pyro.plate("groups", 3):
            return pyro.param("loc", torch.zeros(3))

    tr = poutine.trace(model).get_trace()
    assert tr.nodes["loc"]["type"] == "param"
    assert tr.nodes["loc"]["cond_indep_stack"][0].name == "groups"


def test_deterministic_records_a_value_without_density():
    def model():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        return pyro.deterministic("y", x + 1)

    tr = poutine.trace(model).get_trace()
    assert tr.nodes["y"]["value"] == tr.nodes["x"]["value"] + 1
    assert tr.nodes["y"]["infer"]["_deterministic"]
    assert torch.allclose(tr.log_prob_sum(), dist.Normal(0.0, 1.0).log_prob(tr.nodes["x"]["value"]))
    assert pyro.deterministic("free", torch.tensor(1.0)) == 1.0


def test_factor_adds_to_the_log_density():
    def model():
        pyro.factor("f", torch.tensor([-1.0, -2.0]))

    tr = poutine.trace(model).get_trace()
    assert tr.log_prob_sum() == -3.0
    assert tr.nodes["f"]["infer"]["is_auxiliary"]
    assert pyro.factor("free", torch.tensor(-1.0)) is None


def test_module_registers_the_modules_own_parameters():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
    pyro.module("net", net)
    store = pyro.get_param_store()
    assert set(store.keys()) == {"net$$$0.weight", "net$$$0.bias", "net$$$2.weight", "net$$$2.bias"}
    leaves = dict(store.named_parameters())
    assert leaves["net$$$0.weight"] is net[0].weight  # the optimizer trains the module itself


def test_module_reregistered_after_recreation_trains_the_new_module():
    first = torch.nn.Linear(2, 1)
    pyro.module("net", first)
    second = torch.nn.Linear(2, 1)
    pyro.module("net", second)
    assert dict(pyro.get_param_store().named_parameters())["net$$$weight"] is second.weight


def test_module_update_module_params_copies_store_values_in():
    saved = torch.nn.Linear(2, 1)
    with torch.no_grad():
        saved.weight.fill_(7.0)
    pyro.module("net", saved)
    fresh = torch.nn.Linear(2, 1)
    pyro.module("net", fresh, update_module_params=True)
    assert torch.all(fresh.weight == 7.0)
    assert dict(pyro.get_param_store().named_parameters())["net$$$weight"] is fresh.weight


def test_module_leaves_frozen_parameters_out():
    net = torch.nn.Linear(2, 1)
    net.bias.requires_grad_(False)
    pyro.module("net", net)
    pyro.module("net", net)
    assert list(pyro.get_param_store().keys()) == ["net$$$weight"]


def test_set_rng_seed_seeds_every_generator():
    pyro.set_rng_seed(42)
    first = (torch.rand(()), random.random(), np.random.rand())
    pyro.set_rng_seed(42)
    assert (torch.rand(()), random.random(), np.random.rand()) == first


def test_enable_validation_and_context():
    pyro.enable_validation(False)
    assert not pyro.is_validation_enabled()
    dist.Normal(0.0, -1.0)  # no error
    pyro.enable_validation(True)
    with pyro.validation_enabled(False):
        assert not pyro.is_validation_enabled()
    assert pyro.is_validation_enabled()
    with pytest.raises(ValueError):
        dist.Normal(0.0, -1.0)


def test_no_validation_means_no_support_check_on_obs():
    def model():
        pyro.sample("count", dist.Poisson(3.0), obs=torch.tensor(-1.0))

    with pyro.validation_enabled(False):
        trace = poutine.trace(model).get_trace()
        trace.log_prob_sum()
    with pytest.raises(ValueError, match="'count'"):
        poutine.trace(model).get_trace().log_prob_sum()
