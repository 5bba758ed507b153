"""Distributions and helpers Pyro users rely on (issue 17): the NaN-masked likelihoods, the
straight-through relaxed distributions, ``has_rsample_``, ``engine.distributions.torch`` with
``ExponentialFamily``, KL divergences Pyro registers, ``DirichletMultinomial``, the mixtures of
diagonal normals, and pickling of distributions, traces and handler-wrapped models."""

import math
import pickle

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import ArgumentError


# ---- NaN-masked likelihoods -------------------------------------------------------------------
def test_nan_masked_normal_scores_only_observed_entries():
    loc = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    readings = torch.tensor([1.0, math.nan, 1.5])
    log_prob = dist.NanMaskedNormal(loc, 2.0).log_prob(readings)
    expected = dist.Normal(loc.detach(), 2.0).log_prob(torch.tensor([1.0, 0.0, 1.5]))
    assert torch.allclose(log_prob, torch.stack([expected[0], torch.tensor(0.0), expected[2]]))
    (grad,) = torch.autograd.grad(log_prob.sum(), loc)
    # d/dloc log N(x | loc, 2) = (x - loc) / 4 where observed, and nothing from the hole.
    assert torch.allclose(grad, torch.tensor([0.125, 0.0, -0.125]))


def test_nan_masked_mvn_is_the_marginal_of_the_observed_coordinates():
    torch.manual_seed(3)
    factor = torch.randn(4, 4)
    cov = factor @ factor.T + torch.eye(4)
    loc = torch.tensor([1.0, 0.0, -2.0, 0.5])
    x = torch.tensor(
        [
            [0.3, math.nan, -1.0, math.nan],  # coordinates 0 and 2 seen
            [math.nan, math.nan, math.nan, math.nan],  # nothing seen
            [0.1, 0.2, 0.3, 0.4],  # everything seen
        ]
    )
    d = dist.NanMaskedMultivariateNormal(loc, covariance_matrix=cov)
    log_prob = d.log_prob(x)
    seen = [0, 2]
    marginal = dist.MultivariateNormal(loc[seen], cov[seen][:, seen])
    assert torch.allclose(log_prob[0], marginal.log_prob(x[0, seen]), atol=1e-5)
    assert log_prob[1] == 0
    assert torch.allclose(log_prob[2], dist.MultivariateNormal(loc, cov).log_prob(x[2]))


def test_nan_masked_mvn_gradients_are_finite_with_holes():
    scale_tril = torch.eye(3).requires_grad_()
    loc = torch.zeros(3, requires_grad=True)
    x = torch.tensor([[math.nan, 1.0, 2.0], [0.5, math.nan, math.nan]])
    log_prob = dist.NanMaskedMultivariateNormal(loc, scale_tril=scale_tril).log_prob(x)
    grads = torch.autograd.grad(log_prob.sum(), [loc, scale_tril])
    assert all(bool(g.isfinite().all()) for g in grads)


# ---- straight-through relaxed distributions ---------------------------------------------------
def test_straight_through_one_hot_draws_are_one_hot_and_score_the_relaxed_draw():
    torch.manual_seed(0)
    logits = torch.tensor([0.3, -0.2, 1.0], requires_grad=True)
    temperature = torch.tensor(0.4)
    st = dist.RelaxedOneHotCategoricalStraightThrough(temperature, logits=logits)
    x = st.rsample((50,))
    assert set(x.sum(-1).tolist()) == {1.0} and set(x.flatten().tolist()) <= {0.0, 1.0}
    torch.manual_seed(0)
    relaxed = dist.RelaxedOneHotCategorical(temperature, logits=logits).rsample((50,))
    # Same draws underneath: the one-hot vector marks the largest relaxed coordinate, and
    # log_prob scores the relaxed point.
    assert torch.equal(x.argmax(-1), relaxed.argmax(-1))
    plain = dist.RelaxedOneHotCategorical(temperature, logits=logits)
    assert torch.allclose(st.log_prob(x), plain.log_prob(relaxed))
    # The gradient passes through the rounding as the identity.
    (grad,) = torch.autograd.grad((x * torch.tensor([1.0, 2.0, 3.0])).sum(), logits)
    (relaxed_grad,) = torch.autograd.grad((relaxed * torch.tensor([1.0, 2.0, 3.0])).sum(), logits)
    assert torch.allclose(grad, relaxed_grad)


