"""Init strategies: values inside the support, the given values, means and medians."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine.distributions import biject_to, constraints
from engine.errors import ShapeError, SupportError
from engine.infer.autoguide import (
    AutoDelta,
    AutoNormal,
    InitMessenger,
    init_to_feasible,
    init_to_generated,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)

PRIORS = {
    "real": dist.Normal(torch.zeros(2), 1.0),
    "positive": dist.HalfNormal(torch.ones(3)),
    "unit": dist.Beta(2.0, 3.0),
    "simplex": dist.Dirichlet(torch.ones(4)),
    "vector": dist.Normal(torch.zeros(3), 1.0).to_event(1),
    "lower_bounded": dist.Pareto(2.0, 3.0),
    "heavy_tail": dist.HalfCauchy(1.0),
    "correlation": dist.LKJCholesky(3, 1.0),
}

STRATEGIES = [
    init_to_feasible,
    init_to_mean,
    init_to_median,
    init_to_median(num_samples=3),
    init_to_sample,
    init_to_uniform,
    init_to_uniform(radius=0.5),
    init_to_value(values={}),
]


def site(name, fn):
    return {"name": name, "fn": fn, "value": None, "is_observed": False}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", sorted(PRIORS))
def test_every_strategy_stays_inside_the_support(strategy, name):
    fn = PRIORS[name]
    value = strategy(site(name, fn))
    assert value.shape == fn.shape()
    assert bool(torch.isfinite(value).all())
    assert bool(fn.support.check(value).all())


def test_init_to_feasible_maps_unconstrained_zero():
    assert torch.equal(init_to_feasible(site("x", PRIORS["real"])), torch.zeros(2))
    assert torch.equal(init_to_feasible(site("s", PRIORS["positive"])), torch.ones(3))
    assert torch.allclose(init_to_feasible(site("p", PRIORS["simplex"])), torch.full((4,), 0.25))


def test_init_to_uniform_keeps_the_unconstrained_value_within_radius():
    for _ in range(20):
        value = init_to_uniform(site("s", PRIORS["positive"]), radius=0.5)
        assert bool((value.log().abs() < 0.5).all())


def test_init_to_value_uses_the_given_values_and_falls_back():
    init = init_to_value(values={"s": torch.tensor([0.5, 1.0, 2.0])}, fallback=init_to_feasible)
    assert torch.equal(init(site("s", PRIORS["positive"])), torch.tensor([0.5, 1.0, 2.0]))
    assert torch.equal(init(site("x", PRIORS["real"])), torch.zeros(2))
    with pytest.raises(ValueError, match="no value for site 'x'"):
        init_to_value(site("x", PRIORS["real"]), values={"s": 1.0}, fallback=None)


def test_init_to_mean_of_known_distributions():
    assert torch.allclose(init_to_mean(site("g", dist.Gamma(6.0, 2.0))), torch.tensor(3.0))
    assert torch.allclose(init_to_mean(site("b", dist.Beta(2.0, 6.0))), torch.tensor(0.25))
    # A plate expands the site: the mean takes the site's shape.
    assert init_to_mean(site("e", dist.Exponential(2.0).expand([5]))).shape == (5,)


def test_init_to_mean_falls_back_when_the_mean_is_infinite():
    value = init_to_mean(site("c", dist.HalfCauchy(1.0)), fallback=init_to_feasible)
    assert torch.equal(value, torch.tensor(1.0))
    with pytest.raises(ValueError, match="init_to_mean cannot initialise site 'c'"):
        init_to_mean(site("c", dist.HalfCauchy(1.0)), fallback=None)


def test_init_to_median_of_a_known_distribution():
    # LogNormal(0, 1) has median 1; the sample median of n draws has standard error
    # 1 / (2 f(1) sqrt(n)) with f(1) = 1 / sqrt(2 pi) the density at the median.
    n = 2001
    standard_error = math.sqrt(2 * math.pi) / (2 * math.sqrt(n))
    value = init_to_median(site("m", dist.LogNormal(0.0, 1.0)), num_samples=n)
    assert abs(value.item() - 1.0) < 4 * standard_error


def test_init_to_median_falls_back_when_the_median_leaves_the_support():
    # Coordinate-wise medians of Dirichlet draws do not sum to one.
    value = init_to_median(site("p", dist.Dirichlet(torch.tensor([0.3, 0.3, 5.0]))))
    assert torch.allclose(value, torch.full((3,), 1 / 3))


def test_strategies_that_need_draws_fall_back_for_improper_priors():
    improper = dist.ImproperUniform(constraints.positive, (2,), ())
    assert torch.equal(init_to_median(site("u", improper)), torch.ones(2))
    assert torch.equal(init_to_feasible(site("u", improper)), torch.ones(2))
    with pytest.raises(NotImplementedError):
        init_to_sample(site("u", improper))


def model():
    engine.sample("loc", dist.Normal(0.0, 1.0))
    engine.sample("rate", dist.Gamma(6.0, 2.0))
    with engine.plate("items", 3):
        engine.sample("p", dist.Beta(2.0, 2.0))


def test_guides_start_where_the_strategy_says():
    values = {
        "loc": torch.tensor(0.7),
        "rate": torch.tensor(2.5),
        "p": torch.tensor([0.2, 0.4, 0.9]),
    }
    AutoDelta(model, init_loc_fn=init_to_value(values=values), model_args=())
    for name, value in values.items():
        assert torch.allclose(engine.param(f"AutoDelta.{name}"), value)
    AutoNormal(model, init_loc_fn=init_to_mean, model_args=())
    assert torch.allclose(engine.param("AutoNormal.locs.rate"), torch.tensor(math.log(3.0)))
    expected_p = biject_to(constraints.unit_interval).inv(torch.tensor(0.5))
    assert torch.allclose(engine.param("AutoNormal.locs.p"), expected_p.expand(3))


def test_init_messenger_sets_latent_sites_and_checks_the_values():
    with InitMessenger(init_to_value(values={"rate": 1.5}, fallback=init_to_feasible)):
        tr = engine.poutine.trace(model).get_trace()
    assert tr.nodes["rate"]["value"].item() == 1.5
    assert tr.nodes["loc"]["value"].item() == 0.0
    bad_shape = init_to_value(values={"p": torch.zeros(2) + 0.5}, fallback=init_to_feasible)
    with pytest.raises(ShapeError, match=r"site 'p' a value of shape \(2,\).*shape \(3,\)"):
        InitMessenger(bad_shape)(model)()
    outside = init_to_value(values={"rate": -1.0}, fallback=init_to_feasible)
    with pytest.raises(SupportError, match="site 'rate' a value outside the support"):
        InitMessenger(outside)(model)()


def test_init_to_generated_asks_for_a_new_strategy_once_per_model_run():
    calls = []

    def generate():
        # Each run starts from its own value of "rate"; "loc" and "p" fall back.
        calls.append(len(calls))
        return init_to_value(values={"rate": 1.0 + len(calls)}, fallback=init_to_feasible)

    with InitMessenger(init_to_generated(generate=generate)):
        rates = [engine.poutine.trace(model).get_trace().nodes["rate"]["value"] for _ in range(3)]
    assert [r.item() for r in rates] == [2.0, 3.0, 4.0]
    assert calls == [0, 1, 2]


def test_init_to_generated_by_default_draws_uniformly_in_unconstrained_space():
    engine.set_rng_seed(0)
    guide = AutoNormal(model, init_loc_fn=init_to_generated, model_args=())
    loc = engine.param("AutoNormal.locs.p")
    # init_to_uniform's default radius is 2: every unconstrained start lies in (-2, 2), and three
    # independent uniform draws are distinct.
    assert bool((loc.abs() < 2).all()) and len(set(loc.tolist())) == 3
    assert guide.median()["rate"] > 0


def test_mean_field_entropy_sums_the_sites_entropies():
    from engine.infer.autoguide.utils import mean_field_entropy

    def guide(n):
        engine.sample("loc", dist.Normal(1.0, 2.0))
        with engine.plate("items", n, subsample_size=2):
            engine.sample("p", dist.Beta(2.0, 2.0))

    # Normal(·, 2): 0.5 log(2 pi e) + log 2. Beta(2, 2): log B(2, 2) - 2 (psi(2) - psi(4)) with
    # psi(2) - psi(4) = -(1/2 + 1/3), i.e. log(1/6) + 5/3 = -0.1251; one per mini-batch element.
    normal = 0.5 * math.log(2 * math.pi * math.e) + math.log(2.0)
    beta = math.log(1 / 6) + 5 / 3
    total = mean_field_entropy(guide, (10,))
    assert torch.allclose(total, torch.full((2,), normal + beta))
    only_loc = float(mean_field_entropy(guide, (10,), whitelist=["loc"]))
    assert math.isclose(only_loc, normal, rel_tol=1e-6)  # float32
