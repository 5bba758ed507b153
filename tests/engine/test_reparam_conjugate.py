"""ConjugateReparam: the site is drawn from the closed-form posterior, its weight keeps the model's
joint density, an exact likelihood makes an empty guide exact (the ELBO is the log evidence for
every draw), and unsupported sites and guides are refused by name."""

import math

import pytest
import torch
from scipy import stats

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import ReparamError
from engine.infer import Trace_ELBO
from engine.infer.autoguide.initialization import InitMessenger, init_to_value
from engine.infer.reparam import ConjugateReparam

F64 = torch.float64
# Our own small data set: 13 successes in 20 trials, a Beta(1.5, 2.5) prior.
TRIALS, SUCCESSES = 20.0, 13.0
A, B = 1.5, 2.5


def _coin_model(successes=None):
    if successes is None:
        successes = torch.tensor(SUCCESSES, dtype=F64)
    p = engine.sample("p", dist.Beta(torch.tensor(A, dtype=F64), torch.tensor(B, dtype=F64)))
    engine.sample("k", dist.Binomial(TRIALS, p), obs=successes)
    return p


def _coin_likelihood(successes=SUCCESSES):
    # The Binomial likelihood of p, up to a constant, as a Beta density over p.
    successes = torch.as_tensor(successes, dtype=F64)
    return dist.Beta(1 + successes, 1 + TRIALS - successes)


def test_draws_follow_the_closed_form_posterior():
    # KS against the exact posterior Beta(A + 13, B + 7) at the 1e-3 level, and its mean within
    # 4.5 standard errors (posterior sd / sqrt(n) = 0.097 / 200 = 0.0005).
    reparam_model = poutine.reparam(_coin_model, {"p": ConjugateReparam(_coin_likelihood())})
    engine.set_rng_seed(0)
    with engine.plate("draws", 40000):
        p = poutine.trace(reparam_model).get_trace().nodes["p"]["value"]
    assert p.shape == (40000,)
    posterior = stats.beta(A + SUCCESSES, B + TRIALS - SUCCESSES)
    assert stats.kstest(p.numpy(), posterior.cdf).pvalue > 1e-3
    assert abs(p.mean().item() - posterior.mean()) < 4.5 * posterior.std() / 200


def test_the_weight_keeps_the_joint_density():
    # Point mass weight + updated density == prior density, draw by draw.
    prior, likelihood = (
        dist.Beta(torch.tensor(A, dtype=F64), torch.tensor(B, dtype=F64)),
        _coin_likelihood(),
    )
    posterior, _ = prior.conjugate_update(likelihood)
    reparam_model = poutine.reparam(_coin_model, {"p": ConjugateReparam(likelihood)})
    with engine.plate("draws", 50):
        tr = poutine.trace(reparam_model).get_trace()
    tr.compute_log_prob()
    site = tr.nodes["p"]
    p = site["value"]
    assert site["is_observed"] and site["infer"]["_deterministic"]
    assert torch.allclose(site["log_prob"] + posterior.log_prob(p), prior.log_prob(p))
    assert [name for name in tr.nodes if name not in ("_INPUT", "_RETURN")] == ["p", "k"]


def test_an_exact_likelihood_makes_an_empty_guide_exact():
    # -ELBO == -log evidence for every draw: log C(n, k) + log B(A + k, B + n - k) - log B(A, B).
    def log_beta(a, b):
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    n, k = TRIALS, SUCCESSES
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    log_evidence = log_choose + log_beta(A + k, B + n - k) - log_beta(A, B)
    reparam_model = poutine.reparam(_coin_model, {"p": ConjugateReparam(_coin_likelihood())})

    def empty_guide():
        pass

    for seed in range(3):
        engine.set_rng_seed(seed)
        loss = Trace_ELBO().loss(reparam_model, empty_guide)
        assert loss == pytest.approx(-log_evidence, abs=1e-10)


def test_a_guide_function_reads_the_model_arguments():
    def likelihood_of(successes):
        return _coin_likelihood(successes)

    reparam_model = poutine.reparam(_coin_model, {"p": ConjugateReparam(likelihood_of)})
    engine.set_rng_seed(1)
    with engine.plate("draws", 40000):
        p = reparam_model(torch.tensor(4.0, dtype=F64))
    posterior = stats.beta(A + 4, B + TRIALS - 4)
    assert stats.kstest(p.numpy(), posterior.cdf).pvalue > 1e-3


