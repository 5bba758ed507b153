"""Autoguides: parameters, sampled sites, densities, median/quantiles, plates, lists, state."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.constraint_codec import constraints_equal
from engine.distributions import biject_to, constraints
from engine.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoGuideList,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from engine.infer.autoguide.site_distributions import TransformedNormal

ALL_GUIDES = [
    AutoNormal,
    AutoDelta,
    AutoDiagonalNormal,
    AutoMultivariateNormal,
    AutoLowRankMultivariateNormal,
    AutoLaplaceApproximation,
]
FLAT_GUIDES = [
    AutoDiagonalNormal,
    AutoMultivariateNormal,
    AutoLowRankMultivariateNormal,
    AutoLaplaceApproximation,
]


def many_supports(x):
    """Sites on real, positive, unit-interval, simplex and real-vector supports, one local."""
    w = engine.sample("w", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    s = engine.sample("s", dist.HalfNormal(1.0))
    p = engine.sample("p", dist.Beta(2.0, 2.0))
    mix = engine.sample("mix", dist.Dirichlet(torch.ones(3)))
    with engine.plate("data", len(x)):
        z = engine.sample("z", dist.Normal(0.0, 1.0))
        engine.sample("obs", dist.Normal(z + w.sum() * p * mix[0], s), obs=x)
    engine.deterministic("total", w.sum())


def latent_sites(tr):
    return {
        name: site
        for name, site in tr.nodes.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and not site["infer"].get("is_auxiliary")
        and not site["infer"].get("is_subsample")
    }


def store_constraints():
    return engine.get_param_store().get_state()["constraints"]


X = torch.linspace(-1.0, 1.0, 4)


# -- parameters created at construction ---------------------------------------------------------


def test_autonormal_params_at_construction():
    AutoNormal(many_supports, model_args=(X,))
    store = engine.get_param_store()
    expected = {"w": (3,), "s": (), "p": (), "mix": (2,), "z": (4,)}
    assert sorted(store) == sorted(
        [f"AutoNormal.locs.{n}" for n in expected] + [f"AutoNormal.scales.{n}" for n in expected]
    )
    for name, shape in expected.items():
        assert store[f"AutoNormal.locs.{name}"].shape == shape
        assert torch.allclose(store[f"AutoNormal.scales.{name}"], torch.tensor(0.1))
        assert store_constraints()[f"AutoNormal.locs.{name}"] is constraints.real
        assert store_constraints()[f"AutoNormal.scales.{name}"] is constraints.softplus_positive
    # init_to_feasible: loc 0 in unconstrained space
    assert torch.equal(store["AutoNormal.locs.s"], torch.tensor(0.0))


def test_autonormal_params_via_setup_and_init_scale():
    guide = AutoNormal(many_supports, init_scale=0.3)
    assert len(engine.get_param_store()) == 0
    assert guide.setup(X) is guide
    assert torch.allclose(engine.param("AutoNormal.scales.w"), torch.full((3,), 0.3))


def test_autodelta_params_take_the_site_support():
    AutoDelta(many_supports, model_args=(X,))
    store = engine.get_param_store()
    assert sorted(store) == [
        "AutoDelta.mix",
        "AutoDelta.p",
        "AutoDelta.s",
        "AutoDelta.w",
        "AutoDelta.z",
    ]
    assert store["AutoDelta.mix"].shape == (3,)
    assert store_constraints()["AutoDelta.mix"] is constraints.simplex
    assert store_constraints()["AutoDelta.p"] is dist.Beta(2.0, 2.0).support
    assert bool(store["AutoDelta.s"] > 0)


@pytest.mark.parametrize(
    "guide_cls, expected",
    [
        (AutoDiagonalNormal, {"loc": (11,), "scale": (11,)}),
        (AutoMultivariateNormal, {"loc": (11,), "scale": (11,), "scale_tril": (11, 11)}),
        (AutoLowRankMultivariateNormal, {"loc": (11,), "scale": (11,), "cov_factor": (11, 3)}),
        (AutoLaplaceApproximation, {"loc": (11,)}),
    ],
)
def test_flat_guides_params_at_construction(guide_cls, expected):
    guide = guide_cls(many_supports, model_args=(X,))
    assert guide.latent_dim == 3 + 1 + 1 + 2 + 4
    store = engine.get_param_store()
    prefix = guide_cls.__name__
    assert sorted(store) == sorted(f"{prefix}.{k}" for k in expected)
    for key, shape in expected.items():
        assert store[f"{prefix}.{key}"].shape == shape
    if "scale" in expected:
        assert store_constraints()[f"{prefix}.scale"] is constraints.softplus_positive
    if guide_cls is AutoMultivariateNormal:
        assert store_constraints()[f"{prefix}.scale_tril"] is constraints.unit_lower_cholesky
        assert torch.equal(store[f"{prefix}.scale_tril"], torch.eye(11))


def test_default_init_scales_match_pyro():
    AutoDiagonalNormal(many_supports, model_args=(X,))
    assert torch.allclose(engine.param("AutoDiagonalNormal.scale"), torch.tensor(0.1))
    AutoLowRankMultivariateNormal(many_supports, model_args=(X,))
    low_rank_scale = engine.param("AutoLowRankMultivariateNormal.scale")
    assert torch.allclose(low_rank_scale, torch.tensor(0.1 * math.sqrt(0.5)))


# -- sampled sites ----------------------------------------------------------------------------


@pytest.mark.parametrize("guide_cls", ALL_GUIDES)
def test_guide_samples_every_latent_site_with_model_shapes_and_supports(guide_cls):
    guide = guide_cls(many_supports, model_args=(X,))
    model_sites = latent_sites(poutine.trace(many_supports).get_trace(X))
    guide_trace = poutine.trace(guide).get_trace(X)
    sites = latent_sites(guide_trace)
    assert list(sites) == list(model_sites)
    returned = guide(X)
    assert list(returned) == list(model_sites)
    for name, site in sites.items():
        model_site = model_sites[name]
        assert site["value"].shape == model_site["value"].shape, name
        assert constraints_equal(site["fn"].support, model_site["fn"].support), name
        assert bool(model_site["fn"].support.check(site["value"]).all()), name
        assert [f.name for f in site["cond_indep_stack"]] == [
            f.name for f in model_site["cond_indep_stack"]
        ]
    assert "total" not in guide_trace.nodes and "obs" not in guide_trace.nodes
    assert guide.model is many_supports
    assert "total" in guide.prototype_trace.nodes
    assert bool((returned["s"] > 0).all())
    assert torch.allclose(returned["mix"].sum(), torch.tensor(1.0))
    # The model replays the guide's values, so the ELBO is finite.
    model_trace = poutine.trace(poutine.replay(many_supports, trace=guide_trace)).get_trace(X)
    assert torch.isfinite(model_trace.log_prob_sum() - guide_trace.log_prob_sum())


@pytest.mark.parametrize("guide_cls", ALL_GUIDES)
def test_guide_params_are_seen_by_a_param_only_trace(guide_cls):
    guide = guide_cls(many_supports, model_args=(X,))
    params = poutine.trace(guide, param_only=True).get_trace(X).param_nodes
    assert sorted(params) == sorted(engine.get_param_store())


def test_flat_guide_has_an_auxiliary_latent_site():
    guide = AutoDiagonalNormal(many_supports, model_args=(X,))
    tr = poutine.trace(guide).get_trace(X)
    aux = tr.nodes["_AutoDiagonalNormal_latent"]
    assert aux["infer"] == {"is_auxiliary": True}
    assert aux["value"].shape == (11,)


# -- log densities ------------------------------------------------------------------------------


def half_normal_model():
    engine.sample("s", dist.HalfNormal(2.0))
    engine.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))


def test_autonormal_log_density_includes_the_jacobian():
    guide = AutoNormal(half_normal_model, model_args=())
    store = engine.get_param_store()
    store["AutoNormal.locs.s"] = torch.tensor(0.4)
    store["AutoNormal.scales.s"] = torch.tensor(0.7)
    store["AutoNormal.locs.w"] = torch.tensor([0.5, -1.0])
    store["AutoNormal.scales.w"] = torch.tensor([0.2, 2.0])
    tr = poutine.trace(guide).get_trace()
    s, w = tr.nodes["s"]["value"], tr.nodes["w"]["value"]
    log_s = torch.log(s)
    expected_s = torch.distributions.Normal(0.4, 0.7).log_prob(log_s) - log_s
    expected_w = torch.distributions.Normal(torch.tensor([0.5, -1.0]), torch.tensor([0.2, 2.0]))
    expected = expected_s + expected_w.log_prob(w).sum()
    assert torch.allclose(tr.log_prob_sum(), expected, atol=1e-5)
    # Scoring a value the distribution did not draw itself inverts the transform: same answer.
    fn = tr.nodes["s"]["fn"]
    assert torch.allclose(fn.log_prob(s.detach().clone()), expected_s, atol=1e-5)


def test_transformed_normal_gradients_match_the_plain_formula():
    loc = torch.tensor([0.3, -0.2], requires_grad=True)
    scale = torch.tensor([0.5, 1.5], requires_grad=True)
    fn = TransformedNormal(loc, scale, biject_to(constraints.positive), 0, constraints.positive)
    y = fn.rsample()
    cached = fn.log_prob(y).sum()
    x = torch.log(y)
    formula = (torch.distributions.Normal(loc, scale).log_prob(x) - x).sum()
    got = torch.autograd.grad(cached, (loc, scale), retain_graph=True)
    want = torch.autograd.grad(formula, (loc, scale))
    for g, h in zip(got, want, strict=True):
        assert torch.allclose(g, h, atol=1e-5)


def test_flat_guide_log_density_is_joint_normal_minus_log_jacobian():
    guide = AutoMultivariateNormal(half_normal_model, model_args=())
    tr = poutine.trace(guide).get_trace()
    latent = tr.nodes["_AutoMultivariateNormal_latent"]["value"]
    posterior = guide.get_posterior()
    # latent[0] is log s: the Jacobian of exp is s, so the density of s has -log s.
    expected = posterior.log_prob(latent) - latent[0]
    assert torch.allclose(tr.log_prob_sum(), expected, atol=1e-5)


def test_low_rank_posterior_covariance_follows_pyro():
    guide = AutoLowRankMultivariateNormal(half_normal_model, rank=2, model_args=())
    scale = engine.param("AutoLowRankMultivariateNormal.scale").detach()
    factor = engine.param("AutoLowRankMultivariateNormal.cov_factor").detach()
    w = scale[:, None] * factor
    expected = w @ w.T + torch.diag(scale**2)
    assert torch.allclose(guide.get_posterior().covariance_matrix, expected, atol=1e-6)


# -- median and quantiles -----------------------------------------------------------------------


def test_autonormal_median_and_quantiles_with_known_params():
    guide = AutoNormal(half_normal_model, model_args=())
    store = engine.get_param_store()
    store["AutoNormal.locs.s"] = torch.tensor(0.3)
    store["AutoNormal.scales.s"] = torch.tensor(0.5)
    store["AutoNormal.locs.w"] = torch.tensor([1.0, -2.0])
    median = guide.median()
    assert torch.allclose(median["s"], torch.tensor(math.exp(0.3)))
    assert torch.equal(median["w"], torch.tensor([1.0, -2.0]))
    q = torch.tensor([0.1, 0.5, 0.9])
    quantiles = guide.quantiles([0.1, 0.5, 0.9])
    z = torch.distributions.Normal(0.0, 1.0).icdf(q)
    assert torch.allclose(quantiles["s"], torch.exp(0.3 + 0.5 * z), atol=1e-5)
    assert quantiles["w"].shape == (3, 2)
    assert torch.allclose(quantiles["w"][:, 1], -2.0 + 0.1 * z, atol=1e-5)


@pytest.mark.parametrize(
    "guide_cls", [AutoDiagonalNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal]
)
def test_flat_guide_quantiles_use_the_marginal_scale(guide_cls):
    guide = guide_cls(half_normal_model, model_args=())
    if guide_cls is AutoMultivariateNormal:
        engine.get_param_store()["AutoMultivariateNormal.scale_tril"] = torch.tensor(
            [[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [-0.3, 0.2, 1.0]]
        )
    posterior = guide.get_posterior()
    loc, sd = posterior.mean.detach(), posterior.variance.detach().sqrt()
    z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor([0.2, 0.5, 0.95]))
    expected = loc + sd * z[:, None]
    quantiles = guide.quantiles([0.2, 0.5, 0.95])
    assert torch.allclose(quantiles["s"], expected[:, 0].exp(), atol=1e-5)
    assert torch.allclose(quantiles["w"], expected[:, 1:], atol=1e-5)
    median = guide.median()
    assert torch.allclose(median["s"], loc[0].exp(), atol=1e-6)


def test_autodelta_median_is_the_value():
    guide = AutoDelta(half_normal_model, model_args=())
    engine.get_param_store()["AutoDelta.s"] = torch.tensor(2.5)
    assert torch.allclose(guide.median()["s"], torch.tensor(2.5))
    assert torch.allclose(guide()["s"], torch.tensor(2.5))


# -- plates and subsampling ---------------------------------------------------------------------

N, BATCH = 20, 5
DATA = torch.arange(float(N))


def subsampled_model(data):
    loc = engine.sample("loc", dist.Normal(0.0, 10.0))
    with engine.plate("data", N, subsample_size=BATCH) as idx:
        z = engine.sample("z", dist.Normal(loc, 1.0))
        engine.sample("obs", dist.Normal(z, 1.0), obs=data[idx])
    return idx


@pytest.mark.parametrize("guide_cls", [AutoNormal, AutoDelta])
def test_local_params_are_subsampled_and_indices_shared_with_the_model(guide_cls):
    guide = guide_cls(subsampled_model, model_args=(DATA,))
    store = engine.get_param_store()
    key = "AutoNormal.locs.z" if guide_cls is AutoNormal else "AutoDelta.z"
    assert store[key].shape == (N,)
    store[key] = torch.arange(N) * 10.0 + 1.0
    guide_trace = poutine.trace(guide).get_trace(DATA)
    idx = guide_trace.nodes["data"]["value"]
    assert idx.shape == (BATCH,) and len(set(idx.tolist())) == BATCH
    z_site = guide_trace.nodes["z"]
    rows = (idx * 10.0 + 1.0).float()
    if guide_cls is AutoNormal:
        assert torch.equal(z_site["fn"].loc, rows)
    else:
        assert torch.equal(z_site["value"], rows)
    assert z_site["scale"] == N / BATCH
    model_trace = poutine.trace(poutine.replay(subsampled_model, trace=guide_trace)).get_trace(DATA)
    assert torch.equal(model_trace.nodes["_RETURN"]["value"], idx)
    assert torch.equal(model_trace.nodes["obs"]["value"], DATA[idx])
    assert model_trace.nodes["z"]["value"] is z_site["value"]


def test_init_values_of_unseen_rows_repeat_the_prototype_batch():
    guide = AutoDelta(subsampled_model, init_loc_fn=lambda site: site["fn"].mean)
    guide.setup(DATA)
    assert torch.equal(engine.param("AutoDelta.z").detach(), torch.zeros(N))


def test_create_plates_gives_the_guide_the_models_indices():
    fixed = torch.tensor([3, 7, 11])

    def model(data):
        with engine.plate("data", N, subsample=fixed) as idx:
            engine.sample("z", dist.Normal(data[idx], 1.0))

    guide = AutoNormal(model, create_plates=lambda data: engine.plate("data", N, subsample=fixed))
    engine.get_param_store()
    guide_trace = poutine.trace(guide).get_trace(DATA)
    assert torch.equal(guide_trace.nodes["z"]["fn"].loc, torch.zeros(3))
    engine.get_param_store()["AutoNormal.locs.z"] = torch.arange(float(N))
    assert torch.equal(poutine.trace(guide).get_trace(DATA).nodes["z"]["fn"].loc, fixed.float())


# -- AutoGuideList --------------------------------------------------------------------------------


def test_guide_list_splits_sites_between_parts():
    guide = AutoGuideList(many_supports)
    guide.append(AutoDelta(poutine.block(many_supports, expose=["w", "s"])))
    guide.append(AutoNormal(poutine.block(many_supports, hide=["w", "s"])))
    values = guide(X)
    assert sorted(values) == ["mix", "p", "s", "w", "z"]
    store = engine.get_param_store()
    assert "AutoGuideList.0.w" in store and "AutoGuideList.0.s" in store
    assert "AutoGuideList.1.locs.z" in store and "AutoGuideList.1.scales.mix" in store
    assert not any(name.startswith(("AutoDelta", "AutoNormal")) for name in store)
    assert torch.equal(values["w"], store["AutoGuideList.0.w"])
    assert sorted(guide.state_dict())[:2] == ["0.s_unconstrained", "0.w_unconstrained"]
    assert sorted(guide.median(X)) == ["mix", "p", "s", "w", "z"]
    tr = poutine.trace(guide).get_trace(X)
    assert sorted(latent_sites(tr)) == ["mix", "p", "s", "w", "z"]


def test_guide_list_parts_built_eagerly_move_their_params():
    guide = AutoGuideList(half_normal_model)
    part = AutoNormal(poutine.block(half_normal_model, expose=["s"]), model_args=())
    leaf = engine.param("AutoNormal.locs.s").unconstrained()
    guide.append(part)
    assert "AutoNormal.locs.s" not in engine.get_param_store()
    assert engine.param("AutoGuideList.0.locs.s").unconstrained() is leaf


def test_guide_list_parts_share_one_mini_batch():
    guide = AutoGuideList(subsampled_model)
    guide.append(AutoDelta(poutine.block(subsampled_model, expose=["loc"])))
    guide.append(AutoNormal(poutine.block(subsampled_model, hide=["loc"])))
    tr = poutine.trace(guide).get_trace(DATA)
    idx = tr.nodes["data"]["value"]
    engine.get_param_store()["AutoGuideList.1.locs.z"] = torch.arange(float(N))
    tr = poutine.trace(guide).get_trace(DATA)
    assert torch.equal(tr.nodes["z"]["fn"].loc, tr.nodes["data"]["value"].float())
    assert idx.shape == (BATCH,)


def test_guide_list_accepts_a_guide_function():
    def hand_guide(x):
        loc = engine.param("hand_loc", torch.tensor(0.5))
        return {"p": engine.sample("p", dist.Delta(torch.sigmoid(loc)))}

    guide = AutoGuideList(many_supports)
    guide.append(AutoNormal(poutine.block(many_supports, hide=["p"])))
    guide.append(hand_guide)
    values = guide(X)
    assert sorted(values) == ["mix", "p", "s", "w", "z"]
    assert "hand_loc" in engine.get_param_store()


# -- state_dict, parameters, save/load ------------------------------------------------------------


@pytest.mark.parametrize("guide_cls", ALL_GUIDES)
def test_state_dict_round_trip_keeps_the_store_tensors(guide_cls):
    guide = guide_cls(many_supports, model_args=(X,))
    store = engine.get_param_store()
    leaves = dict(store.named_parameters())
    live = guide.state_dict(keep_vars=True)
    assert {id(t) for t in live.values()} == {id(t) for t in leaves.values()}
    assert {id(t) for t in guide.parameters()} == {id(t) for t in leaves.values()}
    saved = {key: value.clone() for key, value in guide.state_dict().items()}
    with torch.no_grad():
        for leaf in leaves.values():
            leaf.add_(1.0)
    guide.load_state_dict(saved)
    for name, leaf in store.named_parameters():
        assert leaf is leaves[name]
    for key, value in guide.state_dict().items():
        assert torch.equal(value, saved[key])


def test_param_store_save_load_and_recreating_the_guide_restores_it(tmp_path):
    guide = AutoNormal(many_supports, model_args=(X,))
    engine.get_param_store()["AutoNormal.locs.w"] = torch.tensor([1.0, 2.0, 3.0])
    before = guide.state_dict()
    path = tmp_path / "params.pt"
    engine.get_param_store().save(path)
    engine.clear_param_store()
    engine.get_param_store().load(path)
    restored = AutoNormal(many_supports, model_args=(X,))
    after = restored.state_dict()
    assert sorted(after) == sorted(before)
    for key in before:
        assert torch.equal(after[key], before[key])
    assert torch.equal(restored.median(X)["w"], torch.tensor([1.0, 2.0, 3.0]))


def test_load_state_dict_reports_missing_and_unexpected_keys():
    guide = AutoNormal(half_normal_model, model_args=())
    state = guide.state_dict()
    state["locs.extra_unconstrained"] = torch.zeros(1)
    del state["scales.s_unconstrained"]
    with pytest.raises(RuntimeError, match=r"scales\.s_unconstrained[\s\S]*locs\.extra"):
        guide.load_state_dict(state)
    fresh = AutoNormal(half_normal_model)
    with pytest.raises(RuntimeError, match="set it up first"):
        fresh.load_state_dict(guide.state_dict())


@pytest.mark.parametrize("guide_cls", ALL_GUIDES)
def test_call_returns_the_draws_as_a_tuple_ordered_by_site_name(guide_cls):
    guide = guide_cls(many_supports, model_args=(X,))
    engine.set_rng_seed(3)
    as_dict = guide(X)
    engine.set_rng_seed(3)
    as_tuple = guide.call(X)
    assert isinstance(as_tuple, tuple)
    assert len(as_tuple) == len(as_dict) == 5
    for name, value in zip(sorted(as_dict), as_tuple, strict=True):
        assert torch.equal(value, as_dict[name]), name
