"""LatentStableReparam: a latent Stable site drawn through its angle and exponential sites keeps
the Stable law, and observed sites are refused by name."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import ReparamError
from engine.infer.reparam import LatentStableReparam


def test_stability_two_gives_the_normal_law():
    # Stable(2, skew, scale, loc) is Normal(loc, sqrt(2) scale): with 20000 draws the sample
    # mean's standard error is sqrt(2) * 0.5 / sqrt(20000) = 0.005 and the sample variance's is
    # var * sqrt(2 / 20000) = 0.005; 4 standard errors each.
    def model():
        with engine.plate("draws", 20000):
            return engine.sample("x", dist.Stable(2.0, 0.4, 0.5, 1.0))

    engine.set_rng_seed(0)
    x = poutine.reparam(model, {"x": LatentStableReparam()})()
    assert abs(x.mean().item() - 1.0) < 4 * 0.005
    assert abs(x.var().item() - 0.5) < 4 * 0.005


def test_draws_follow_the_stable_law_by_quantiles():
    # Heavy tails: compare quartiles with Stable.rsample's (an independent sampler path). A
    # quartile's standard error is about sqrt(p (1 - p) / n) / density; at n = 20000 and a
    # density near 0.2 that is 0.015, and the difference of two such estimates 0.022: 4 of them.
    def model():
        with engine.plate("draws", 20000):
            return engine.sample("x", dist.Stable(1.3, -0.5, 1.0, 0.0))

    engine.set_rng_seed(1)
    x = poutine.reparam(model, {"x": LatentStableReparam()})()
    y = dist.Stable(1.3, -0.5, 1.0, 0.0).rsample((20000,))
    q = torch.tensor([0.25, 0.5, 0.75])
    assert torch.allclose(x.quantile(q), y.quantile(q), atol=4 * 0.022)


def test_the_site_scores_nothing_and_its_auxiliaries_score_their_densities():
    def model():
        engine.sample("x", dist.Stable(1.5, 0.0).expand([3]).to_event(1))

    tr = poutine.trace(poutine.reparam(model, {"x": LatentStableReparam()})).get_trace()
    tr.compute_log_prob()
    assert tr.nodes["x"]["log_prob_sum"].item() == 0.0
    assert math.isclose(
        tr.nodes["x_uniform"]["log_prob_sum"].item(), -3 * math.log(math.pi), rel_tol=1e-6
    )
    w = tr.nodes["x_exponential"]["value"]
    assert torch.isclose(tr.nodes["x_exponential"]["log_prob_sum"], -w.sum())


def test_observed_stable_sites_are_refused_by_name():
    def model():
        engine.sample("y", dist.Stable(1.5, 0.0), obs=torch.tensor(0.3))

    with pytest.raises(ReparamError, match=r"'y'.*observed.*StableWithLogProb"):
        poutine.reparam(model, {"y": LatentStableReparam()})()
