"""The wrapped torch distributions and Pyro's mixin methods: expand, to_event, mask, shape, KL."""

import inspect
import math
import pickle

import pytest
import torch

import engine.distributions as dist
from engine.distributions import (
    ExpandedDistribution,
    MaskedDistribution,
    TorchDistribution,
    TorchDistributionMixin,
    constraints,
)
from engine.distributions.torch_wrappers import __all__ as WRAPPED
from engine.errors import DistributionArgumentError, ShapeError

B = 2


def _ones(*shape):
    return torch.ones(*shape)


# One small instance of every wrapped class, with batch_shape (B,).
FACTORIES = {
    "Bernoulli": lambda: dist.Bernoulli(0.3 * _ones(B)),
    "Beta": lambda: dist.Beta(2 * _ones(B), 3 * _ones(B)),
    "Binomial": lambda: dist.Binomial(10, 0.3 * _ones(B)),
    "Categorical": lambda: dist.Categorical(_ones(B, 3)),
    "Cauchy": lambda: dist.Cauchy(torch.zeros(B), _ones(B)),
    "Chi2": lambda: dist.Chi2(3 * _ones(B)),
    "ContinuousBernoulli": lambda: dist.ContinuousBernoulli(0.3 * _ones(B)),
    "Dirichlet": lambda: dist.Dirichlet(_ones(B, 3)),
    "Exponential": lambda: dist.Exponential(_ones(B)),
    "FisherSnedecor": lambda: dist.FisherSnedecor(3 * _ones(B), 4 * _ones(B)),
    "Gamma": lambda: dist.Gamma(2 * _ones(B), _ones(B)),
    "GeneralizedPareto": lambda: dist.GeneralizedPareto(torch.zeros(B), _ones(B), 0.1 * _ones(B)),
    "Geometric": lambda: dist.Geometric(0.3 * _ones(B)),
    "Gumbel": lambda: dist.Gumbel(torch.zeros(B), _ones(B)),
    "HalfCauchy": lambda: dist.HalfCauchy(_ones(B)),
    "HalfNormal": lambda: dist.HalfNormal(_ones(B)),
    "Independent": lambda: dist.Independent(dist.Normal(torch.zeros(B, 3), 1.0), 1),
    "InverseGamma": lambda: dist.InverseGamma(2 * _ones(B), _ones(B)),
    "Kumaraswamy": lambda: dist.Kumaraswamy(2 * _ones(B), 3 * _ones(B)),
    "LKJCholesky": lambda: dist.LKJCholesky(3, 2 * _ones(B)),
    "Laplace": lambda: dist.Laplace(torch.zeros(B), _ones(B)),
    "LogNormal": lambda: dist.LogNormal(torch.zeros(B), _ones(B)),
    "LogisticNormal": lambda: dist.LogisticNormal(torch.zeros(B, 2), _ones(B, 2)),
    "LowRankMultivariateNormal": lambda: dist.LowRankMultivariateNormal(
        torch.zeros(B, 3), _ones(B, 3, 1), _ones(B, 3)
    ),
    "MixtureSameFamily": lambda: dist.MixtureSameFamily(
        dist.Categorical(_ones(B, 4)), dist.Normal(torch.zeros(B, 4), 1.0)
    ),
    "Multinomial": lambda: dist.Multinomial(5, _ones(B, 3)),
    "MultivariateNormal": lambda: dist.MultivariateNormal(
        torch.zeros(B, 3), torch.eye(3).expand(B, 3, 3)
    ),
    "NegativeBinomial": lambda: dist.NegativeBinomial(3 * _ones(B), 0.4 * _ones(B)),
    "Normal": lambda: dist.Normal(torch.zeros(B), _ones(B)),
    "OneHotCategorical": lambda: dist.OneHotCategorical(_ones(B, 3)),
    "OneHotCategoricalStraightThrough": lambda: dist.OneHotCategoricalStraightThrough(_ones(B, 3)),
    "Pareto": lambda: dist.Pareto(_ones(B), 2 * _ones(B)),
    "Poisson": lambda: dist.Poisson(2 * _ones(B)),
    "RelaxedBernoulli": lambda: dist.RelaxedBernoulli(torch.tensor(0.5), 0.3 * _ones(B)),
    "RelaxedOneHotCategorical": lambda: dist.RelaxedOneHotCategorical(
        torch.tensor(0.5), _ones(B, 3)
    ),
    "StudentT": lambda: dist.StudentT(3 * _ones(B), torch.zeros(B), _ones(B)),
    "TransformedDistribution": lambda: dist.TransformedDistribution(
        dist.Normal(torch.zeros(B), _ones(B)), [dist.transforms.ExpTransform()]
    ),
    "Uniform": lambda: dist.Uniform(torch.zeros(B), _ones(B)),
    "VonMises": lambda: dist.VonMises(torch.zeros(B), _ones(B)),
    "Weibull": lambda: dist.Weibull(_ones(B), 2 * _ones(B)),
    "Wishart": lambda: dist.Wishart(10 * _ones(B), torch.eye(3).expand(B, 3, 3)),
}


