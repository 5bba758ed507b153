"""StableReparam and SymmetricStableReparam: a Stable site made conditionally Normal keeps the
Stable law (checked against scipy's S0 distribution function), an observed site keeps its
likelihood on average over the auxiliary sites, initial values carry over, and unsupported sites
are refused by name."""

import math

import pytest
import torch
from scipy import stats

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import ReparamError
from engine.infer.autoguide.initialization import InitMessenger, init_to_value
from engine.infer.reparam import (
    LatentStableReparam,
    MinimalReparam,
    StableReparam,
    SymmetricStableReparam,
)

N = 20000
# Points (in units of scale, around loc) where empirical and reference distribution functions are
# compared. Each empirical value has standard error sqrt(F (1 - F) / N) <= 0.5 / sqrt(N) = 0.0035;
# 4.5 of them (0.016) puts the chance of a false alarm near 7e-6 per point, under 1e-3 over the
# whole file's comparisons.
POINTS = torch.tensor([-3.0, -1.0, -0.3, 0.0, 0.3, 1.0, 3.0], dtype=torch.float64)
CDF_TOL = 4.5 * 0.5 / math.sqrt(N)


def _draw(reparam, stability, skew, scale=1.0, loc=0.0, seed=0):
    def model():
        with engine.plate("draws", N):
            return engine.sample("x", dist.Stable(stability, skew, scale, loc))

    engine.set_rng_seed(seed)
    x = poutine.reparam(model, {"x": reparam})()
    assert x.shape == (N,) and torch.isfinite(x).all()
    return x.double()


def _reference_cdf(stability, skew, scale, loc, points):
    law = stats.levy_stable
    saved = law.parameterization
    law.parameterization = "S0"  # Nolan's S0 coordinates, those of dist.Stable
    try:
        return torch.as_tensor(law.cdf(points.numpy(), stability, skew, loc=loc, scale=scale))
    finally:
        law.parameterization = saved


def _assert_stable_law(x, stability, skew, scale, loc):
    points = loc + scale * POINTS
    empirical = (x.unsqueeze(-1) <= points).double().mean(0)
    reference = _reference_cdf(stability, skew, scale, loc, points)
    assert (empirical - reference).abs().max().item() < CDF_TOL, (empirical, reference)


@pytest.mark.parametrize("stability", [0.5, 1.0, 1.5, 1.9])
def test_symmetric_stable_reparam_keeps_the_law(stability):
    x = _draw(SymmetricStableReparam(), stability, 0.0, scale=0.7, loc=0.4)
    _assert_stable_law(x, stability, 0.0, 0.7, 0.4)


@pytest.mark.parametrize(
    "stability,skew",
    [(0.6, 0.5), (1.0, -0.5), (1.01, 0.8), (1.3, -0.9), (1.7, 0.3), (1.5, 0.0), (1.8, 1.0)],
)
def test_stable_reparam_keeps_the_law(stability, skew):
    x = _draw(StableReparam(), stability, skew, scale=1.3, loc=-0.5, seed=1)
    _assert_stable_law(x, stability, skew, 1.3, -0.5)


@pytest.mark.parametrize("reparam", [StableReparam(), SymmetricStableReparam()])
def test_stability_two_gives_the_normal_law(reparam):
    # Stable(2, 0, scale, loc) is Normal(loc, sqrt(2) scale) = Normal(1, 0.5 * sqrt 2): the
    # sample mean's standard error is 0.71 / sqrt(20000) = 0.005, the sample variance's
    # 0.5 * sqrt(2 / 20000) = 0.005; 4.5 standard errors each. KS against the Normal at the
    # 1e-3 level as well.
    x = _draw(reparam, 2.0, 0.0, scale=0.5, loc=1.0, seed=2)
    assert abs(x.mean().item() - 1.0) < 4.5 * 0.005
    assert abs(x.var().item() - 0.5) < 4.5 * 0.005
    assert stats.kstest(x.numpy(), stats.norm(1.0, 0.5 * math.sqrt(2)).cdf).pvalue > 1e-3


def test_draws_agree_with_the_engines_own_sampler():
    # Two-sample KS against Stable.rsample (a different sampling path: one Chambers-Mallows-Stuck
    # draw instead of a sum of two): the statistic stays below 1.95 sqrt(2 / N), its 1e-3
    # critical value, when both follow one law.
    engine.set_rng_seed(3)
    expected = dist.Stable(1.6, 0.4, 2.0, 1.0).sample((N,))
    actual = _draw(StableReparam(), 1.6, 0.4, scale=2.0, loc=1.0, seed=4)
    assert stats.ks_2samp(expected.numpy(), actual.numpy()).statistic < 1.95 * math.sqrt(2 / N)


@pytest.mark.parametrize(
    "reparam,skew", [(SymmetricStableReparam(), 0.0), (StableReparam(), 0.6)], ids=["sym", "skew"]
)
def test_observed_site_keeps_its_likelihood_on_average(reparam, skew):
    # The conditional Normal's density at the data, averaged over the auxiliary sites, is the
    # Stable density there (scipy's, S0). The tolerance is 5 standard errors of that average,
    # estimated from the same draws.
    data = torch.tensor([-2.0, 0.1, 0.8, 4.0])
    stability, scale, loc = 1.4, 0.8, 0.3

    def model():
        with engine.plate("draws", 200000, dim=-2), engine.plate("data", 4, dim=-1):
            engine.sample("y", dist.Stable(stability, skew, scale, loc), obs=data)

    engine.set_rng_seed(5)
    tr = poutine.trace(poutine.reparam(model, {"y": reparam})).get_trace()
    site = tr.nodes["y"]
    assert site["is_observed"] and isinstance(site["fn"], dist.Normal)
    assert torch.equal(site["value"], data)
    density = site["fn"].log_prob(data).exp()
    mean, error = density.mean(0), density.std(0) / math.sqrt(density.shape[0])
    law = stats.levy_stable
    saved, law.parameterization = law.parameterization, "S0"
    try:
        reference = law.pdf(data.numpy(), stability, skew, loc=loc, scale=scale)
    finally:
        law.parameterization = saved
    assert ((mean - torch.as_tensor(reference)).abs() < 5 * error).all(), (mean, reference)


