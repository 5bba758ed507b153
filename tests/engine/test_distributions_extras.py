"""The distributions the engine adds to torch's: each checked against an independent computation.

Statistical checks draw with a fixed seed (conftest) and allow 5 Monte Carlo standard errors.
"""

import math

import pytest
import torch

import engine.distributions as dist
from engine.distributions import TorchDistributionMixin, constraints
from engine.errors import DistributionArgumentError, ShapeError

Z = 5.0  # standard errors allowed in Monte Carlo checks


def _within_mc_error(draws: torch.Tensor, mean: float, sd: float) -> bool:
    return abs(float(draws.double().mean()) - mean) <= Z * sd / math.sqrt(draws.numel())


def _nb_log_pmf(k: int, r: float, p: float) -> float:
    """Negative binomial: successes (prob p) before r failures."""
    return (
        math.lgamma(k + r)
        - math.lgamma(r)
        - math.lgamma(k + 1)
        + k * math.log(p)
        + r * math.log1p(-p)
    )


# ---------------------------------------------------------------- Delta


def test_delta_shapes_log_density_and_draws():
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    d = dist.Delta(v, log_density=torch.tensor([0.5, -1.0]), event_dim=1)
    assert d.batch_shape == (2,) and d.event_shape == (2,)
    assert torch.equal(d.log_prob(v), torch.tensor([0.5, -1.0]))
    off = v.clone()
    off[1, 0] = 0.0
    assert d.log_prob(off)[1] == -math.inf and d.log_prob(off)[0] == 0.5
    assert d.sample((3,)).shape == (3, 2, 2)
    assert torch.equal(d.mean, v) and torch.equal(d.variance, torch.zeros(2, 2))
    assert d.support.event_dim == 1


def test_delta_draws_are_differentiable_and_expand_keeps_the_class():
    v = torch.tensor(2.0, requires_grad=True)
    d = dist.Delta(v)
    assert d.has_rsample and d().requires_grad
    expanded = d.expand((3,))
    assert isinstance(expanded, dist.Delta) and expanded.batch_shape == (3,)
    assert torch.equal(expanded.log_prob(torch.full((3,), 2.0)), torch.zeros(3))
    assert dist.Delta(torch.tensor(3)).log_prob(torch.tensor(3)).dtype == torch.get_default_dtype()


def test_delta_rejects_bad_shapes():
    with pytest.raises(ShapeError, match="event_dim"):
        dist.Delta(torch.zeros(2), event_dim=2)
    with pytest.raises(ShapeError, match="log_density"):
        dist.Delta(torch.zeros(2), log_density=torch.zeros(3))


# ---------------------------------------------------------------- Unit


def test_unit_has_an_empty_value_and_scores_its_log_factor():
    u = dist.Unit(torch.tensor([-1.0, -2.0]))
    value = u.sample((4,))
    assert value.shape == (4, 2, 0) and value.numel() == 0
    assert torch.equal(u.log_prob(value), torch.tensor([-1.0, -2.0]).expand(4, 2))
    expanded = u.expand((3, 2))
    assert isinstance(expanded, dist.Unit) and expanded.log_prob(expanded()).shape == (3, 2)
    assert dist.Unit(0.0, has_rsample=True).expand((2,)).has_rsample
    assert not dist.Unit(0.0).has_rsample


# ---------------------------------------------------------------- ImproperUniform


def test_improper_uniform_is_flat_and_refuses_to_sample():
    d = dist.ImproperUniform(constraints.positive, (3,), (2,))
    assert d.batch_shape == (3,) and d.event_shape == (2,) and d.support is constraints.positive
    assert torch.equal(d.log_prob(torch.ones(5, 3, 2)), torch.zeros(5, 3))
    expanded = d.expand((4, 3))
    assert isinstance(expanded, dist.ImproperUniform) and expanded.batch_shape == (4, 3)
    with pytest.raises(NotImplementedError, match=r"cannot be sampled.*init_to_uniform"):
        d.sample()


# ---------------------------------------------------------------- Empirical