def test_straight_through_bernoulli_draws_are_zero_or_one():
    torch.manual_seed(1)
    probs = torch.tensor([0.2, 0.9], requires_grad=True)
    st = dist.RelaxedBernoulliStraightThrough(torch.tensor(0.5), probs=probs)
    x = st.rsample((100,))
    assert set(x.flatten().tolist()) <= {0.0, 1.0}
    assert bool(st.log_prob(x).isfinite().all())
    (grad,) = torch.autograd.grad(x.sum(), probs)
    assert bool((grad > 0).all())  # more probability of 1 moves the relaxed draws up


# ---- has_rsample_ -----------------------------------------------------------------------------
def test_has_rsample_setter_is_in_place_and_reaches_wrapped_draws():
    d = dist.Gamma(2.0, 1.0)
    assert d.has_rsample_(False) is d and d.has_rsample is False
    assert dist.Gamma(2.0, 1.0).has_rsample is True  # the class is untouched
    wrapped = dist.Normal(torch.zeros(3), 1.0).mask(torch.tensor([True, False, True]))
    wrapped.has_rsample_(False)
    assert wrapped.has_rsample is False and wrapped.base_dist.has_rsample is False


def test_has_rsample_setting_survives_the_expansion_by_plates():
    def guide():
        loc = engine.param("loc", torch.tensor(0.0))
        with engine.plate_stack("grid", (2, 3)):
            return engine.sample("x", dist.Normal(loc, 1.0).has_rsample_(False))

    engine.clear_param_store()
    x = guide()
    assert x.shape == (2, 3) and not x.requires_grad  # a score-function site's draws are data
    tr = poutine.trace(guide).get_trace()
    assert tr.nodes["x"]["fn"].has_rsample is False


def test_has_rsample_setter_refuses_what_cannot_work():
    with pytest.raises(ArgumentError, match="True or False"):
        dist.Normal(0.0, 1.0).has_rsample_(1)
    with pytest.raises(ArgumentError, match="no reparameterized sampler"):
        dist.Poisson(3.0).has_rsample_(True)


# ---- engine.distributions.torch and ExponentialFamily -----------------------------------------
def test_torch_module_holds_the_wrapped_classes():
    from engine.distributions import torch as wrapped

    assert wrapped.Normal is dist.Normal and wrapped.Dirichlet is dist.Dirichlet
    assert wrapped.ExponentialFamily is dist.ExponentialFamily
    assert issubclass(dist.ExponentialFamily, torch.distributions.ExponentialFamily)
    assert issubclass(dist.ExponentialFamily, dist.TorchDistributionMixin)


def test_user_exponential_family_gets_the_analytic_entropy_and_pyro_methods():
    class Rate(dist.ExponentialFamily):
        # Exponential(rate) as an exponential family: natural parameter -rate, log-normalizer
        # -log(-eta); torch derives the entropy from them.
        arg_constraints = {"rate": torch.distributions.constraints.positive}
        support = torch.distributions.constraints.positive

        def __init__(self, rate):
            self.rate = torch.as_tensor(rate)
            super().__init__(self.rate.shape, torch.Size())

        @property
        def _natural_params(self):
            return (-self.rate,)

        def _log_normalizer(self, eta):
            return -torch.log(-eta)

        @property
        def _mean_carrier_measure(self):
            return 0

    d = Rate(torch.tensor([0.5, 2.0]))
    # The entropy of Exponential(rate) is 1 - log(rate).
    assert torch.allclose(d.entropy(), 1 - torch.tensor([0.5, 2.0]).log())
    assert d.to_event(1).event_shape == (2,)


# ---- KL of an independent vector against a multivariate normal --------------------------------
def test_kl_diagonal_normal_against_mvn_matches_the_mvn_formula():
    torch.manual_seed(2)
    loc, scale = torch.randn(5, 3), torch.rand(5, 3) + 0.5
    factor = torch.randn(5, 3, 3)
    q = dist.MultivariateNormal(torch.randn(5, 3), factor @ factor.mT + torch.eye(3))
    p = dist.Normal(loc, scale).to_event(1)
    expected = torch.distributions.kl_divergence(
        dist.MultivariateNormal(loc, scale_tril=torch.diag_embed(scale)), q
    )
    assert torch.allclose(dist.kl_divergence(p, q), expected)