def _concrete_torch_classes():
    abstract = (torch.distributions.Distribution, torch.distributions.ExponentialFamily)
    for name in torch.distributions.__all__:
        cls = getattr(torch.distributions, name)
        is_class = isinstance(cls, type)
        if is_class and issubclass(cls, torch.distributions.Distribution) and cls not in abstract:
            yield name, cls


@pytest.mark.parametrize("name,torch_cls", list(_concrete_torch_classes()))
def test_every_torch_distribution_is_exported_with_the_mixin(name, torch_cls):
    wrapped = getattr(dist, name)
    assert issubclass(wrapped, torch_cls)
    assert issubclass(wrapped, TorchDistributionMixin)
    assert name in dist.__all__
    assert wrapped.__module__ == "engine.distributions.torch_wrappers"


def test_every_wrapped_class_has_a_factory_here():
    assert set(FACTORIES) == set(WRAPPED)


# torch's batched Wishart sampler flags its own draws as singular; that is torch's to fix.
@pytest.mark.filterwarnings("ignore:Singular sample detected")
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_expand_to_event_and_mask_work_on_every_wrapped_class(name):
    d = FACTORIES[name]()
    assert type(d) is getattr(dist, name)
    expanded = d.expand((5, B))
    assert type(expanded) is type(d)
    assert expanded.batch_shape == (5, B) and expanded.event_shape == d.event_shape
    x = expanded.sample((4,))
    assert x.shape == (4, 5, B, *d.event_shape)
    assert expanded.log_prob(x).shape == (4, 5, B)
    assert expanded.expand_by((3,)).batch_shape == (3, 5, B)
    mask = torch.tensor([True, False, True, True, False])
    masked = expanded.to_event(1).mask(mask)
    assert masked.batch_shape == (5,)
    log_prob = masked.log_prob(x)
    assert log_prob.shape == (4, 5)
    assert (log_prob[:, ~mask] == 0).all()
    assert torch.allclose(log_prob[:, mask], expanded.log_prob(x).sum(-1)[:, mask])


def test_python_numbers_are_accepted_as_parameters():
    assert dist.Normal(0.0, 1.0).batch_shape == ()
    assert dist.Bernoulli(0.5).batch_shape == ()
    assert dist.Poisson(3).batch_shape == ()
    assert dist.Gamma(2, 1.0).batch_shape == ()
    assert dist.Beta(1, 1).sample().shape == ()


def test_calling_draws_reparameterized_when_possible():
    loc = torch.tensor(0.0, requires_grad=True)
    draw = dist.Normal(loc, 1.0)((3,))
    assert draw.shape == (3,) and draw.requires_grad
    coin = dist.Bernoulli(torch.tensor(0.5, requires_grad=True))()
    assert coin.shape == () and not coin.requires_grad


def test_shape_is_sample_plus_batch_plus_event():
    d = dist.Dirichlet(torch.ones(4, 3))
    assert d.shape() == (4, 3)
    assert d.shape((2, 5)) == (2, 5, 4, 3)
    assert d.event_dim == 1 and dist.Normal(0.0, 1.0).event_dim == 0


def test_signature_and_docs_are_torchs():
    params = list(inspect.signature(dist.Normal).parameters)
    assert params == ["loc", "scale", "validate_args"]
    assert "normal" in dist.Normal.__doc__.lower()
    assert dist.Normal.__init__.__wrapped__ is torch.distributions.Normal.__init__


def test_wrapped_instances_pickle_by_name():
    d = pickle.loads(pickle.dumps(dist.Normal(torch.zeros(2), 1.0)))
    assert type(d) is dist.Normal and d.batch_shape == (2,)


@pytest.mark.parametrize(
    "make",
    [
        lambda: dist.Normal(torch.zeros(3), 1.0),
        lambda: dist.Bernoulli(torch.full((3,), 0.5)),
        lambda: dist.Categorical(torch.ones(3, 4)),
        lambda: dist.Dirichlet(torch.ones(3, 4)),
        lambda: dist.MultivariateNormal(torch.zeros(3, 2), torch.eye(2)),
        lambda: dist.Gamma(torch.ones(3), 1.0),
        lambda: dist.Normal(torch.zeros(3, 2), 1.0).to_event(1),
        lambda: dist.LogNormal(torch.zeros(3), 1.0),
    ],
)
def test_expand_and_expand_by_keep_the_class(make):
    d = make()
    assert isinstance(d.expand((4, 3)), type(d))
    assert d.expand((4, 3)).batch_shape == (4, 3)
    assert d.expand_by((5,)).batch_shape == (5, 3)
    assert d.expand((4, 3)).to_event(1).mask(True).batch_shape == (4,)