def test_empirical_weighted_mean_variance_and_log_prob():
    samples = torch.tensor([0.0, 1.0, 1.0, 4.0])
    log_weights = torch.tensor([1.0, 2.0, 3.0, 4.0]).log()
    d = dist.Empirical(samples, log_weights)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0]) / 10
    mean = float((w * samples).sum())
    assert math.isclose(float(d.mean), mean, rel_tol=1e-6)
    assert math.isclose(float(d.variance), float((w * (samples - mean) ** 2).sum()), rel_tol=1e-6)
    # Two samples equal 1.0: their weights add up.
    assert math.isclose(float(d.log_prob(torch.tensor(1.0)).exp()), 0.5, rel_tol=1e-6)
    assert d.log_prob(torch.tensor(2.0)) == -math.inf
    assert torch.allclose(d.log_prob(torch.tensor([0.0, 4.0])).exp(), torch.tensor([0.1, 0.4]))
    assert d.enumerate_support().shape == (4,) and d.has_enumerate_support


def test_empirical_samples_by_weight():
    samples = torch.tensor([0.0, 1.0, 2.0])
    probs = torch.tensor([0.2, 0.3, 0.5])
    draws = dist.Empirical(samples, probs.log() + 7.0).sample((20000,))
    assert draws.shape == (20000,)
    for value, p in zip(samples.tolist(), probs.tolist(), strict=True):
        hits = (draws == value).double()
        assert _within_mc_error(hits, p, math.sqrt(p * (1 - p)))


def test_empirical_with_batch_and_event_dims():
    samples = torch.arange(2 * 3 * 4, dtype=torch.float).reshape(2, 3, 4)  # batch 2, 3 samples
    log_weights = torch.zeros(2, 3)
    d = dist.Empirical(samples, log_weights)
    assert d.batch_shape == (2,) and d.event_shape == (4,)
    draw = d.sample((5,))
    assert draw.shape == (5, 2, 4)
    # Each draw must be one of its own batch entry's samples.
    for b in range(2):
        assert all(any(torch.equal(row, s) for s in samples[b]) for row in draw[:, b])
    assert torch.allclose(d.log_prob(samples[:, 1]), torch.full((2,), -math.log(3)))
    assert torch.allclose(d.mean, samples.mean(1))
    assert d.enumerate_support().shape == (3, 2, 4)
    expanded = d.expand((6, 2))
    assert isinstance(expanded, dist.Empirical) and expanded.sample().shape == (6, 2, 4)
    with pytest.raises(ShapeError, match="log_weights"):
        dist.Empirical(samples, torch.zeros(3))


# ---------------------------------------------------------------- MaskedMixture


def test_masked_mixture_picks_components_per_entry():
    mask = torch.tensor([False, True, True])
    c0, c1 = dist.Normal(0.0, 1.0), dist.Normal(torch.tensor([10.0, 20.0, 30.0]), 0.1)
    d = dist.MaskedMixture(mask, c0, c1)
    assert d.batch_shape == (3,)
    x = torch.tensor([0.5, 19.0, 31.0])
    expected = torch.stack([c0.log_prob(x[0]), c1.log_prob(x)[1], c1.log_prob(x)[2]])
    assert torch.allclose(d.log_prob(x), expected)
    draws = d.sample((200,))
    assert (draws[:, 0].abs() < 6).all() and (draws[:, 1:] > 15).all()
    assert torch.equal(d.mean, torch.tensor([0.0, 20.0, 30.0]))
    assert d.has_rsample and d.rsample().shape == (3,)
    expanded = d.expand((2, 3))
    assert isinstance(expanded, dist.MaskedMixture) and expanded.sample().shape == (2, 3)


def test_masked_mixture_scores_values_from_either_support_without_touching_inputs():
    mask = torch.tensor([False, True])
    poisson = dist.Poisson(torch.ones(2))
    normal = dist.Normal(torch.zeros(2), 1.0)
    d = dist.MaskedMixture(mask, poisson, normal)
    # -0.5 is outside Poisson's support but scored by the Normal, where the mask says so.
    assert torch.isfinite(d.log_prob(torch.tensor([1.0, -0.5]))).all()
    assert poisson._validate_args and normal._validate_args
    assert bool(d.support.check(torch.tensor([1.0, -0.5])).all())
    assert not bool(d.support.check(torch.tensor([-0.5, -0.5])).all())