def test_gamma_poisson_rates_with_an_independent_prior():
    # Three rates under one to_event(1) prior, counts of 8 observations each: the posterior of
    # rate i is Gamma(2 + sum_i, 1 + 8). Means within 4.5 standard errors (sd / sqrt(n)).
    counts = torch.tensor(
        [[3.0, 5, 2, 4, 6, 3, 4, 5], [0, 1, 0, 2, 1, 0, 1, 0], [9, 12, 8, 10, 11, 9, 7, 10]]
    )
    sums = counts.sum(-1)

    def model():
        rate = engine.sample("rate", dist.Gamma(2.0, 1.0).expand([3]).to_event(1))
        per_count = rate.unsqueeze(-1).expand((*rate.shape, 8))
        engine.sample("c", dist.Poisson(per_count).to_event(2), obs=counts)

    likelihood = dist.Gamma(1 + sums, torch.full((3,), 8.0))
    reparam_model = poutine.reparam(model, {"rate": ConjugateReparam(likelihood)})
    engine.set_rng_seed(2)
    with engine.plate("draws", 20000):
        tr = poutine.trace(reparam_model).get_trace()
    rate = tr.nodes["rate"]["value"]
    assert rate.shape == (20000, 3)
    shape, rate_param = 2 + sums, 9.0
    mean, sd = shape / rate_param, shape.sqrt() / rate_param
    assert ((rate.mean(0) - mean).abs() < 4.5 * sd / math.sqrt(20000)).all()
    tr.compute_log_prob()
    # The weight sums over the three rates: with it the updated density is the prior's again.
    prior = dist.Gamma(2.0, 1.0).expand([3]).to_event(1)
    posterior = dist.Gamma(shape, torch.full((3,), rate_param)).to_event(1)
    weighted = tr.nodes["rate"]["log_prob"] + posterior.log_prob(rate)
    assert torch.allclose(weighted, prior.log_prob(rate), atol=1e-4)


def test_an_initial_value_is_kept_and_weighted():
    start = torch.tensor(0.3, dtype=F64)
    init = InitMessenger(init_to_value(values={"p": start}))
    with init, poutine.reparam(config={"p": ConjugateReparam(_coin_likelihood())}):
        assert _coin_model().item() == 0.3


def test_observed_sites_are_refused_by_name():
    def model():
        engine.sample("q", dist.Beta(2.0, 2.0), obs=torch.tensor(0.4))

    with pytest.raises(ReparamError, match=r"'q' is observed.*ConjugateReparam"):
        poutine.reparam(model, {"q": ConjugateReparam(dist.Beta(2.0, 3.0))})()


def test_a_prior_without_conjugate_update_is_refused_by_name():
    def model():
        engine.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ReparamError, match=r"'mu'.*conjugate update.*Normal"):
        poutine.reparam(model, {"mu": ConjugateReparam(dist.Normal(1.0, 1.0))})()


def test_a_guide_of_the_wrong_family_is_refused_by_name():
    def model():
        engine.sample("p", dist.Beta(2.0, 2.0))

    with pytest.raises(ReparamError, match=r"'p'.*Beta.*Gamma"):
        poutine.reparam(model, {"p": ConjugateReparam(dist.Gamma(2.0, 1.0))})()


def test_bad_guides_are_refused():
    with pytest.raises(ReparamError, match="distribution over the site"):
        ConjugateReparam(0.5)

    def model():
        engine.sample("p", dist.Beta(2.0, 2.0))

    with pytest.raises(ReparamError, match=r"'p'.*returned a float"):
        poutine.reparam(model, {"p": ConjugateReparam(lambda: 0.5)})()
    needs_arguments = ConjugateReparam(lambda successes: dist.Beta(2.0, 2.0))
    with (
        pytest.raises(ReparamError, match=r"'p'.*poutine.reparam\(model, config\)"),
        poutine.reparam(config={"p": needs_arguments}),
    ):
        model()
