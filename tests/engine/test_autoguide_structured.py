"""AutoStructured, AutoGaussian and StructuredReparam on a linear-Gaussian model whose posterior
is known in closed form.

The model: a global ``g ~ N(0, 1)``, two group effects ``e_k ~ N(g, 1)`` and one observation per
group ``y_k ~ N(e_k, 0.5)``. Its posterior over ``(g, e_0, e_1)`` is Gaussian with precision
``J`` and information vector ``h`` written out below, so ``mean = J⁻¹ h`` and ``cov = J⁻¹``.

Both guides can represent this posterior exactly. At the optimum ``log p(y, z) - log q(z)`` is
then the same for every draw ``z`` (the log evidence), so the ELBO's reparameterised gradient has
no Monte Carlo noise there and SVI heads for the exact answer; the tolerances (0.05, as in Pyro's
own exactness checks) cover the optimiser not having fully arrived after a bounded number of
steps with a decaying step size, plus the stated Monte Carlo errors where draws are used.
"""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import AutoGuideError
from engine.infer import MCMC, NUTS, SVI, Trace_ELBO
from engine.infer.autoguide import AutoGaussian, AutoStructured
from engine.infer.autoguide.gaussian import AutoGaussianDense
from engine.infer.reparam import StructuredReparam
from engine.optim import ClippedAdam

Y = torch.tensor([1.3, -0.4], dtype=torch.float64)
NOISE = 0.5


def groups(y):
    g = engine.sample("g", dist.Normal(torch.tensor(0.0, dtype=y.dtype), 1.0))
    with engine.plate("groups", len(y)):
        e = engine.sample("e", dist.Normal(g, 1.0))
        engine.sample("y", dist.Normal(e, NOISE), obs=y)


def exact_posterior(y):
    """Mean and covariance of (g, e_0, e_1) given y, from the joint precision."""
    w = 1 / NOISE**2
    precision = torch.tensor([[1 + 2, -1, -1], [-1, 1 + w, 0], [-1, 0, 1 + w]], dtype=torch.float64)
    info = torch.cat([torch.zeros(1, dtype=torch.float64), w * y])
    cov = torch.linalg.inv(precision)
    return cov @ info, cov


def log_evidence(y):
    # y ~ N(0, 1 1ᵀ + I + NOISE² I): g and e integrated out.
    cov = torch.ones(2, 2, dtype=torch.float64) + (1 + NOISE**2) * torch.eye(2, dtype=torch.float64)
    return dist.MultivariateNormal(torch.zeros(2, dtype=torch.float64), cov).log_prob(y)


def fit(guide, steps=1000):
    optim = ClippedAdam({"lr": 0.05, "lrd": 0.01 ** (1 / steps)})
    svi = SVI(groups, guide, optim, Trace_ELBO(num_particles=10, vectorize_particles=True))
    for _ in range(steps):
        svi.step(Y)
    return svi


def flat_draws(guide, num):
    """``num`` joint draws of (g, e_0, e_1) from the guide, as a (num, 3) tensor."""
    with torch.no_grad(), engine.plate("draws", num, dim=-2):
        values = guide(Y)
    return torch.cat([values["g"].reshape(num, 1), values["e"].reshape(num, 2)], -1)


@pytest.fixture(autouse=True)
def _fresh_store():
    engine.clear_param_store()
    engine.set_rng_seed(0)


@pytest.mark.slow
def test_auto_gaussian_reaches_the_exact_posterior():
    guide = AutoGaussian(groups, model_args=(Y,))
    fit(guide)
    mean, cov = exact_posterior(Y)
    posterior = guide.get_posterior()
    # No sampling here: the guide's own mean and covariance (posterior sds 0.46 to 0.62).
    assert torch.allclose(posterior.mean.detach(), mean, atol=0.05)
    assert torch.allclose(posterior.covariance_matrix.detach(), cov, atol=0.05)
    # Near the exact posterior the ELBO is the log evidence (the KL gap is second order).
    loss = Trace_ELBO(num_particles=100, vectorize_particles=True).loss(groups, guide, Y)
    assert loss == pytest.approx(-log_evidence(Y).item(), abs=0.05)


@pytest.mark.slow
def test_auto_structured_reaches_the_exact_posterior():
    guide = AutoStructured(groups, conditionals="mvn", model_args=(Y,))
    # The structure read off the model: the group effects depend on the global.
    assert guide._dependencies == {"g": {}, "e": {"g": "linear"}}
    fit(guide)
    mean, cov = exact_posterior(Y)
    draws = flat_draws(guide, 40000)
    # Monte Carlo error of 40000 draws: the standard error of a mean is sd/200 <= 0.003, of a
    # covariance entry sqrt((s_ii s_jj + s_ij²) / n) <= 0.003 here (variances <= 0.4): four of
    # them (0.012) on top of the optimiser's 0.05.
    assert torch.allclose(draws.mean(0), mean, atol=0.062)
    assert torch.allclose(draws.T.cov(), cov, atol=0.062)
    loss = Trace_ELBO(num_particles=100, vectorize_particles=True).loss(groups, guide, Y)
    assert loss == pytest.approx(-log_evidence(Y).item(), abs=0.05)