def test_masked_mixture_argument_errors():
    with pytest.raises(DistributionArgumentError, match=r"torch\.bool"):
        dist.MaskedMixture(torch.tensor([0, 1]), dist.Normal(0.0, 1.0), dist.Normal(1.0, 1.0))
    with pytest.raises(ShapeError, match="event shapes differ"):
        dist.MaskedMixture(
            torch.tensor([True]), dist.Normal(0.0, 1.0), dist.Dirichlet(torch.ones(2))
        )


# ---------------------------------------------------------------- zero-inflated counts


def test_zero_inflated_poisson_pmf_matches_formula_and_sums_to_one():
    rate, gate = 2.5, 0.3
    d = dist.ZeroInflatedPoisson(torch.tensor(rate), gate=torch.tensor(gate))
    k = torch.arange(60.0)
    pmf = d.log_prob(k).exp()
    assert math.isclose(float(pmf.sum()), 1.0, rel_tol=1e-5)
    for i in (0, 1, 4):
        poisson = math.exp(i * math.log(rate) - rate - math.lgamma(i + 1))
        expected = (1 - gate) * poisson + (gate if i == 0 else 0.0)
        assert math.isclose(float(pmf[i]), expected, rel_tol=1e-5)
    logits = dist.ZeroInflatedPoisson(rate, gate_logits=math.log(gate / (1 - gate)))
    assert torch.allclose(logits.log_prob(k), d.log_prob(k), atol=1e-5)


def test_zero_inflated_poisson_moments_and_draws():
    rate, gate = 3.0, 0.4
    d = dist.ZeroInflatedPoisson(torch.full((2,), rate), gate=gate)
    k = torch.arange(80.0).unsqueeze(-1)
    pmf = d.log_prob(k).exp()
    assert torch.allclose(d.mean, (pmf * k).sum(0), rtol=1e-4)
    assert torch.allclose(d.variance, (pmf * (k - d.mean) ** 2).sum(0), rtol=1e-4)
    draws = d.sample((20000,))
    assert draws.shape == (20000, 2)
    assert _within_mc_error(draws, float(d.mean[0]), math.sqrt(float(d.variance[0])))
    zero_rate = float(pmf[0, 0])
    assert _within_mc_error(
        (draws == 0).double(), zero_rate, math.sqrt(zero_rate * (1 - zero_rate))
    )
    expanded = d.expand((3, 2))
    assert isinstance(expanded, dist.ZeroInflatedPoisson) and expanded.sample().shape == (3, 2)
    assert expanded.support is constraints.nonnegative_integer


def test_zero_inflated_negative_binomial_pmf_matches_formula_and_sums_to_one():
    total_count, probs, gate = 3.0, 0.4, 0.25
    d = dist.ZeroInflatedNegativeBinomial(total_count, probs=probs, gate=gate)
    k = torch.arange(120.0)
    pmf = d.log_prob(k).exp()
    assert math.isclose(float(pmf.sum()), 1.0, rel_tol=1e-5)
    for i in (0, 2, 7):
        nb = math.exp(_nb_log_pmf(i, total_count, probs))
        expected = (1 - gate) * nb + (gate if i == 0 else 0.0)
        assert math.isclose(float(pmf[i]), expected, rel_tol=1e-4)
    logit = math.log(probs / (1 - probs))
    by_logits = dist.ZeroInflatedNegativeBinomial(total_count, logits=logit, gate_logits=-1.0986)
    assert torch.allclose(by_logits.log_prob(k[:10]), d.log_prob(k[:10]), atol=1e-3)
    expanded = d.expand((4,))
    assert isinstance(expanded, dist.ZeroInflatedNegativeBinomial)
    assert expanded.sample((2,)).shape == (2, 4)
    assert torch.allclose(expanded.mean, torch.full((4,), 0.75 * 3.0 * 0.4 / 0.6))


