"""Flow guides (AutoIAFNormal, AutoNormalizingFlow) and the base-distribution/transform view of
the flat-vector guides (get_base_dist, get_transform, sample_latent)."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.distributions.transforms import affine_autoregressive
from engine.errors import AutoGuideError
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import (
    AutoDiagonalNormal,
    AutoIAFNormal,
    AutoMultivariateNormal,
    AutoNormalizingFlow,
)
from engine.optim import Adam

# theta ~ N(0, I₂); y_i ~ N(a_i · theta, 1). Posterior: precision P = I + AᵀA, mean P⁻¹ Aᵀ y.
A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
Y = torch.tensor([1.2, 0.8, 1.5, 1.6])
COV = torch.linalg.inv(torch.eye(2) + A.T @ A)
MEAN = COV @ (A.T @ Y)


def regression():
    theta = engine.sample("theta", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    with engine.plate("obs", 4):
        engine.sample("y", dist.Normal((theta.unsqueeze(-2) * A).sum(-1), 1.0), obs=Y)


def two_sites():
    engine.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    engine.sample("s", dist.LogNormal(0.0, 1.0))


@pytest.mark.slow
def test_iaf_fit_reaches_the_exact_posterior():
    engine.set_rng_seed(0)
    guide = AutoIAFNormal(regression, hidden_dim=[6])
    svi = SVI(regression, guide, Adam({"lr": 0.01}), Trace_ELBO())
    summaries = []
    for step in range(3000):
        svi.step()
        if step >= 2000 and step % 10 == 0:
            with torch.no_grad():
                draws = guide.get_posterior().sample((1000,))
            cov = torch.cov(draws.T)
            summaries.append(torch.cat([draws.mean(0), cov[0, :], cov[1, 1:]]))
    summaries = torch.stack(summaries)
    exact = torch.cat([MEAN, COV[0, :], COV[1, 1:]])
    # At a constant step size the iterates wander around the optimum; their spread over the last
    # 1000 steps (per-summary sd, 0.01-0.07 here, which includes the 1000-draw Monte Carlo error)
    # bounds how far the window's average may lie from the exact value: two of those sds.
    spread = summaries.std(0)
    assert ((summaries.mean(0) - exact).abs() < 2 * spread).all(), (summaries.mean(0), exact)
    # And the fit moved: it started at mean 0, two spreads or more away from the exact mean.
    assert (MEAN.abs() > 2 * spread[:2]).all()


def test_iaf_state_dict_round_trip_restores_the_flow():
    guide = AutoIAFNormal(two_sites, hidden_dim=[5], num_transforms=2, model_args=())
    state = {key: value.clone() for key, value in guide.state_dict().items()}
    assert state and all(key.startswith("transform.") for key in state)
    svi = SVI(two_sites, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(3):
        svi.step()
    # The store holds the flow's own weights, so training changed the guide's state.
    trained = {key: value.clone() for key, value in guide.state_dict().items()}
    assert any(not torch.equal(trained[key], state[key]) for key in state)
    engine.clear_param_store()
    fresh = AutoIAFNormal(two_sites, hidden_dim=[5], num_transforms=2, model_args=())
    fresh.load_state_dict(trained)
    engine.set_rng_seed(5)
    expected = guide()
    engine.set_rng_seed(5)
    got = fresh()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


def test_iaf_options_and_its_params_are_seen_by_a_trace():
    with pytest.warns(FutureWarning, match="init_loc_fn has no effect"):
        AutoIAFNormal(two_sites, init_loc_fn=lambda site: site["fn"].mean)
    with pytest.raises(AutoGuideError, match="num_transforms must be a positive int"):
        AutoIAFNormal(two_sites, num_transforms=0)
    guide = AutoIAFNormal(two_sites, model_args=())
    # Pyro's default hidden layer: 3 * latent_dim + 1.
    assert guide.transform[0].arn.hidden_dims == [10]
    params = poutine.trace(guide, param_only=True).get_trace().param_nodes
    assert params and all(name.startswith("AutoIAFNormal.transform$$$") for name in params)
    with pytest.raises(AutoGuideError, match="no closed-form median"):
        guide.median()


def test_normalizing_flow_refuses_a_non_transform():
    guide = AutoNormalizingFlow(two_sites, lambda dim: torch.nn.Linear(dim, dim))
    with pytest.raises(AutoGuideError, match="must return a torch Transform"):
        guide()


@pytest.mark.parametrize(
    "make_guide",
    [
        lambda: AutoDiagonalNormal(two_sites, init_scale=0.3, model_args=()),
        lambda: AutoMultivariateNormal(two_sites, init_scale=0.3, model_args=()),
        lambda: AutoIAFNormal(two_sites, model_args=()),
        lambda: AutoNormalizingFlow(two_sites, affine_autoregressive, model_args=()),
    ],
    ids=["diagonal", "multivariate", "iaf", "flow"],
)
def test_the_posterior_is_the_base_distribution_through_get_transform(make_guide):
    guide = make_guide()
    if isinstance(guide, AutoMultivariateNormal):
        # A non-trivial Cholesky factor, so that the transform's off-diagonal part counts.
        engine.get_param_store()["AutoMultivariateNormal.scale_tril"] = torch.tensor(
            [[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [-0.3, 0.2, 1.0]]
        )
    base, transform = guide.get_base_dist(), guide.get_transform()
    assert base.event_shape == (3,)
    rebuilt = dist.TransformedDistribution(base, transform)
    with torch.no_grad():
        values = guide.get_posterior().sample((5,))
        assert torch.allclose(rebuilt.log_prob(values), guide.get_posterior().log_prob(values))
    # sample_latent draws the auxiliary site of the flat vector.
    tr = poutine.trace(guide.sample_latent).get_trace()
    (name,) = [n for n, site in tr.nodes.items() if site["type"] == "sample"]
    assert tr.nodes[name]["infer"]["is_auxiliary"] and tr.nodes[name]["value"].shape == (3,)