def test_kl_point_mass_vector_against_mvn_is_minus_log_density():
    v = torch.tensor([0.5, -1.0])
    q = dist.MultivariateNormal(torch.zeros(2), torch.eye(2))
    kl = dist.kl_divergence(dist.Delta(v).to_event(1), q)
    assert torch.allclose(kl, -q.log_prob(v))


def test_kl_independent_against_mvn_says_what_it_cannot_do():
    p = dist.Gamma(torch.ones(2), 1.0).to_event(1)
    with pytest.raises(NotImplementedError, match="Independent\\(Gamma, 1\\)"):
        dist.kl_divergence(p, dist.MultivariateNormal(torch.zeros(2), torch.eye(2)))


# ---- DirichletMultinomial ---------------------------------------------------------------------
def test_dirichlet_multinomial_mass_sums_to_one_and_matches_the_compound_definition():
    concentration = torch.tensor([0.7, 2.0, 1.3])
    d = dist.DirichletMultinomial(concentration, total_count=4)
    counts = torch.tensor(
        [[a, b, 4 - a - b] for a in range(5) for b in range(5 - a)], dtype=torch.float
    )
    assert torch.allclose(d.log_prob(counts).logsumexp(0), torch.tensor(0.0), atol=1e-5)
    # With concentration 1 everywhere every composition of n into K parts is equally likely.
    flat = dist.DirichletMultinomial(torch.ones(3), total_count=4)
    assert torch.allclose(flat.log_prob(counts).exp(), torch.full((15,), 1 / 15))
    sparse = dist.DirichletMultinomial(concentration, total_count=4, is_sparse=True)
    assert torch.allclose(sparse.log_prob(counts), d.log_prob(counts))


def test_dirichlet_multinomial_draws_match_mean_and_variance():
    torch.manual_seed(5)
    d = dist.DirichletMultinomial(
        torch.tensor([[1.0, 3.0, 0.5], [4.0, 4.0, 4.0]]), torch.tensor([6.0, 10.0])
    )
    x = d.sample((40000,))
    assert x.shape == (40000, 2, 3)
    assert torch.equal(x.sum(-1), torch.tensor([6.0, 10.0]).expand(40000, 2))
    # Sample means within 5 standard errors sqrt(var / n) of the closed form.
    se = (d.variance / 40000).sqrt()
    assert bool(((x.mean(0) - d.mean).abs() < 5 * se).all())
    assert d.expand((7, 2)).sample().shape == (7, 2, 3)


# ---- mixtures of diagonal normals -------------------------------------------------------------
def test_mixture_of_diag_normals_log_prob_is_the_weighted_sum_of_components():
    locs = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    scales = torch.tensor([[1.0, 0.5], [2.0, 1.5]])
    logits = torch.tensor([0.2, -0.4])
    x = torch.tensor([0.7, 0.1])
    weights = logits.softmax(-1)
    by_hand = sum(
        weights[k] * dist.Normal(locs[k], scales[k]).log_prob(x).sum().exp() for k in range(2)
    )
    d = dist.MixtureOfDiagNormals(locs, scales, logits)
    assert torch.allclose(d.log_prob(x), by_hand.log())
    shared = dist.MixtureOfDiagNormalsSharedCovariance(locs, scales[0], logits)
    by_hand = sum(
        weights[k] * dist.Normal(locs[k], scales[0]).log_prob(x).sum().exp() for k in range(2)
    )
    assert torch.allclose(shared.log_prob(x), by_hand.log())
    gsm = dist.GaussianScaleMixture(scales[0], logits, torch.tensor([1.0, 3.0]))
    by_hand = sum(
        weights[k] * dist.Normal(0.0, scales[0] * c).log_prob(x).sum().exp()
        for k, c in enumerate([1.0, 3.0])
    )
    assert torch.allclose(gsm.log_prob(x), by_hand.log())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["separate", "shared", "scale"])