def test_zero_inflated_distribution_wraps_any_univariate_base():
    d = dist.ZeroInflatedDistribution(dist.Binomial(4, torch.full((2,), 0.5)), gate=0.5)
    assert torch.allclose(d.log_prob(torch.arange(5.0).unsqueeze(-1)).exp().sum(0), torch.ones(2))
    with pytest.raises(ShapeError, match="univariate"):
        dist.ZeroInflatedDistribution(dist.Dirichlet(torch.ones(3)), gate=0.5)


# ---------------------------------------------------------------- compound counts


def _beta_binomial_log_pmf(k: int, a: float, b: float, n: int) -> float:
    def log_beta(x, y):
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return log_choose + log_beta(k + a, n - k + b) - log_beta(a, b)


def test_beta_binomial_pmf_matches_formula_and_sums_to_one():
    a, b, n = 2.0, 3.5, 7
    d = dist.BetaBinomial(torch.tensor([a, 0.5]), torch.tensor([b, 0.5]), total_count=n)
    support = d.enumerate_support()
    assert support.shape == (n + 1, 2)
    assert d.enumerate_support(expand=False).shape == (n + 1, 1)
    pmf = d.log_prob(support).exp()
    assert torch.allclose(pmf.sum(0), torch.ones(2), atol=1e-5)
    for k in range(n + 1):
        assert math.isclose(
            float(pmf[k, 0]), math.exp(_beta_binomial_log_pmf(k, a, b, n)), rel_tol=1e-4
        )
    assert torch.allclose(d.mean, (pmf * support).sum(0), rtol=1e-4)
    assert torch.allclose(d.variance, (pmf * (support - d.mean) ** 2).sum(0), rtol=1e-4)


def test_beta_binomial_draws_and_expand():
    d = dist.BetaBinomial(2.0, 3.0, total_count=10)
    draws = d.sample((20000,))
    assert ((draws >= 0) & (draws <= 10) & (draws == draws.round())).all()
    assert _within_mc_error(draws, float(d.mean), math.sqrt(float(d.variance)))
    expanded = d.expand((3,))
    assert isinstance(expanded, dist.BetaBinomial) and expanded.sample().shape == (3,)
    assert isinstance(expanded, TorchDistributionMixin)
    with pytest.raises(NotImplementedError, match="same total_count"):
        dist.BetaBinomial(1.0, 1.0, torch.tensor([2.0, 3.0])).enumerate_support()


def test_gamma_poisson_is_the_negative_binomial():
    concentration, rate = 2.5, 0.7
    d = dist.GammaPoisson(concentration, rate)
    k = torch.arange(200.0)
    pmf = d.log_prob(k).exp()
    assert math.isclose(float(pmf.sum()), 1.0, rel_tol=1e-5)
    p = 1 / (1 + rate)
    for i in (0, 3, 10):
        assert math.isclose(float(pmf[i]), math.exp(_nb_log_pmf(i, concentration, p)), rel_tol=1e-4)
    assert math.isclose(float(d.mean), float((pmf * k).sum()), rel_tol=1e-4)
    assert math.isclose(float(d.variance), float((pmf * (k - d.mean) ** 2).sum()), rel_tol=1e-4)


