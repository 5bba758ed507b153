"""The posterior of a model's enumerated sites: TraceEnum_ELBO.compute_marginals and
.sample_posterior, and TraceEnumSample_ELBO.sample_saved, against exact posteriors computed by
enumerating every assignment by hand."""

import itertools
import math
import warnings

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import EnumerationError, EnumerationNotSupportedError
from engine.infer import (
    SVI,
    TraceEnum_ELBO,
    TraceEnumSample_ELBO,
    config_enumerate,
    infer_discrete,
)
from engine.infer.discrete import TraceEnumSample_ELBO as FromPyrosPath
from engine.optim import Adam

PRIOR_A = torch.tensor([0.3, 0.7])
B_GIVEN_A = torch.tensor([0.2, 0.75])  # P(b = 1 | a)
DATA = torch.tensor([0.4, 2.6, 1.1])
DRAWS = 800


@config_enumerate
def model(data, shift=0.0):
    a = engine.sample("a", dist.Categorical(PRIOR_A))
    with engine.plate("rows", len(data)):
        b = engine.sample("b", dist.Bernoulli(B_GIVEN_A[a]))
        engine.sample("x", dist.Normal(a + 2.0 * b + shift, 1.0), obs=data)
    return a, b


def empty_guide(data, shift=0.0):
    pass


def exact_posterior(data, shift=0.0):
    """P(a = 1 | data) and P(b_i = 1 | data), summing the joint over all 2 * 2^n assignments."""
    joint = {}
    for a in range(2):
        for bs in itertools.product(range(2), repeat=len(data)):
            log_p = PRIOR_A[a].log()
            for b, x in zip(bs, data, strict=True):
                log_p = log_p + dist.Bernoulli(B_GIVEN_A[a]).log_prob(torch.tensor(float(b)))
                log_p = log_p + dist.Normal(a + 2.0 * b + shift, 1.0).log_prob(x)
            joint[(a, bs)] = log_p.exp().item()
    total = sum(joint.values())
    p_a = sum(p for (a, _), p in joint.items() if a == 1) / total
    p_b = [sum(p for (_, bs), p in joint.items() if bs[i] == 1) / total for i in range(len(data))]
    return p_a, torch.tensor(p_b)


def mc_tolerance(p, draws=DRAWS):
    """Four standard errors of a frequency over ``draws`` independent draws (a two-sided
    test at about 6e-5 per comparison; the smallest p here, about 0.1, gives 0.042)."""
    return 4 * math.sqrt(max(p * (1 - p), 1e-4) / draws)


def test_compute_marginals_match_the_exact_posterior():
    marginals = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(model, empty_guide, DATA)
    p_a, p_b = exact_posterior(DATA)
    assert isinstance(marginals["a"], dist.Categorical)
    assert isinstance(marginals["b"], dist.Bernoulli)
    assert marginals["a"].probs[1].item() == pytest.approx(p_a, abs=1e-5)
    assert marginals["b"].batch_shape == (3,)
    assert torch.allclose(marginals["b"].probs, p_b, atol=1e-5)


def test_compute_marginals_condition_on_the_guides_draw():
    def model_with_shift(data):
        shift = engine.sample("shift", dist.Normal(0.0, 1.0))
        return model(data, shift)

    def guide(data):
        engine.sample("shift", dist.Delta(torch.tensor(-0.8)))

    marginals = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(model_with_shift, guide, DATA)
    p_a, p_b = exact_posterior(DATA, shift=-0.8)
    assert "shift" not in marginals
    assert marginals["a"].probs[1].item() == pytest.approx(p_a, abs=1e-5)
    assert torch.allclose(marginals["b"].probs, p_b, atol=1e-5)


TRANSITION = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
LOCS = torch.tensor([-1.0, 0.5, 2.0])
SERIES = torch.tensor([-0.7, 0.2, 2.3, 1.9])


@config_enumerate
def hmm(series):
    state = 0
    for t in engine.markov(range(len(series))):
        state = engine.sample(f"s_{t}", dist.Categorical(TRANSITION[state]))
        engine.sample(f"y_{t}", dist.Normal(LOCS[state], 0.8), obs=series[t])


def test_compute_marginals_of_a_markov_chain_match_brute_force():
    marginals = TraceEnum_ELBO(max_plate_nesting=0).compute_marginals(hmm, lambda s: None, SERIES)
    joint = torch.zeros((3,) * len(SERIES))
    for path in itertools.product(range(3), repeat=len(SERIES)):
        log_p, previous = torch.tensor(0.0), 0
        for t, state in enumerate(path):
            log_p = log_p + TRANSITION[previous, state].log()
            log_p = log_p + dist.Normal(LOCS[state], 0.8).log_prob(SERIES[t])
            previous = state
        joint[path] = log_p.exp()
    joint = joint / joint.sum()
    for t in range(len(SERIES)):
        others = [d for d in range(len(SERIES)) if d != t]
        expected = joint.sum(others)
        assert torch.allclose(marginals[f"s_{t}"].probs, expected, atol=1e-5), t


def test_a_one_hot_site_gets_a_one_hot_marginal():
    @config_enumerate
    def one_hot():
        z = engine.sample("z", dist.OneHotCategorical(torch.tensor([0.5, 0.3, 0.2])))
        engine.sample("x", dist.Normal((z * LOCS).sum(-1), 1.0), obs=torch.tensor(1.7))

    marginal = TraceEnum_ELBO(max_plate_nesting=0).compute_marginals(one_hot, lambda: None)["z"]
    likelihood = dist.Normal(LOCS, 1.0).log_prob(torch.tensor(1.7)).exp()
    expected = torch.tensor([0.5, 0.3, 0.2]) * likelihood
    assert isinstance(marginal, dist.OneHotCategorical)
    assert torch.allclose(marginal.probs, expected / expected.sum(), atol=1e-6)


