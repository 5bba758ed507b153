"""Distributions and helpers Pyro users rely on (issue 17): the NaN-masked likelihoods, the
straight-through relaxed distributions, ``has_rsample_``, ``engine.distributions.torch`` with
``ExponentialFamily``, and the KL of an independent vector against a multivariate normal."""

import math

import pytest
import torch

import engine.distributions as dist
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