def test_mixture_draws_give_unbiased_gradients_for_every_parameter(kind):
    # E|z|^2 = sum_k pi_k (|mu_k|^2 + |sigma_k|^2) has closed-form gradients in the means, the
    # scales and the logits; the pathwise gradient of the Monte Carlo average must match them.
    torch.manual_seed(11)
    locs = torch.tensor([[0.5, -1.0, 0.2], [1.5, 0.3, -0.7]], requires_grad=True)
    coord = torch.tensor([[1.0, 0.6, 1.3], [0.8, 1.1, 0.5]], requires_grad=True)
    shared = torch.tensor([0.9, 1.2, 0.7], requires_grad=True)
    component_scale = torch.tensor([1.0, 2.0], requires_grad=True)
    logits = torch.tensor([0.3, -0.5], requires_grad=True)
    if kind == "separate":
        params, means, scales = [locs, coord, logits], locs, coord
        make = lambda: dist.MixtureOfDiagNormals(locs, coord, logits)  # noqa: E731
    elif kind == "shared":
        params, means, scales = [locs, shared, logits], locs, shared.expand(2, 3)
        make = lambda: dist.MixtureOfDiagNormalsSharedCovariance(locs, shared, logits)  # noqa: E731
    else:
        params = [shared, logits, component_scale]
        means, scales = torch.zeros(2, 3), component_scale[:, None] * shared
        make = lambda: dist.GaussianScaleMixture(shared, logits, component_scale)  # noqa: E731
    exact = (logits.softmax(-1) * (means.pow(2) + scales.pow(2)).sum(-1)).sum()
    expected = torch.autograd.grad(exact, params)
    # 20 independent batches: their spread gives the standard error of the overall average.
    batches = [
        torch.autograd.grad(make().rsample((2000,)).pow(2).sum(-1).mean(), params)
        for _ in range(20)
    ]
    for i, want in enumerate(expected):
        estimates = torch.stack([b[i] for b in batches])
        se = estimates.std(0) / math.sqrt(len(batches))
        assert bool(((estimates.mean(0) - want).abs() <= 5 * se + 1e-6).all()), (
            i,
            estimates.mean(0),
            want,
            se,
        )


# ---- pickling ---------------------------------------------------------------------------------
_FLIPS = torch.tensor([1.0, 0.0, 1.0])


def _coin_model(flips=_FLIPS):
    bias = engine.sample("bias", dist.Beta(2.0, 2.0))
    with engine.plate("flips", len(flips)):
        engine.sample("flip", dist.Bernoulli(bias), obs=flips)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda m: poutine.block(m, hide=["bias"]),
        lambda m: poutine.block(m, expose=["flip"]),
        lambda m: poutine.condition(m, {"bias": torch.tensor(0.3)}),
        lambda m: poutine.replay(m, poutine.trace(m).get_trace()),
        lambda m: poutine.scale(m, 0.5),
    ],
    ids=["block-hide", "block-expose", "condition", "replay", "scale"],
)
def test_models_wrapped_by_handlers_pickle_and_run_the_same(wrap):
    wrapped = wrap(_coin_model)
    restored = pickle.loads(pickle.dumps(wrapped))
    assert restored.__name__ == "_coin_model"
    engine.set_rng_seed(4)
    expected = poutine.trace(wrapped).get_trace()
    engine.set_rng_seed(4)
    actual = poutine.trace(restored).get_trace()
    assert list(actual.nodes) == list(expected.nodes)
    assert torch.equal(actual.log_prob_sum(), expected.log_prob_sum())


def test_traces_and_the_new_distributions_pickle():
    trace = poutine.trace(_coin_model).get_trace()
    restored = pickle.loads(pickle.dumps(trace))
    assert torch.equal(restored.log_prob_sum(), trace.log_prob_sum())
    for d in [
        dist.DirichletMultinomial(torch.ones(3), 4),
        dist.MixtureOfDiagNormals(torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2)),
        dist.GaussianScaleMixture(torch.ones(3), torch.zeros(2), torch.ones(2)),
        dist.NanMaskedNormal(0.0, 1.0),
        dist.RelaxedBernoulliStraightThrough(torch.tensor(0.5), probs=torch.tensor(0.3)),
        dist.Normal(torch.zeros(2), 1.0).mask(torch.tensor([True, False])),
    ]:
        again = pickle.loads(pickle.dumps(d))
        assert type(again) is type(d) and again.batch_shape == d.batch_shape


# ---- KL with masks ------------------------------------------------------------------------------
def test_kl_with_one_masked_side_is_masked_and_fully_masked_is_zero():
    p = dist.Normal(torch.zeros(3), 1.0)
    q = dist.Normal(torch.ones(3), 2.0)
    mask = torch.tensor([True, False, True])
    full = dist.kl_divergence(p, q)
    assert torch.allclose(dist.kl_divergence(p.mask(mask), q), full * mask)
    assert torch.allclose(dist.kl_divergence(p, q.mask(mask)), full * mask)
    assert dist.kl_divergence(p.mask(False), q) == 0.0


