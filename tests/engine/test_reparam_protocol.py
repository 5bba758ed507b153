"""poutine.reparam and the reparameterizer protocol: configs by name and by function, the older
``__call__`` protocol, initial values carried to auxiliary sites, errors that name the site, and
reparameterized models under SVI, Predictive and plates."""

import warnings

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import ReparamError
from engine.infer import SVI, Predictive, Trace_ELBO
from engine.infer.autoguide import AutoNormal, InitMessenger, init_to_value
from engine.infer.reparam import LocScaleReparam, Reparam, TransformReparam


def hierarchy(n=5):
    centre = pyro.sample("centre", dist.Normal(0.0, 3.0))
    with pyro.plate("groups", n):
        return pyro.sample("effect", dist.Normal(centre, 2.0))


def test_config_by_name_rewrites_only_that_site():
    tr = poutine.trace(poutine.reparam(hierarchy, {"effect": LocScaleReparam(0.0)})).get_trace()
    assert tr.stochastic_nodes == ["centre", "effect_decentered"]
    effect = tr.nodes["effect"]
    assert effect["is_observed"] and effect["infer"]["_deterministic"]
    # The decentred site sits in the same plate, with the same batch shape.
    assert [f.name for f in tr.nodes["effect_decentered"]["cond_indep_stack"]] == ["groups"]
    assert tr.nodes["effect_decentered"]["value"].shape == (5,)
    expected = tr.nodes["centre"]["value"] + 2.0 * tr.nodes["effect_decentered"]["value"]
    assert torch.allclose(effect["value"], expected)


def test_config_by_function_sees_each_site_and_may_decline():
    seen = []

    def config(site):
        seen.append(site["name"])
        return LocScaleReparam(0.0) if site["name"] == "effect" else None

    tr = poutine.trace(poutine.reparam(hierarchy, config)).get_trace()
    assert seen[:2] == ["centre", "effect"]
    assert "effect_decentered" in tr.nodes and "centre_decentered" not in tr.nodes


def test_auxiliary_sites_may_be_rewritten_in_turn_but_not_without_end():
    def config(site):
        return LocScaleReparam(0.0) if site["name"].count("_decentered") < 2 else None

    tr = poutine.trace(poutine.reparam(hierarchy, config)).get_trace()
    assert tr.stochastic_nodes == ["centre_decentered_decentered", "effect_decentered_decentered"]
    with pytest.raises(ReparamError, match=r"Site 'centre'.*16 deep.*None for auxiliary"):
        poutine.reparam(hierarchy, lambda site: LocScaleReparam(0.0))()


def test_the_deprecated_call_protocol_still_works_with_a_warning():
    class DoubleScale(Reparam):
        def __call__(self, name, fn, obs):
            return dist.Normal(fn.loc, 2 * fn.scale), obs

    model = poutine.reparam(hierarchy, {"centre": DoubleScale()})
    with pytest.warns(DeprecationWarning, match="apply"):
        tr = poutine.trace(model).get_trace()
    assert float(tr.nodes["centre"]["fn"].scale) == 6.0
    assert not tr.nodes["centre"]["is_observed"]


def test_bad_configs_are_errors_that_say_what_to_give():
    with pytest.raises(ReparamError, match="dict"):
        poutine.reparam(hierarchy, config=3)
    with pytest.raises(TypeError, match="config="):
        poutine.reparam(hierarchy)
    with pytest.raises(ReparamError, match=r"Site 'effect'.*instance"):
        poutine.reparam(hierarchy, {"effect": LocScaleReparam})()
    with pytest.raises(ReparamError, match=r"Site 'centre'.*TransformedDistribution"):
        poutine.reparam(hierarchy, {"centre": TransformReparam()})()


def test_an_initial_value_reaches_the_auxiliary_site():
    start = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0])
    init = InitMessenger(init_to_value(values={"centre": torch.tensor(1.0), "effect": start}))
    model = init(poutine.reparam(hierarchy, {"effect": LocScaleReparam(0.0)}))
    tr = poutine.trace(model).get_trace()
    assert torch.allclose(tr.nodes["effect"]["value"], start)
    # The decentred site starts (it is not observed) at the point that maps to ``start``.
    decentered = tr.nodes["effect_decentered"]
    assert not decentered["is_observed"]
    assert torch.allclose(decentered["value"], (start - 1.0) / 2.0)


def test_a_reparameterizer_that_drops_a_chosen_initial_value_warns():
    class Redraw(Reparam):
        def apply(self, msg):
            value = pyro.sample(msg["name"] + "_fresh", msg["fn"])
            return {"fn": dist.Delta(value).mask(False), "value": value, "is_observed": True}

    init = InitMessenger(init_to_value(values={"centre": torch.tensor(7.0)}))
    # "falling back to default" is the phrase Pyro's warning carries and its users look for
    expected = "'centre'.*does not commute with initialization.*falling back to default"
    with pytest.warns(RuntimeWarning, match=expected):
        init(poutine.reparam(hierarchy, {"centre": Redraw()}))()
    # A default strategy's starting point is nobody's choice: no warning then.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        InitMessenger(init_to_value(values={}))(poutine.reparam(hierarchy, {"centre": Redraw()}))()


def test_an_observed_value_is_observed_on_the_auxiliary_site():
    def model():
        pyro.sample("y", dist.LogNormal(1.0, 0.5), obs=torch.tensor(2.0))

    log_normal = dist.TransformedDistribution(
        dist.Normal(1.0, 0.5), [dist.transforms.ExpTransform()]
    )

    def written_transformed():
        pyro.sample("y", log_normal, obs=torch.tensor(2.0))

    tr = poutine.trace(poutine.reparam(written_transformed, {"y": TransformReparam()})).get_trace()
    base = tr.nodes["y_base"]
    assert base["is_observed"] and torch.isclose(base["value"], torch.tensor(2.0).log())
    # The original site stays data, so it is not marked deterministic.
    assert not tr.nodes["y"]["infer"].get("_deterministic", False)


def test_svi_learns_the_centredness_and_predictive_returns_the_rewritten_site():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    data = torch.tensor([2.1, 1.9, 2.4, 2.0, 2.2])

    def model(data):
        centre = pyro.sample("centre", dist.Normal(0.0, 3.0))
        with pyro.plate("groups", len(data)):
            effect = pyro.sample("effect", dist.Normal(centre, 1.0))
            pyro.sample("obs", dist.Normal(effect, 0.1), obs=data)

    model = poutine.reparam(model, {"effect": LocScaleReparam()})
    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(300):
        svi.step(data)
    # One learned centredness per event element (the event is scalar here), kept in [0, 1] and
    # moved by the optimizer from its starting 0.5.
    centred = pyro.param("effect_centered").detach()
    assert centred.shape == () and 0.0 <= float(centred) <= 1.0
    assert abs(float(centred) - 0.5) > 0.01
    draws = Predictive(model, guide=guide, num_samples=200)(data)
    assert draws["effect"].shape == (200, 5)
    # Posterior means sit near the data (posterior sd about 0.1; 200 draws: se about 0.01,
    # plus the guide's own error; 0.2 is many of those).
    assert torch.allclose(draws["effect"].mean(0), data, atol=0.2)


def test_sample_with_is_observed_false_starts_a_latent_at_obs():
    with poutine.trace() as tracer:
        pyro.sample(
            "z", dist.Normal(0.0, 1.0), obs=torch.tensor(0.25), infer={"is_observed": False}
        )
    site = tracer.trace.nodes["z"]
    assert not site["is_observed"] and float(site["value"]) == 0.25
    assert "is_observed" not in site["infer"]
