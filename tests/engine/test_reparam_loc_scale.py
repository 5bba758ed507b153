"""LocScaleReparam: the rewritten site keeps its distribution for every centredness, the learned
centredness is a parameter in [0, 1], and eight schools written with it matches the reference
posterior under NUTS."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import ReparamError
from engine.infer import MCMC, NUTS, Predictive
from engine.infer.reparam import LocScaleReparam
from tests.eight_schools import SIGMA, Y, assert_matches_the_reference_posterior, schools_centred

DRAWS = 40000


@pytest.mark.parametrize("centered", [0.0, 0.3, torch.tensor([0.2, 0.9]), None])
@pytest.mark.parametrize("family", ["Normal", "StudentT", "Laplace"])
def test_the_rewritten_site_keeps_its_distribution(family, centered):
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    loc, scale = torch.tensor([-1.0, 2.0]), torch.tensor([0.5, 3.0])
    prior = {
        "Normal": dist.Normal(loc, scale),
        "StudentT": dist.StudentT(7.0, loc, scale),
        "Laplace": dist.Laplace(loc, scale),
    }[family]

    def model():
        with pyro.plate("draws", DRAWS, dim=-2):
            return pyro.sample("x", prior)

    reparam = LocScaleReparam(centered)
    x = poutine.trace(poutine.reparam(model, {"x": reparam})).get_trace().nodes["x"]["value"]
    assert x.shape == (DRAWS, 2)
    # Mean and sd of 40000 draws against the prior's own. The standard error of a mean is
    # sd / sqrt(N) and of a sd about sd * sqrt((kurtosis - 1) / 4N) (StudentT(7) has kurtosis 5):
    # 5 standard errors each.
    sd = prior.variance.sqrt()
    kurtosis = {"Normal": 3.0, "StudentT": 3.0 + 6.0 / 3.0, "Laplace": 6.0}[family]
    assert torch.all((x.mean(0) - loc).abs() < 5 * sd / math.sqrt(DRAWS))
    sd_se = sd * math.sqrt((kurtosis - 1) / (4 * DRAWS))
    assert torch.all((x.std(0) - sd).abs() < 5 * sd_se), (x.std(0), sd)


def test_centred_one_leaves_the_site_alone():
    def model():
        return pyro.sample("x", dist.Normal(0.0, 1.0))

    tr = poutine.trace(poutine.reparam(model, {"x": LocScaleReparam(1.0)})).get_trace()
    assert list(tr.stochastic_nodes) == ["x"]


def test_the_learned_centredness_is_one_param_per_event_element_with_a_gradient():
    pyro.clear_param_store()
    loc = torch.zeros(4, 3, requires_grad=True)

    def model():
        with pyro.plate("rows", 4):
            return pyro.sample("x", dist.Normal(loc, 2.0).to_event(1))

    # With the decentred value held fixed (as a guide or MCMC holds it), x = 2 ** (1 - c): the
    # gradient reaches the centredness parameter.
    fixed = poutine.condition(model, data={"x_decentered": torch.ones(4, 3)})
    tr = poutine.trace(poutine.reparam(fixed, {"x": LocScaleReparam()})).get_trace()
    centred = tr.nodes["x_centered"]["value"]
    assert tr.nodes["x_centered"]["type"] == "param" and centred.shape == (3,)
    assert torch.allclose(centred, torch.full((3,), 0.5))
    x = tr.nodes["x"]["value"]
    assert torch.allclose(x, torch.full((4, 3), 2**0.5))
    (gradient,) = torch.autograd.grad(x.sum(), [centred])
    assert torch.allclose(gradient, torch.full((3,), -4 * math.log(2) * 2**0.5))


def test_shape_params_are_copied_and_bad_settings_refused():
    def model():
        return pyro.sample("x", dist.StudentT(3.0, 1.0, 2.0))

    tr = poutine.trace(poutine.reparam(model, {"x": LocScaleReparam(0.0)})).get_trace()
    decentred = tr.nodes["x_decentered"]["fn"]
    assert isinstance(decentred, dist.StudentT) and float(decentred.df) == 3.0
    assert float(decentred.loc) == 0.0 and float(decentred.scale) == 1.0
    with pytest.raises(ReparamError, match=r"\[0, 1\]"):
        LocScaleReparam(-0.1)
    with pytest.raises(ReparamError, match="shape_params"):
        LocScaleReparam(0.0, shape_params="df")

    def gamma_model():
        pyro.sample("g", dist.Gamma(2.0, 1.0))

    with pytest.raises(ReparamError, match=r"Site 'g'.*loc and scale.*Gamma"):
        poutine.reparam(gamma_model, {"g": LocScaleReparam(0.0)})()


def test_predictive_rebuilds_theta_from_the_decentred_draws():
    model = poutine.reparam(schools_centred, {"theta": LocScaleReparam(centered=0.0)})
    posterior = {
        "mu": torch.tensor([1.0, 2.0]),
        "tau": torch.tensor([0.5, 4.0]),
        "theta_decentered": torch.ones(2, 8),
    }
    draws = Predictive(model, posterior_samples=posterior)(Y, SIGMA)
    assert torch.allclose(draws["theta"], torch.tensor([[1.5], [6.0]]).expand(2, 8))


@pytest.mark.slow
def test_eight_schools_non_centred_by_loc_scale_reparam_matches_the_reference():
    pyro.set_rng_seed(3)
    model = poutine.reparam(schools_centred, config={"theta": LocScaleReparam(centered=0)})
    mcmc = MCMC(NUTS(model), 1000, 500, num_chains=4)
    mcmc.run(Y, SIGMA)
    samples = mcmc.get_samples(group_by_chain=True)
    assert set(samples) == {"mu", "tau", "theta_decentered", "theta"}
    assert_matches_the_reference_posterior(samples, noise="theta_decentered")


def test_shape_params_reads_the_names_copied_at_the_latest_rewritten_site():
    # Pyro's LocScaleReparam exposes the names it copied once a site is rewritten; the engine
    # still finds each site's own names, so one instance serves sites of different families.
    reparam = LocScaleReparam(0.0)
    assert reparam.shape_params is None

    def model():
        pyro.sample("s", dist.AsymmetricLaplace(0.0, 1.0, 2.0))
        pyro.sample("t", dist.StudentT(5.0, 0.0, 1.0))

    tr = poutine.trace(poutine.reparam(model, {"s": reparam, "t": reparam})).get_trace()
    assert reparam.shape_params == ("df",)
    assert float(tr.nodes["s_decentered"]["fn"].asymmetry) == 2.0
    assert float(tr.nodes["t_decentered"]["fn"].df) == 5.0
    given = LocScaleReparam(0.5, shape_params=["df"])
    poutine.reparam(lambda: pyro.sample("t", dist.StudentT(5.0, 0.0, 1.0)), {"t": given})()
    assert given.shape_params == ("df",)
