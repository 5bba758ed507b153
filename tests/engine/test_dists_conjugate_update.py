"""``conjugate_update`` of Beta, Dirichlet and Gamma (issue 17): ``f x g = fg x constant``."""

import pytest
import torch

import engine.distributions as dist
from engine.errors import ArgumentError

F64 = torch.float64


def _pairs():
    torch.manual_seed(0)
    # Parameters of different batch shapes, to check that they broadcast.
    return {
        "beta": (
            dist.Beta(torch.rand(3, 1, dtype=F64) + 0.5, torch.rand(3, 1, dtype=F64) + 1.0),
            dist.Beta(torch.tensor([4.0, 1.5], dtype=F64), torch.tensor([2.0, 6.0], dtype=F64)),
        ),
        "dirichlet": (
            dist.Dirichlet(torch.rand(2, 4, dtype=F64) + 0.7),
            dist.Dirichlet(torch.tensor([3.0, 1.0, 2.5, 5.0], dtype=F64)),
        ),
        "gamma": (
            dist.Gamma(torch.tensor([2.0, 0.8, 5.0], dtype=F64), torch.tensor(1.5, dtype=F64)),
            dist.Gamma(torch.tensor(4.0, dtype=F64), torch.tensor([0.5, 2.0, 3.0], dtype=F64)),
        ),
    }


@pytest.mark.parametrize("family", ["beta", "dirichlet", "gamma"])
def test_fused_density_times_constant_is_the_product(family):
    f, g = _pairs()[family]
    fg, log_normalizer = f.conjugate_update(g)
    assert type(fg) is type(f)
    batch = torch.broadcast_shapes(f.batch_shape, g.batch_shape)
    assert fg.batch_shape == batch and log_normalizer.shape == batch
    x = fg.sample((5,))
    assert torch.allclose(f.log_prob(x) + g.log_prob(x), fg.log_prob(x) + log_normalizer)


@pytest.mark.parametrize("family", ["beta", "gamma"])
def test_log_normalizer_is_the_integral_of_the_product(family):
    # exp(log_normalizer) = integral of f(x) g(x) dx; checked by the trapezoid rule on a fine grid
    # (the integrands are smooth and vanish at the ends: error far below 1e-6).
    f, g = _pairs()[family]
    fg, log_normalizer = f.conjugate_update(g)
    upper = 1.0 if family == "beta" else 40.0
    x = torch.linspace(0, upper, 200001, dtype=F64)[1:-1].reshape(-1, *([1] * len(fg.batch_shape)))
    integral = torch.trapezoid((f.log_prob(x) + g.log_prob(x)).exp(), x, dim=0)
    assert torch.allclose(integral, log_normalizer.exp(), rtol=1e-5)


def test_beta_binomial_posterior_and_evidence():
    # A coin with prior Beta(2, 2) shows 7 heads in 10 flips: posterior Beta(9, 5), and the
    # normaliser is the evidence of the flips divided by that of a flat prior (whose evidence
    # for a given count is 1 / 11 over the 11 possible counts).
    prior = dist.Beta(torch.tensor(2.0, dtype=F64), torch.tensor(2.0, dtype=F64))
    posterior, log_normalizer = prior.conjugate_update(dist.Beta(1.0 + 7, 1.0 + 3))
    assert (posterior.concentration1.item(), posterior.concentration0.item()) == (9.0, 5.0)
    evidence = dist.BetaBinomial(2.0, 2.0, total_count=10).log_prob(torch.tensor(7.0)).exp()
    assert torch.allclose(log_normalizer.exp(), (evidence * 11).to(F64))


def test_other_families_and_mismatched_partners_are_refused():
    with pytest.raises(NotImplementedError, match="Normal has no conjugate_update"):
        dist.Normal(0.0, 1.0).conjugate_update(dist.Normal(0.0, 1.0))
    with pytest.raises(ArgumentError, match="fuses two Beta densities, got other = Gamma"):
        dist.Beta(1.0, 1.0).conjugate_update(dist.Gamma(1.0, 1.0))
