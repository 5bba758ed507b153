"""The reparameterizers other than LocScaleReparam: each keeps the distribution of the site it
rewrites (checked by moments of many draws, or exactly by density), and the ProjectedNormal
distribution, the orthonormal transforms and NeuTra that they rely on."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.distributions.transforms import (
    DiscreteCosineTransform,
    HaarTransform,
    LowerCholeskyAffine,
    Permute,
)
from engine.errors import ReparamError, SupportError
from engine.infer import SVI, Predictive, Trace_ELBO
from engine.infer.autoguide import AutoMultivariateNormal, InitMessenger, init_to_sample
from engine.infer.reparam import (
    AutoReparam,
    DiscreteCosineReparam,
    GumbelSoftmaxReparam,
    HaarReparam,
    MinimalReparam,
    NeuTraReparam,
    ProjectedNormalReparam,
    SplitReparam,
    StudentTReparam,
    TransformReparam,
)

DRAWS = 40000


def draws_of(model, config, site="x"):
    return poutine.trace(poutine.reparam(model, config)).get_trace().nodes[site]["value"]


def assert_mean_within_mc_error(x, mean, sd):
    # The mean of N independent draws has standard error sd / sqrt(N): allow 5 of them.
    assert torch.all((x.mean(0) - mean).abs() < 5 * sd / math.sqrt(x.shape[0])), (x.mean(0), mean)


def test_transform_reparam_draws_a_log_normal():
    pyro.set_rng_seed(0)
    log_normal = dist.TransformedDistribution(
        dist.Normal(torch.tensor([0.0, 0.5]), 0.25), [dist.transforms.ExpTransform()]
    )

    def model():
        with pyro.plate("draws", DRAWS, dim=-2):
            return pyro.sample("x", log_normal.to_event(1))

    x = draws_of(model, {"x": TransformReparam()})
    target = dist.LogNormal(torch.tensor([0.0, 0.5]), 0.25)
    assert_mean_within_mc_error(x, target.mean, target.stddev)


def test_observed_data_outside_the_support_is_refused_at_the_site_it_was_given_to():
    # Observed data skips no check under a reparameterizer (scalar data for a vector event is
    # checked broadcast, see the Stable reparam tests): data outside the support is refused
    # naming the site it was given to, not the auxiliary one it would turn into NaN at.
    log_normal = dist.TransformedDistribution(
        dist.Normal(torch.zeros(2), 1.0), [dist.transforms.ExpTransform()]
    ).to_event(1)

    def model(y):
        pyro.sample("y", log_normal, obs=y)

    reparam_model = poutine.reparam(model, {"y": TransformReparam()})
    poutine.trace(reparam_model).get_trace(torch.tensor([2.0, 3.0]))
    with pytest.raises(SupportError) as info:
        poutine.trace(reparam_model).get_trace(torch.tensor([-1.0, 2.0]))
    first_line = str(info.value).splitlines()[0]
    assert "positive" in first_line and "y_base" not in first_line


def test_gumbel_softmax_reparam_keeps_the_relaxed_categorical():
    pyro.set_rng_seed(0)
    logits = torch.tensor([0.0, 1.0, -1.0])

    def model():
        with pyro.plate("draws", DRAWS):
            return pyro.sample("x", dist.RelaxedOneHotCategorical(torch.tensor(0.7), logits=logits))

    x = draws_of(model, {"x": GumbelSoftmaxReparam()})
    reference = dist.RelaxedOneHotCategorical(torch.tensor(0.7), logits=logits).sample((DRAWS,))
    # Two independent samples of the same law: their means differ by sd * sqrt(2 / N) in sd.
    sd = reference.std(0)
    assert torch.all((x.mean(0) - reference.mean(0)).abs() < 5 * sd * math.sqrt(2 / DRAWS))
    assert torch.allclose(x.sum(-1), torch.ones(DRAWS), atol=1e-5)


def test_student_t_reparam_is_a_scale_mixture_with_the_right_spread():
    pyro.set_rng_seed(0)

    def model():
        with pyro.plate("draws", DRAWS):
            return pyro.sample("x", dist.StudentT(6.0, 1.0, 2.0))

    tr = poutine.trace(poutine.reparam(model, {"x": StudentTReparam()})).get_trace()
    assert isinstance(tr.nodes["x"]["fn"], dist.Normal)
    x = tr.nodes["x"]["value"]
    # StudentT(6, 1, 2): mean 1, variance 4 * 6 / 4 = 6, kurtosis 3 + 6 / (6 - 4) = 6. The sample
    # variance has standard error about var * sqrt((kurtosis - 1) / N).
    assert_mean_within_mc_error(x, 1.0, math.sqrt(6.0))
    assert abs(x.var().item() - 6.0) < 5 * 6.0 * math.sqrt(5.0 / DRAWS)


def test_split_reparam_keeps_the_joint_density_and_needs_a_split_that_fits():
    prior = dist.MultivariateNormal(torch.zeros(5), torch.eye(5) + 0.5)

    def model():
        return pyro.sample("x", prior)

    model = InitMessenger(init_to_sample)(poutine.reparam(model, {"x": SplitReparam([3, 2], -1)}))
    tr = poutine.trace(model).get_trace()
    tr.compute_log_prob()
    x = tr.nodes["x"]["value"]
    assert torch.equal(x[:3], tr.nodes["x_split_0"]["value"])
    assert torch.equal(x[3:], tr.nodes["x_split_1"]["value"])
    # The pieces are flat; the whole density stays on x.
    assert torch.isclose(tr.log_prob_sum(), prior.log_prob(x))
    with pytest.raises(ReparamError, match="sections"):
        wrong = InitMessenger(init_to_sample)(
            poutine.reparam(lambda: pyro.sample("x", prior), {"x": SplitReparam([3, 3], -1)})
        )
        wrong()


def test_predictive_of_a_split_site_draws_the_pieces_from_the_guide():
    # Predictive's first run, from the prior, cannot draw the flat pieces; as in Pyro it draws
    # the whole site through the init strategy and splits it.
    def model():
        with pyro.plate("rows", 2):
            return pyro.sample("x", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    split_model = poutine.reparam(model, {"x": SplitReparam([1, 2], -1)})

    def guide():
        with pyro.plate("rows", 2):
            pyro.sample("x_split_0", dist.Normal(torch.full((1,), 5.0), 0.1).to_event(1))
            pyro.sample("x_split_1", dist.Normal(torch.full((2,), -5.0), 0.1).to_event(1))

    draws = Predictive(split_model, guide=guide, num_samples=50, parallel=True)()
    assert draws["x"].shape == (50, 2, 3)
    assert torch.equal(draws["x"][..., :1], draws["x_split_0"])
    assert (draws["x"][..., :1] > 4).all() and (draws["x"][..., 1:] < -4).all()


@pytest.mark.parametrize(
    "reparam", [DiscreteCosineReparam(), HaarReparam(), HaarReparam(flip=True)]
)
def test_basis_reparams_keep_the_density_exactly(reparam):
    scale_tril = torch.linalg.cholesky(torch.eye(6) + torch.ones(6, 6))
    prior = dist.MultivariateNormal(torch.arange(6.0), scale_tril=scale_tril)

    def model():
        return pyro.sample("x", prior)

    tr = poutine.trace(poutine.reparam(model, {"x": reparam})).get_trace()
    tr.compute_log_prob()
    # An orthonormal change of basis has Jacobian 1: the density of the coefficients at the
    # auxiliary site equals the prior's density of x, and x itself scores nothing more.
    assert torch.isclose(tr.log_prob_sum(), prior.log_prob(tr.nodes["x"]["value"]), atol=1e-4)


@pytest.mark.parametrize("transform", [DiscreteCosineTransform(smooth=0.5), HaarTransform(dim=-2)])
def test_orthonormal_transforms_invert_and_report_their_jacobian(transform):
    x = torch.randn(3, 5, 4)
    y = transform(x)
    assert torch.allclose(transform.inv(y), x, atol=1e-5)
    event_dim = -transform.dim
    # Numerical Jacobian of the flattened event (5 x 4 for dim -2, 4 for dim -1).
    flat = x[0].reshape(-1) if event_dim == 2 else x[0, 0]

    def f(v):
        return transform(v.reshape(5, 4) if event_dim == 2 else v).reshape(-1)

    jacobian = torch.autograd.functional.jacobian(f, flat)
    assert abs(torch.linalg.slogdet(jacobian).logabsdet.item()) < 1e-4
    assert transform.log_abs_det_jacobian(x, y).shape == x.shape[: x.dim() - event_dim]


def test_permute_and_lower_cholesky_affine():
    p = Permute(torch.tensor([1, 2, 0]))
    x = torch.tensor([5.0, 6.0, 7.0])
    assert torch.equal(p(x), torch.tensor([6.0, 7.0, 5.0])) and torch.equal(p.inv(p(x)), x)
    with pytest.raises(ValueError, match="not a permutation"):
        Permute(torch.tensor([0, 0, 1]))
    tril = torch.tensor([[2.0, 0.0], [0.5, 1.5]])
    affine = LowerCholeskyAffine(torch.tensor([1.0, 2.0]), tril)
    z = torch.randn(4, 2)
    assert torch.allclose(affine.inv(affine(z)), z, atol=1e-6)
    assert torch.allclose(affine.log_abs_det_jacobian(z, affine(z)), torch.full((4,), math.log(3)))


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_projected_normal_density_integrates_to_one(dim):
    torch.manual_seed(0)
    pn = dist.ProjectedNormal(torch.linspace(-1.0, 2.0, dim))
    # E over uniform directions of p(x), times the sphere's area, is the integral (= 1). With
    # 200000 uniform points the relative standard error is sd(p) / (mean(p) sqrt(N)).
    uniform = torch.nn.functional.normalize(torch.randn(200000, dim), dim=-1)
    area = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)
    density = pn.log_prob(uniform).exp()
    integral = density.mean() * area
    se = density.std() * area / math.sqrt(uniform.shape[0])
    assert abs(integral.item() - 1.0) < 5 * se.item()


def test_projected_normal_log_prob_is_the_log_of_the_draws_density():
    torch.manual_seed(0)
    pn = dist.ProjectedNormal(torch.tensor([2.0, -1.0]))
    # On the circle the density is a function of the angle: compare a histogram of draws with it.
    angles = torch.atan2(*pn.sample((200000,)).T.flip(0))
    edges = torch.linspace(-math.pi, math.pi, 41)
    counts = torch.histc(angles, bins=40, min=-math.pi, max=math.pi)
    centres = (edges[:-1] + edges[1:]) / 2
    points = torch.stack([centres.cos(), centres.sin()], -1)
    expected = pn.log_prob(points).exp() * (2 * math.pi / 40) * 200000
    # Poisson counts: sd sqrt(expected); 5 sd, plus the bin's curvature error (a few %).
    assert torch.all((counts - expected).abs() < 5 * expected.sqrt() + 0.03 * expected)


def test_projected_normal_reparam_and_the_strategies_pick_it():
    def model():
        pyro.sample("u", dist.ProjectedNormal(torch.tensor([0.0, 3.0, 0.0])))

    tr = poutine.trace(poutine.reparam(model, {"u": ProjectedNormalReparam()})).get_trace()
    assert torch.isclose(tr.nodes["u"]["value"].norm(), torch.tensor(1.0))
    assert poutine.trace(MinimalReparam()(model)).get_trace().stochastic_nodes == ["u_normal"]
    with pytest.raises(ReparamError, match="Site 'u' is observed"):
        obs = torch.tensor([1.0, 0.0, 0.0])
        poutine.reparam(
            lambda: pyro.sample("u", dist.ProjectedNormal(torch.ones(3)), obs=obs),
            {"u": ProjectedNormalReparam()},
        )()


def test_auto_reparam_decentres_transformed_and_location_scale_latents():
    def model():
        s = pyro.sample("s", dist.LogNormal(0.0, 1.0))
        m = pyro.sample("m", dist.Normal(0.0, s))
        pyro.sample("y", dist.Normal(m, 1.0), obs=torch.tensor(0.3))

    strategy = AutoReparam(centered=0.0)
    tr = poutine.trace(strategy(model)).get_trace()
    assert tr.stochastic_nodes == ["s_base_decentered", "m_decentered"]
    assert type(strategy.config["s"]).__name__ == "TransformReparam"
    assert strategy.config["y"] is None  # observed sites keep their likelihood


def test_neutra_density_is_the_model_density_pulled_back_through_the_guide():
    # Neal's funnel; a trained guide is not needed for the identity checked here:
    # log p_neutra(z) = log p_model(T(z)) + log|det dT(z)|, with T the guide's transform.
    def funnel():
        y = pyro.sample("y", dist.Normal(0.0, 3.0))
        with pyro.plate("d", 4):
            pyro.sample("x", dist.Normal(0.0, torch.exp(y / 2)))

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = AutoMultivariateNormal(funnel, init_scale=0.5)
    svi = SVI(funnel, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(20):
        svi.step()
    neutra = NeuTraReparam(guide.requires_grad_(False))
    z = torch.randn(5)
    conditioned = poutine.condition(neutra.reparam(funnel), data={"y_shared_latent": z})
    tr = poutine.trace(conditioned).get_trace()
    tr.compute_log_prob()
    assert tr.stochastic_nodes == [] and "y_shared_latent" in tr.nodes
    transform = guide.get_transform()
    x = transform(z)
    expected = (
        dist.Normal(0.0, 3.0).log_prob(x[0])
        + dist.Normal(0.0, torch.exp(x[0] / 2)).log_prob(x[1:]).sum()
        + transform.log_abs_det_jacobian(z, x)
    )
    assert torch.isclose(tr.log_prob_sum(), expected, atol=1e-4)
    mapped = neutra.transform_sample(z.expand(3, 5))
    assert torch.allclose(mapped["y"], x[0].expand(3)) and mapped["x"].shape == (3, 4)


def test_neutra_draws_the_shared_latent_outside_the_plates_of_the_first_latent_site():
    def plate_first():
        with pyro.plate("d", 3):
            x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(x.sum(), 1.0))

    pyro.clear_param_store()
    guide = AutoMultivariateNormal(plate_first, init_scale=0.5)
    guide()
    neutra = NeuTraReparam(guide.requires_grad_(False))
    z = torch.randn(4)
    conditioned = poutine.condition(neutra.reparam(plate_first), data={"x_shared_latent": z})
    tr = poutine.trace(conditioned).get_trace()
    shared = tr.nodes["x_shared_latent"]
    assert shared["value"].shape == (4,) and shared["cond_indep_stack"] == ()
    x = guide.get_transform()(z)
    assert torch.allclose(tr.nodes["x"]["value"], x[:3]) and torch.isclose(
        tr.nodes["y"]["value"], x[3]
    )


def test_split_support_of_a_piece_follows_the_parts_it_covers():
    from torch.distributions import constraints

    from engine.infer.reparam.split import default_support

    support = constraints.cat([constraints.real, constraints.positive], dim=-1, lengths=[2, 2])
    site = dist.ImproperUniform(support, (), (4,))
    assert default_support(site, slice(0, 2), -1) is constraints.real
    straddling = default_support(site, slice(1, 3), -1)
    assert isinstance(straddling, constraints.cat) and list(straddling.lengths) == [1, 1]
    assert straddling.check(torch.tensor([-1.0, 2.0])).all()
    assert not straddling.check(torch.tensor([-1.0, -2.0])).all()
