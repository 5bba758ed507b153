"""Autoguide errors: each names the site, the shapes involved and the fix."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.distributions import constraints
from engine.errors import AutoGuideError, ParamError, ShapeError
from engine.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoGuideList,
    AutoLaplaceApproximation,
    AutoMultivariateNormal,
    AutoNormal,
    init_to_value,
)

ALL = [AutoNormal, AutoDelta, AutoDiagonalNormal, AutoMultivariateNormal]


@pytest.mark.parametrize("guide_cls", [AutoDiagonalNormal, AutoMultivariateNormal])
def test_model_without_latent_sites(guide_cls):
    def model(x):
        engine.sample("x", dist.Normal(0.0, 1.0), obs=x)
        engine.deterministic("double", 2 * x)

    with pytest.raises(AutoGuideError, match=r"no latent sample sites[\s\S]*\['x', 'double'\]"):
        guide_cls(model, model_args=(torch.tensor(0.0),))


@pytest.mark.parametrize("guide_cls", [AutoNormal, AutoDelta])
def test_a_per_site_guide_of_a_model_without_latent_sites_guides_nothing(guide_cls):
    # As in Pyro: the model's own params are then fitted alone (maximum likelihood).
    def model():
        loc = engine.param("loc", torch.tensor(0.0))
        with engine.plate("data", 5):
            engine.sample("x", dist.Normal(loc, 1.0), obs=torch.arange(5.0))

    engine.clear_param_store()
    guide = guide_cls(model)
    assert guide() == {}
    svi = engine.infer.SVI(model, guide, engine.optim.Adam({"lr": 0.1}), engine.infer.Trace_ELBO())
    for _ in range(300):
        svi.step()
    assert abs(float(engine.param("loc").detach()) - 2.0) < 1e-3  # the data's mean


@pytest.mark.parametrize("guide_cls", ALL)
def test_discrete_latent_site(guide_cls):
    def model():
        engine.sample("loc", dist.Normal(0.0, 1.0))
        engine.sample("component", dist.Categorical(torch.ones(3) / 3))

    with pytest.raises(AutoGuideError) as info:
        guide_cls(model, model_args=())
    message = str(info.value)
    assert "site 'component' (Categorical" in message
    assert "discrete" in message and "enumerate" in message
    assert "config_enumerate" in message and "TraceEnum_ELBO" in message
    assert "https://pyro.ai/examples/enumeration.html" in message


def test_an_enumerated_discrete_site_is_left_to_trace_enum_elbo():
    def model():
        engine.sample("loc", dist.Normal(0.0, 1.0))
        engine.sample("c", dist.Categorical(torch.ones(3) / 3), infer={"enumerate": "parallel"})

    assert sorted(AutoNormal(model, model_args=())()) == ["loc"]


def test_a_hidden_discrete_site_is_fine():
    def model():
        engine.sample("loc", dist.Normal(0.0, 1.0))
        engine.sample("c", dist.Categorical(torch.ones(3) / 3), infer={"enumerate": "parallel"})

    guide = AutoNormal(poutine.block(model, hide=["c"]), model_args=())
    assert sorted(guide()) == ["loc"]


def test_support_without_a_bijection():
    def model():
        engine.sample("chol", dist.ImproperUniform(constraints.lower_cholesky, (), (2, 2)))

    with pytest.raises(
        AutoGuideError, match=r"site 'chol'[\s\S]*lower_cholesky[\s\S]*no bijection"
    ):
        AutoNormal(model, model_args=())


def test_a_direction_on_the_sphere_is_sent_to_projected_normal_reparam():
    def model():
        engine.sample("direction", dist.ProjectedNormal(torch.tensor([1.0, 0.0, 0.0])))

    with pytest.raises(AutoGuideError, match=r"site 'direction'[\s\S]*no bijection") as info:
        AutoNormal(model, model_args=())
    assert "config={'direction': ProjectedNormalReparam()}" in str(info.value)


def local_model(data):
    with engine.plate("data", len(data)):
        z = engine.sample("z", dist.Normal(0.0, 1.0))
        engine.sample("obs", dist.Normal(z, 1.0), obs=data)


@pytest.mark.parametrize("guide_cls", [AutoNormal, AutoDelta, AutoDiagonalNormal])
def test_latent_sites_changed_shape_since_setup(guide_cls):
    guide = guide_cls(local_model, model_args=(torch.zeros(4),))
    guide(torch.ones(4))  # same shapes: fine
    with pytest.raises(ShapeError) as info:
        guide(torch.zeros(6))
    message = str(info.value)
    assert "site 'z' had shape (4,)" in message and "has shape (6,) now" in message
    assert "plate 'data'" in message and f"guide = {guide_cls.__name__}(model)" in message


def test_a_new_data_size_that_keeps_latent_shapes_is_fine():
    def model(data):
        loc = engine.sample("loc", dist.Normal(0.0, 1.0))
        with engine.plate("data", len(data)):
            engine.sample("obs", dist.Normal(loc, 1.0), obs=data)

    guide = AutoNormal(model, model_args=(torch.zeros(4),))
    assert guide(torch.zeros(7))["loc"].shape == ()
    assert guide(torch.zeros(2))["loc"].shape == ()


def test_param_store_holding_other_shapes():
    AutoNormal(local_model, model_args=(torch.zeros(4),))
    with pytest.raises(ShapeError, match=r"'AutoNormal.locs.z' with shape \(4,\)[\s\S]*\(5,\)"):
        AutoNormal(local_model, model_args=(torch.zeros(5),))


def test_param_store_holding_another_constraint():
    def model():
        engine.sample("s", dist.HalfNormal(1.0))

    engine.param("AutoDelta.s", torch.tensor(-1.0))
    with pytest.raises(ParamError, match=r"'AutoDelta\.s' already exists with constraint"):
        AutoDelta(model, model_args=())


def test_flat_guides_refuse_subsampled_local_sites():
    def model(data):
        with engine.plate("data", 10, subsample_size=3) as idx:
            engine.sample("z", dist.Normal(data[idx], 1.0))

    with pytest.raises(AutoGuideError, match=r"site 'z' sits in plate 'data' \(size 3 of 10"):
        AutoDiagonalNormal(model, model_args=(torch.zeros(10),))


def test_model_given_indices_needs_create_plates():
    def model(data):
        with engine.plate("data", 10, subsample=torch.tensor([1, 2])) as idx:
            engine.sample("z", dist.Normal(data[idx], 1.0))

    with pytest.raises(AutoGuideError, match="create_plates="):
        AutoNormal(model, model_args=(torch.zeros(10),))


def test_guide_list_site_in_two_parts():
    def model():
        engine.sample("a", dist.Normal(0.0, 1.0))

    guide = AutoGuideList(model)
    guide.append(AutoNormal(model))
    guide.append(AutoDelta(model))
    with pytest.raises(AutoGuideError, match="Site 'a' is guided by two parts"):
        guide()
    with pytest.raises(AutoGuideError, match="no parts"):
        AutoGuideList(model)()
    with pytest.raises(AutoGuideError, match="has no quantiles"):
        listed = AutoGuideList(model)
        listed.append(AutoDelta(model))
        listed.quantiles([0.5])


def test_laplace_needs_a_positive_definite_hessian():
    def model():
        engine.sample("x", dist.StudentT(1.0, 0.0, 1.0))

    guide = AutoLaplaceApproximation(model, init_loc_fn=init_to_value(values={"x": 3.0}))
    with pytest.raises(AutoGuideError, match="not positive definite"):
        guide.laplace_approximation()
    with pytest.raises(AutoGuideError, match="laplace_approximation"):
        guide.quantiles([0.5])


def test_init_scale_must_be_positive():
    with pytest.raises(AutoGuideError, match="init_scale must be positive"):
        AutoNormal(local_model, init_scale=0.0)


def test_bad_init_value_names_the_site_and_the_strategy():
    with pytest.raises(ShapeError, match=r"init strategy init_to_value gave site 'z'.*\(3,\)"):
        AutoNormal(
            local_model,
            init_loc_fn=init_to_value(values={"z": torch.zeros(3)}),
            model_args=(torch.zeros(4),),
        )


def test_plate_full_size_changed_since_setup():
    def model(data):
        with engine.plate("data", len(data), subsample_size=2) as idx:
            engine.sample("z", dist.Normal(data[idx], 1.0))

    guide = AutoNormal(model, model_args=(torch.zeros(6),))
    with pytest.raises(
        ShapeError, match=r"site 'z' sat in plates of full sizes \(\('data', 6\),\)"
    ):
        guide(torch.zeros(8))


def test_failed_setup_leaves_the_guide_and_the_store_as_they_were():
    guide = AutoNormal(local_model, model_args=(torch.zeros(4),))
    store = engine.get_param_store()
    before = {name: value.detach().clone() for name, value in store.items()}
    with pytest.raises(ShapeError, match=r"already holds 'AutoNormal\.locs\.z'"):
        guide.setup(torch.zeros(5))
    assert sorted(store) == sorted(before)
    assert guide(torch.zeros(4))["z"].shape == (4,)


def test_a_blocked_plate_site_is_named_in_the_error():
    def model(data):
        with engine.plate("data", 100, subsample_size=10) as idx:
            engine.sample("z", dist.Normal(0.0, 1.0))
            engine.sample("x", dist.Normal(0.0, 1.0), obs=data[idx])

    data = torch.zeros(100)
    with pytest.raises(AutoGuideError, match=r"expose=\[\.\.\., 'data'\]"):
        AutoNormal(poutine.block(model, expose=["z"]), model_args=(data,))
    guide = AutoNormal(poutine.block(model, expose=["z", "data"]), model_args=(data,))
    assert guide(data)["z"].shape == (10,)