def test_to_event_none_zero_merge_and_negative():
    d = dist.Normal(torch.zeros(2, 3, 4), 1.0)
    everything = d.to_event()
    assert everything.batch_shape == () and everything.event_shape == (2, 3, 4)
    assert d.to_event(0) is d
    one = d.to_event(1)
    assert one.to_event(0) is one
    merged = one.to_event(1)
    assert isinstance(merged, dist.Independent) and type(merged.base_dist) is dist.Normal
    assert merged.reinterpreted_batch_ndims == 2 and merged.event_shape == (3, 4)
    back = merged.to_event(-1)
    assert back.batch_shape == (2, 3) and back.event_shape == (4,)
    assert merged.to_event(-2) is d
    with pytest.raises(ShapeError):
        merged.to_event(-3)
    with pytest.raises(ShapeError):
        d.to_event(-1)
    with pytest.raises(ShapeError, match="at most 3 batch dim"):
        d.to_event(4)


def test_mask_zeroes_log_prob_and_keeps_draws():
    d = dist.Normal(torch.zeros(3), 1.0)
    mask = torch.tensor([True, False, True])
    masked = d.mask(mask)
    assert isinstance(masked, MaskedDistribution)
    value = torch.tensor([0.5, 1.0, -2.0])
    expected = torch.where(mask, d.log_prob(value), torch.tensor(0.0))
    assert torch.equal(masked.log_prob(value), expected)
    torch.manual_seed(1)
    draws = masked.sample((2,))
    torch.manual_seed(1)
    assert torch.equal(draws, d.sample((2,)))
    assert d.mask(True) is d
    assert masked.has_rsample and masked.support is d.support


def test_mask_broadcasts_and_chains_with_expand_and_to_event():
    d = dist.Normal(torch.zeros(3), 1.0)
    masked = d.mask(torch.tensor([[True], [False]]))
    assert masked.batch_shape == (2, 3)
    chained = masked.expand((4, 2, 3)).to_event(2)
    assert chained.batch_shape == (4,) and chained.event_shape == (2, 3)
    value = torch.zeros(4, 2, 3)
    assert torch.allclose(chained.log_prob(value), d.log_prob(torch.zeros(3)).sum().expand(4))
    twice = d.mask(torch.tensor([True, True, False])).mask(torch.tensor([False, True, True]))
    assert torch.equal(twice.log_prob(torch.zeros(3)) != 0, torch.tensor([False, True, False]))


def test_mask_false_ignores_the_value_entirely():
    d = dist.Bernoulli(torch.full((3,), 0.5)).mask(False)
    assert torch.equal(d.log_prob(torch.full((3,), 7.0)), torch.zeros(3))
    assert d.mask(torch.tensor([True, True, True])).log_prob(torch.zeros(3)).abs().sum() == 0


def test_mask_rejects_non_boolean_and_misshapen_masks():
    d = dist.Normal(torch.zeros(3), 1.0)
    with pytest.raises(DistributionArgumentError, match="bool"):
        d.mask(torch.ones(3))
    with pytest.raises(DistributionArgumentError, match="bool"):
        d.mask(1)
    with pytest.raises(ShapeError, match=r"\(4,\)"):
        d.mask(torch.ones(4, dtype=torch.bool))


def test_enumerate_support_with_and_without_expand():
    coin = dist.Bernoulli(torch.full((3,), 0.5))
    assert coin.has_enumerate_support
    assert coin.enumerate_support().shape == (2, 3)
    assert coin.enumerate_support(expand=False).shape == (2, 1)
    die = dist.Categorical(torch.ones(3, 4))
    assert torch.equal(die.enumerate_support()[:, 0], torch.arange(4))
    assert die.enumerate_support(expand=False).shape == (4, 1)
    expanded = dist.Bernoulli(0.5).expand((5, 3))
    assert expanded.enumerate_support(expand=False).shape == (2, 1, 1)
    assert expanded.mask(False).enumerate_support().shape == (2, 5, 3)
    assert dist.OneHotCategorical(torch.ones(3)).enumerate_support().shape == (3, 3)
    assert not dist.Normal(0.0, 1.0).has_enumerate_support


class _ScaledNormal(dist.Normal):
    """A user subclass with its own __init__ and no expand: torch cannot expand it."""

    def __init__(self, scale):
        super().__init__(torch.zeros(1, 3), scale)