def test_auto_gaussian_precision_is_zero_where_the_model_has_no_dependency():
    def model():
        a = engine.sample("a", dist.Normal(0.0, 1.0))
        with engine.plate("rows", 3):
            b = engine.sample("b", dist.Normal(a, 1.0))
        engine.sample("c", dist.Normal(0.0, 1.0))
        with engine.plate("cols", 2):
            engine.sample("d", dist.Normal(0.0, 1.0))
        engine.sample("obs", dist.Normal(b[:2].sum() + 0.0, 1.0), obs=torch.tensor(0.0))

    guide = AutoGaussian(model, model_args=())
    assert isinstance(guide, AutoGaussianDense)
    for parameter in guide.parameters():
        parameter.data.normal_()  # any value of the parameters keeps the structure
    support = guide.get_posterior().precision_matrix.detach() != 0
    # order: a, b_0, b_1, b_2, c, d_0, d_1. obs, outside the rows plate, couples all of b.
    expected = torch.tensor(
        [
            [1, 1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(support, expected)


def test_auto_gaussian_keeps_plate_slices_apart():
    def model():
        with engine.plate("rows", 3):
            x = engine.sample("x", dist.Normal(0.0, 1.0))
            engine.sample("y", dist.Normal(x, 1.0), obs=torch.zeros(3))

    guide = AutoGaussian(model, model_args=())
    for parameter in guide.parameters():
        parameter.data.normal_()
    precision = guide.get_posterior().precision_matrix.detach()
    assert torch.equal(precision != 0, torch.eye(3, dtype=torch.bool))


def test_backend_choices():
    with pytest.raises(AutoGuideError, match="funsor"):
        AutoGaussian(groups, backend="funsor")
    with pytest.raises(AutoGuideError, match="unknown backend"):
        AutoGaussian(groups, backend="sparse")
    assert type(AutoGaussian(groups, backend="dense")) is AutoGaussianDense


def test_auto_structured_refuses_a_bad_structure():
    with pytest.raises(AutoGuideError, match="cycle"):
        AutoStructured(
            groups,
            conditionals="normal",
            dependencies={"g": {"e": "linear"}, "e": {"g": "linear"}},
            model_args=(Y,),
        )
    with pytest.raises(AutoGuideError, match="depending on itself"):
        AutoStructured(groups, dependencies={"g": {"g": "linear"}})
    with pytest.raises(AutoGuideError, match="'h', which is not a latent site"):
        AutoStructured(groups, dependencies={"e": {"h": "linear"}}, model_args=(Y,))
    with pytest.raises(AutoGuideError, match="must be one of"):
        AutoStructured(groups, conditionals="student")


def test_structured_reparam_starts_from_an_initial_value():
    guide = AutoStructured(groups, conditionals={"g": "normal", "e": "mvn"}, model_args=(Y,))
    for parameter in guide.parameters():
        parameter.data.normal_(0.0, 0.3)  # a guide away from its start: a non-trivial map
    reparam = StructuredReparam(guide)
    start = {"g": torch.tensor(0.7, dtype=torch.float64), "e": Y.clone()}
    init = engine.infer.autoguide.init_to_value(values=start)
    with engine.infer.autoguide.InitMessenger(init):
        tr = poutine.trace(reparam.reparam(groups)).get_trace(Y)
    assert torch.allclose(tr.nodes["g"]["value"], start["g"])
    assert torch.allclose(tr.nodes["e"]["value"], start["e"])
    again = reparam.transform_samples(
        {"g_aux": tr.nodes["g_aux"]["value"], "e_aux": tr.nodes["e_aux"]["value"]}
    )
    assert torch.allclose(again["e"], start["e"])


def test_structured_reparam_density_is_the_model_pulled_back():
    guide = AutoStructured(groups, conditionals={"g": "normal", "e": "mvn"}, model_args=(Y,))
    for parameter in guide.parameters():
        parameter.data.normal_(0.0, 0.3)
    reparam = StructuredReparam(guide)
    tr = poutine.trace(reparam.reparam(groups)).get_trace(Y)
    model_tr = poutine.trace(
        poutine.condition(groups, {"g": tr.nodes["g"]["value"], "e": tr.nodes["e"]["value"]})
    ).get_trace(Y)
    # The map from the noises to (g, e) is triangular with diagonal blocks scale * unit-tril:
    # log|det| is the sum of the log scales.
    log_det = sum(engine.param(f"AutoStructured.scales.{name}").log().sum() for name in ("g", "e"))
    expected = model_tr.log_prob_sum() + log_det
    assert tr.log_prob_sum().item() == pytest.approx(expected.item(), rel=1e-10)


@pytest.mark.slow
def test_structured_reparam_with_nuts_samples_the_exact_posterior():
    guide = AutoStructured(groups, conditionals="mvn", model_args=(Y,))
    fit(guide, steps=300)  # any fixed guide is an exact reparameterization; a fit helps
    reparam = StructuredReparam(guide)
    mcmc = MCMC(NUTS(reparam.reparam(groups)), num_samples=300, warmup_steps=150)
    mcmc.run(Y)
    samples = mcmc.get_samples()
    draws = reparam.transform_samples({k: v for k, v in samples.items() if k.endswith("_aux")})
    flat = torch.cat([draws["g"].reshape(-1, 1), draws["e"].reshape(-1, 2)], -1)
    mean, _ = exact_posterior(Y)
    # Posterior sds are at most 0.62; with an effective sample size of at least 75 of the 300
    # draws (the preconditioned target is close to a standard normal), a mean's standard error
    # is at most 0.072: five of them as the tolerance.
    assert torch.allclose(flat.mean(0), mean, atol=5 * 0.62 / math.sqrt(75))