def test_site_names_and_roles():
    def model():
        engine.sample("a", dist.Stable(1.5, 0.2).expand([3]).to_event(1))
        engine.sample("b", dist.Stable(1.5, 0.0), obs=torch.tensor(0.2))

    config = {"a": StableReparam(), "b": SymmetricStableReparam()}
    tr = poutine.trace(poutine.reparam(model, config)).get_trace()
    roles = [
        (name, site["is_observed"]) for name, site in tr.nodes.items() if site["type"] == "sample"
    ]
    assert roles == [
        ("a_z_uniform", False),
        ("a_z_exponential", False),
        ("a_t_uniform", False),
        ("a_t_exponential", False),
        ("a", False),
        ("b_uniform", False),
        ("b_exponential", False),
        ("b", True),
    ]
    assert tr.nodes["a"]["fn"].event_shape == (3,)
    assert tr.nodes["a_t_uniform"]["fn"].event_shape == (3,)


@pytest.mark.parametrize("reparam", [StableReparam(), SymmetricStableReparam()])
def test_initial_value_carries_over(reparam):
    start = torch.tensor([0.25, -1.5])

    def model():
        return engine.sample("x", dist.Stable(1.7, torch.zeros(2)).to_event(1))

    with InitMessenger(init_to_value(values={"x": start})), poutine.reparam(config={"x": reparam}):
        assert torch.equal(model(), start)


def test_gradients_flow_to_every_parameter():
    stability = torch.tensor(1.6, requires_grad=True)
    skew = torch.tensor(0.3, requires_grad=True)
    scale = torch.tensor(0.9, requires_grad=True)
    loc = torch.tensor(0.2, requires_grad=True)

    def model():
        with engine.plate("draws", 100):
            return engine.sample("x", dist.Stable(stability, skew, scale, loc))

    engine.set_rng_seed(6)
    x = poutine.reparam(model, {"x": StableReparam()})()
    grads = torch.autograd.grad(x.sum(), [stability, skew, scale, loc])
    assert all(torch.isfinite(g) for g in grads)
    assert grads[3].item() == pytest.approx(100.0)  # d x / d loc = 1 for every draw


def test_symmetric_reparam_refuses_a_skewed_site_by_name():
    def model():
        engine.sample("tail", dist.Stable(1.5, torch.tensor([0.0, 0.3])).to_event(1))

    with pytest.raises(ReparamError, match=r"'tail'.*skew is 0.*StableReparam"):
        poutine.reparam(model, {"tail": SymmetricStableReparam()})()


@pytest.mark.parametrize("reparam", [StableReparam(), SymmetricStableReparam()])
def test_other_families_are_refused_by_name(reparam):
    def model():
        engine.sample("w", dist.Normal(0.0, 1.0))

    with pytest.raises(ReparamError, match=r"Site 'w'.*rewrites Stable sites.*Normal"):
        poutine.reparam(model, {"w": reparam})()


def test_latent_stable_reparam_points_observed_sites_to_stable_reparam():
    def model():
        engine.sample("y", dist.Stable(1.5, 0.3), obs=torch.tensor(0.3))

    with pytest.raises(ReparamError, match=r"'y'.*observed.*StableReparam"):
        poutine.reparam(model, {"y": LatentStableReparam()})()


def test_minimal_reparam_chooses_by_role_and_skew():
    learned_skew = torch.tensor(0.0, requires_grad=True)

    def model():
        engine.sample("latent", dist.Stable(1.5, 0.4))
        engine.sample("sym", dist.Stable(1.5, 0.0), obs=torch.tensor(0.1))
        engine.sample("skewed", dist.Stable(1.5, 0.4), obs=torch.tensor(0.2))
        engine.sample("learned", dist.Stable(1.5, learned_skew), obs=torch.tensor(0.3))
        engine.sample("kept", dist.StableWithLogProb(1.5, 0.4), obs=torch.tensor(0.4))

    strategy = MinimalReparam()
    poutine.trace(strategy(model)).get_trace()
    chosen = {name: type(r).__name__ for name, r in strategy.config.items() if r is not None}
    assert chosen == {
        "latent": "LatentStableReparam",
        "sym": "SymmetricStableReparam",
        "skewed": "StableReparam",
        "learned": "StableReparam",
    }


@pytest.mark.parametrize("reparam", [StableReparam(), SymmetricStableReparam()])
def test_a_scalar_observed_for_every_element_of_a_vector_event(reparam):
    # Accepted as the site without a reparameterizer accepts it: the one value scored against
    # each of the two elements of the event.
    datum = torch.tensor(0.4)

    def model():
        engine.sample("y", dist.Stable(1.5, torch.zeros(2), 1.0, 0.0).to_event(1), obs=datum)

    engine.set_rng_seed(2)
    site = poutine.trace(poutine.reparam(model, {"y": reparam})).get_trace().nodes["y"]
    assert site["is_observed"] and site["value"] is datum
    assert site["fn"].event_shape == (2,)
    assert site["fn"].log_prob(datum).shape == ()