def frequencies(draw, n=DRAWS):
    a_ones, b_ones = 0.0, torch.zeros(len(DATA))
    for _ in range(n):
        a, b = draw()
        a_ones += float(a)
        b_ones += b
    return a_ones / n, b_ones / n


def assert_matches_exact(freq_a, freq_b, shift=0.0):
    p_a, p_b = exact_posterior(DATA, shift)
    assert abs(freq_a - p_a) < mc_tolerance(p_a)
    for freq, p in zip(freq_b.tolist(), p_b.tolist(), strict=True):
        assert abs(freq - p) < mc_tolerance(p)


@pytest.mark.slow  # 800 posterior draws, each a run of the model
def test_sample_posterior_draws_from_the_exact_joint_posterior():
    engine.set_rng_seed(11)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    freq_a, freq_b = frequencies(lambda: elbo.sample_posterior(model, empty_guide, DATA))
    assert_matches_exact(freq_a, freq_b)


def test_sample_posterior_runs_under_the_callers_trace():
    engine.set_rng_seed(2)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    tr = poutine.trace(elbo.sample_posterior).get_trace(model, empty_guide, DATA)
    assert tr.nodes["b"]["value"].shape == (3,)
    assert tr.nodes["x"]["is_observed"]


def test_trace_enum_sample_elbo_samples_given_its_last_guide_draw():
    assert FromPyrosPath is TraceEnumSample_ELBO
    elbo = TraceEnumSample_ELBO(max_plate_nesting=1)
    loss = elbo.loss(model, empty_guide, DATA)
    assert loss == pytest.approx(TraceEnum_ELBO(max_plate_nesting=1).loss(model, empty_guide, DATA))
    # sample_saved is infer_discrete on the saved guide draw: the same draws from the same seed.
    engine.set_rng_seed(5)
    saved = [elbo.sample_saved() for _ in range(20)]
    engine.set_rng_seed(5)
    direct = infer_discrete(model, first_available_dim=-2)
    expected = [direct(DATA) for _ in range(20)]
    for (a, b), (a_expected, b_expected) in zip(saved, expected, strict=True):
        assert torch.equal(a, a_expected) and torch.equal(b, b_expected)
    # ... and the draws vary: the posterior of b is far from a point mass.
    assert len({tuple(b.tolist()) for _, b in saved}) > 1


@pytest.mark.slow  # 800 posterior draws, each a run of the model
def test_trace_enum_sample_elbo_after_svi_steps_draws_given_the_guides_draw():
    def model_with_shift(data):
        shift = engine.sample("shift", dist.Normal(0.0, 1.0))
        return model(data, shift)

    def guide(data):
        engine.sample("shift", dist.Delta(engine.param("shift_value", torch.tensor(0.3))))

    engine.clear_param_store()
    engine.set_rng_seed(7)
    elbo = TraceEnumSample_ELBO(max_plate_nesting=1)
    # lr=0 keeps the guide's draw at 0.3, so the posterior it conditions on is known.
    svi = SVI(model_with_shift, guide, Adam({"lr": 0.0}), elbo)
    for _ in range(3):
        svi.step(DATA)
    marginals = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(
        model_with_shift, lambda data: engine.sample("shift", dist.Delta(torch.tensor(0.3))), DATA
    )
    engine.set_rng_seed(3)
    draws = torch.stack([elbo.sample_saved()[1] for _ in range(DRAWS)])
    for freq, p in zip(draws.mean(0).tolist(), marginals["b"].probs.tolist(), strict=True):
        assert abs(freq - p) < mc_tolerance(p)
    engine.clear_param_store()


def test_sample_saved_before_any_elbo_computation_says_what_to_call():
    with pytest.raises(EnumerationError, match=r"call loss, loss_and_grads or svi\.step first"):
        TraceEnumSample_ELBO().sample_saved()


def test_guide_enumeration_and_several_particles_are_refused_as_not_implemented():
    @config_enumerate
    def enumerating_guide(data, shift=0.0):
        engine.sample("a", dist.Categorical(torch.tensor([0.5, 0.5])))

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    with pytest.raises(EnumerationNotSupportedError, match="guide enumerates site 'a'"):
        elbo.compute_marginals(model, enumerating_guide, DATA)
    with pytest.raises(NotImplementedError, match="sample_posterior"):
        elbo.sample_posterior(model, enumerating_guide, DATA)
    several = TraceEnum_ELBO(max_plate_nesting=1, num_particles=2)
    with pytest.raises(NotImplementedError, match="num_particles=2"):
        several.compute_marginals(model, empty_guide, DATA)


def test_infer_discrete_warns_when_no_site_is_marked_for_enumeration():
    def unmarked(data):
        a = engine.sample("a", dist.Categorical(PRIOR_A))
        with engine.plate("rows", len(data)):
            engine.sample("x", dist.Normal(a.float(), 1.0), obs=data)

    with pytest.warns(UserWarning, match="no sample site marked for enumeration"):
        infer_discrete(unmarked, first_available_dim=-2)(DATA)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer_discrete(unmarked, first_available_dim=-2, strict_enumeration_warning=False)(DATA)
        infer_discrete(config_enumerate(unmarked), first_available_dim=-2)(DATA)