class _Coin(TorchDistribution):
    """A user TorchDistribution without an expand method."""

    arg_constraints = {"p": constraints.unit_interval}
    support = constraints.boolean

    def __init__(self, p):
        self.p = torch.as_tensor(p)
        super().__init__(self.p.shape)

    def sample(self, sample_shape=()):
        return torch.bernoulli(self.p.expand(self.shape(sample_shape)))

    def log_prob(self, value):
        return value * self.p.log() + (1 - value) * (-self.p).log1p()


def test_subclasses_that_cannot_expand_fall_back_to_expanded_distribution():
    d = _ScaledNormal(1.0)
    expanded = d.expand((2, 3))
    assert isinstance(expanded, ExpandedDistribution)
    draws = expanded.sample((1000,))
    assert draws.shape == (1000, 2, 3)
    # The two rows come from one base row but must be independent draws.
    assert not torch.equal(draws[:, 0], draws[:, 1])
    corr = torch.corrcoef(torch.stack([draws[:, 0, 0], draws[:, 1, 0]]))[0, 1]
    assert abs(float(corr)) < 5 / math.sqrt(1000)
    assert expanded.log_prob(torch.zeros(2, 3)).shape == (2, 3)
    assert expanded.expand_by((4,)).batch_shape == (4, 2, 3)
    assert expanded.mean.shape == (2, 3)
    coins = _Coin(torch.tensor([0.2, 0.7])).expand((5, 2))
    assert isinstance(coins, ExpandedDistribution) and coins.sample().shape == (5, 2)
    assert coins.to_event(2).log_prob(torch.ones(5, 2)).shape == ()


def test_expanded_distribution_rejects_incompatible_shapes():
    with pytest.raises(ShapeError, match="Cannot expand"):
        ExpandedDistribution(dist.Normal(torch.zeros(3), 1.0), (4,))


def test_user_subclass_without_init_expands_to_itself():
    class Shifted(dist.Normal):
        pass

    d = Shifted(torch.zeros(3), 1.0).expand((2, 3))
    assert type(d) is Shifted and d.batch_shape == (2, 3)


def test_score_parts_split_by_reparameterization():
    x = torch.tensor([0.0, 1.0])
    normal = dist.Normal(torch.zeros(2), 1.0).score_parts(x)
    assert normal.score_function == 0 and torch.equal(normal.entropy_term, normal.log_prob)
    coin = dist.Bernoulli(torch.full((2,), 0.3)).score_parts(x)
    assert coin.entropy_term == 0 and torch.equal(coin.score_function, coin.log_prob)
    masked = dist.Normal(torch.zeros(2), 1.0).mask(torch.tensor([True, False])).score_parts(x)
    assert masked.log_prob[1] == 0 and masked.entropy_term[1] == 0


def _kl_normal(m1, s1, m2, s2):
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def test_kl_between_wrapped_normals_and_independents():
    p, q = dist.Normal(0.5, 2.0), dist.Normal(-1.0, 0.5)
    assert math.isclose(
        float(dist.kl_divergence(p, q)), _kl_normal(0.5, 2.0, -1.0, 0.5), rel_tol=1e-5
    )
    loc = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    p = dist.Normal(loc, 1.0).to_event(1)
    q = dist.Normal(torch.zeros(2, 3), 2.0).to_event(1)
    expected = [sum(_kl_normal(float(m), 1.0, 0.0, 2.0) for m in row) for row in loc]
    assert torch.allclose(dist.kl_divergence(p, q), torch.tensor(expected))
    # Different nesting, same event: Independent(Normal, 2) against Independent(Independent, 1).
    p2 = dist.Normal(loc, 1.0).to_event(2)
    q2 = dist.Independent(dist.Independent(dist.Normal(torch.zeros(2, 3), 2.0), 1), 1)
    assert math.isclose(float(dist.kl_divergence(p2, q2)), sum(expected), rel_tol=1e-5)


def test_kl_for_delta_masked_and_expanded():
    q = dist.Normal(torch.zeros(2), 1.0)
    v = torch.tensor([0.5, -1.0])
    assert torch.allclose(dist.kl_divergence(dist.Delta(v), q), -q.log_prob(v))
    mask = torch.tensor([True, False])
    p = dist.Normal(torch.ones(2), 1.0)
    kl = dist.kl_divergence(p.mask(mask), q.mask(True).mask(torch.tensor([True, True])))
    assert torch.allclose(kl, torch.tensor([0.5, 0.0]))
    expanded = dist.kl_divergence(ExpandedDistribution(p, (3, 2)), ExpandedDistribution(q, (3, 2)))
    assert torch.allclose(expanded, torch.full((3, 2), 0.5))