def test_gamma_poisson_draws_match_its_mass_function():
    d = dist.GammaPoisson(torch.full((2,), 3.0), torch.tensor([1.0, 0.5]))
    draws = d.sample((20000,))
    assert draws.shape == (20000, 2)
    for j in range(2):
        column = draws[:, j]
        assert _within_mc_error(column, float(d.mean[j]), math.sqrt(float(d.variance[j])))
        p0 = float(d.log_prob(torch.tensor(0.0)).exp()[j])
        assert _within_mc_error((column == 0).double(), p0, math.sqrt(p0 * (1 - p0)))
    expanded = d.expand((4, 2))
    assert isinstance(expanded, dist.GammaPoisson) and expanded.sample().shape == (4, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_extras_follow_the_device_of_their_parameters():
    cuda = torch.device("cuda")
    ones = torch.ones(3, device=cuda)
    made = [
        dist.Delta(ones),
        dist.Unit(ones),
        dist.Empirical(torch.randn(3, 4, device=cuda), torch.zeros(3, 4, device=cuda)),
        dist.MaskedMixture(ones > 0, dist.Normal(0 * ones, 1.0), dist.Normal(ones, 1.0)),
        dist.ZeroInflatedPoisson(ones, gate=0.5 * ones),
        dist.ZeroInflatedNegativeBinomial(ones, probs=0.5 * ones, gate=0.5 * ones),
        dist.BetaBinomial(ones, ones, 4 * ones),
        dist.GammaPoisson(ones, ones),
        dist.Normal(0 * ones, 1.0).mask(ones > 0).expand((2, 3)),
    ]
    for d in made:
        value = d.sample((2,))
        assert value.device.type == "cuda"
        assert d.log_prob(value).device.type == "cuda"
    flat = dist.ImproperUniform(constraints.real, (3,), ())
    assert flat.log_prob(ones).device.type == "cuda"
    assert dist.Normal(0 * ones, 1.0).mask(False).log_prob(ones).device.type == "cuda"
    assert dist.BetaBinomial(ones, ones, 4).enumerate_support().device.type == "cuda"


# ---------------------------------------------------------------- FoldedDistribution


def _folded_normal_mean(loc: float, scale: float) -> float:
    """E|x| for x ~ Normal(loc, scale), in closed form."""
    return scale * math.sqrt(2 / math.pi) * math.exp(-(loc**2) / (2 * scale**2)) + loc * (
        1 - 2 * (0.5 * (1 + math.erf(-loc / (scale * math.sqrt(2)))))
    )


def test_folded_normal_density_adds_both_preimages():
    base = dist.Normal(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.5]))
    folded = dist.FoldedDistribution(base)
    assert folded.batch_shape == (2,) and folded.event_shape == ()
    y = torch.tensor([[0.3, 2.5], [1.7, 0.1]])
    by_hand = torch.log(base.log_prob(y).exp() + base.log_prob(-y).exp())
    assert torch.allclose(folded.log_prob(y), by_hand)
    # A density on (0, inf): the trapezoid rule over a fine grid integrates it to one.
    grid = torch.linspace(1e-12, 15.0, 30001, dtype=torch.float64)  # the support excludes 0
    wide = dist.FoldedDistribution(dist.Normal(torch.tensor(1.0).double(), 1.5))
    assert float(torch.trapezoid(wide.log_prob(grid).exp(), grid)) == pytest.approx(1.0, abs=1e-6)
    # Folding at the centre of a symmetric distribution is the half distribution.
    assert torch.allclose(
        dist.FoldedDistribution(dist.Normal(0.0, 2.0)).log_prob(y), dist.HalfNormal(2.0).log_prob(y)
    )


def test_folded_normal_draws_are_absolute_values_with_the_closed_form_mean():
    folded = dist.FoldedDistribution(dist.Normal(1.0, 1.5))
    draws = folded.sample((20000,))
    assert (draws >= 0).all()
    # sd of |x| is below the base sd 1.5: allowing 5 standard errors of 1.5 / sqrt(n) is safe.
    assert _within_mc_error(draws, _folded_normal_mean(1.0, 1.5), 1.5)
    loc = torch.tensor(0.7, requires_grad=True)
    reparameterised = dist.FoldedDistribution(dist.Normal(loc, 1.0))
    assert reparameterised.has_rsample
    reparameterised.rsample((10,)).sum().backward()
    assert loc.grad is not None and torch.isfinite(loc.grad)


def test_folded_distribution_expands_validates_and_refuses_a_multivariate_base():
    folded = dist.FoldedDistribution(dist.Normal(0.0, 1.0))
    expanded = folded.expand((4,))
    assert isinstance(expanded, dist.FoldedDistribution) and expanded.sample().shape == (4,)
    assert expanded.log_prob(torch.ones(4)).shape == (4,)
    assert folded.support is constraints.positive
    with dist.validation_enabled(), pytest.raises(ValueError, match="support"):
        dist.FoldedDistribution(dist.Normal(0.0, 1.0)).log_prob(torch.tensor(-1.0))
    with pytest.raises(ShapeError, match="univariate"):
        dist.FoldedDistribution(dist.MultivariateNormal(torch.zeros(2), torch.eye(2)))