def test_score_parts_of_a_fully_masked_distribution_keep_the_base_layout():
    parts = dist.Normal(torch.zeros(2), 1.0).mask(False).score_parts(torch.ones(2))
    assert torch.equal(parts.log_prob, torch.zeros(2))
    assert torch.equal(parts.entropy_term, torch.zeros(2)) and parts.score_function == 0


# ---- deep_to, detach, weakmethod --------------------------------------------------------------
def test_deep_to_converts_tensors_everywhere_and_keeps_the_graph():
    from engine.distributions.util import deep_to

    loc = torch.tensor([0.5, 1.5], requires_grad=True)

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(2))
            self.prior = dist.Normal(loc, 1.0)  # a plain attribute: nn.Module.to skips it

    moved = deep_to(
        {"d": dist.Normal(loc, 2.0).to_event(1), "m": Holder(), "n": [3, "x"]}, torch.float64
    )
    assert moved["d"].base_dist.loc.dtype == torch.float64
    assert moved["m"].weight.dtype == torch.float64 and moved["m"].prior.loc.dtype == torch.float64
    assert moved["n"] == [3, "x"]
    (grad,) = torch.autograd.grad(moved["d"].log_prob(torch.zeros(2, dtype=torch.float64)), loc)
    assert grad.dtype == torch.float32 and torch.allclose(grad, -loc.detach() / 4)


def test_detach_cuts_the_graph_and_weakmethod_does_not_keep_the_instance_alive():
    import weakref

    from engine.distributions.util import detach, weakmethod

    loc = torch.zeros(3, requires_grad=True)
    d = detach(dist.Normal(loc, 1.0).expand((2, 3)))
    assert not d.log_prob(torch.ones(3)).requires_grad and d.batch_shape == (2, 3)

    class Listener:
        def __init__(self):
            self.heard, self.callback = [], self.hear

        @weakmethod
        def hear(self, x):
            self.heard.append(x)
            return len(self.heard)

    listener = Listener()
    assert listener.callback("a") == 1 and listener.heard == ["a"]
    callback, ref = listener.callback, weakref.ref(listener)
    del listener
    assert ref() is None
    with pytest.raises(ReferenceError):
        callback("b")


# ---- infer_shapes and Poisson(is_sparse) ------------------------------------------------------
@pytest.mark.parametrize(
    "cls,arg_shapes,expected",
    [
        (dist.Normal, {"loc": (4, 1), "scale": (3,)}, ((4, 3), ())),
        (dist.MultivariateNormal, {"loc": (2, 3), "covariance_matrix": (3, 3)}, ((2,), (3,))),
        (dist.OneHotCategorical, {"probs": (5, 4)}, ((5,), (4,))),
        (dist.Multinomial, {"total_count": (), "probs": (2, 6)}, ((2,), (6,))),
        (dist.DirichletMultinomial, {"concentration": (7, 3), "total_count": (7,)}, ((7,), (3,))),
    ],
)
def test_infer_shapes_agrees_with_the_built_distribution(cls, arg_shapes, expected):
    assert cls.infer_shapes(**arg_shapes) == tuple(torch.Size(s) for s in expected)


def test_sparse_poisson_scores_like_the_dense_one_and_expands():
    rate = torch.tensor([[0.3, 2.0, 5.0]])
    counts = torch.tensor([[0.0, 3.0, 0.0], [1.0, 0.0, 7.0]])
    sparse = dist.Poisson(rate, is_sparse=True)
    assert torch.allclose(sparse.log_prob(counts), dist.Poisson(rate).log_prob(counts))
    assert sparse.expand((2, 3)).is_sparse and sparse.expand((2, 3)).batch_shape == (2, 3)


def test_a_folded_subclass_with_its_own_init_still_expands():
    class HalfShifted(dist.FoldedDistribution):
        def __init__(self, loc):
            super().__init__(dist.Normal(loc, 1.0))

    d = HalfShifted(torch.tensor([0.5, 1.0])).expand_by((3,))
    assert d.batch_shape == (3, 2) and d.sample().shape == (3, 2)
    assert bool((d.sample((4,)) >= 0).all())
