"""Batched scoring of same-family sites gives the per-site sum, and per-site errors."""

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import SupportError
from engine.infer.autoguide import AutoNormal
from engine.infer.batched_log_prob import log_prob_total


def many_sites_model():
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfNormal(5.0))
    for g in range(6):
        theta = pyro.sample(f"theta_{g}", dist.Normal(mu, tau))
        pyro.sample(f"y_{g}", dist.Normal(theta, 1.0).expand([4]).to_event(1), obs=torch.ones(4))
    with pyro.plate("data", 10, subsample_size=5):
        pyro.sample("local", dist.Normal(0.0, 1.0))
    with poutine.mask(mask=torch.tensor([True, False])):
        pyro.sample("masked", dist.Normal(torch.zeros(2), 1.0).to_event(0))


def per_site_sum(trace):
    trace.compute_log_prob()
    return sum(site["log_prob_sum"] for _, site in trace.sample_sites())


def test_model_total_equals_the_per_site_sum():
    trace = poutine.trace(many_sites_model).get_trace()
    batched = log_prob_total([site for _, site in trace.sample_sites()])
    assert torch.allclose(
        batched, per_site_sum(poutine.trace(poutine.replay(many_sites_model, trace)).get_trace())
    )


def test_autoguide_total_equals_the_per_site_sum_and_has_the_same_gradient():
    guide = AutoNormal(many_sites_model)
    guide_trace = poutine.trace(guide).get_trace()
    sites = [site for _, site in guide_trace.iter_stochastic_nodes()]
    batched = log_prob_total(sites)
    leaves = [leaf for _, leaf in pyro.get_param_store().named_parameters()]
    batched_grads = torch.autograd.grad(batched, leaves, retain_graph=True, allow_unused=True)
    per_site = per_site_sum(guide_trace)
    per_site_grads = torch.autograd.grad(per_site, leaves, allow_unused=True)
    assert torch.allclose(batched, per_site)
    for a, b in zip(batched_grads, per_site_grads, strict=True):
        assert (a is None and b is None) or torch.allclose(a, b)


def test_a_batch_that_fails_validation_is_reported_per_site():
    def model():
        for i in range(3):
            pyro.sample(f"rate_{i}", dist.Gamma(2.0, 1.0), obs=torch.tensor([1.0, 2.0, -1.0])[i])

    trace = poutine.trace(model).get_trace()
    with pytest.raises(SupportError, match="'rate_2'"):
        log_prob_total([site for _, site in trace.sample_sites()])
