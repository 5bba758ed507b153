"""CoalescentTimes and CoalescentTimesWithRate against Kingman's coalescent in closed form.

Densities are checked where they are elementary (two or three leaves); draws by Kolmogorov-
Smirnov tests (level 1e-3, fixed seed) against the exponential waiting times of the coalescent.
"""

import math

import pytest
import torch

import engine.distributions as dist

stats = pytest.importorskip("scipy.stats")

LEVEL = 1e-3


def test_density_of_two_and_three_simultaneous_leaves():
    rate = 1.7
    d2 = dist.CoalescentTimes(torch.zeros(2, dtype=torch.float64), rate)
    # one pair: the merge lies Exponential(rate) back in time
    assert math.isclose(
        float(d2.log_prob(torch.tensor([-0.4], dtype=torch.float64))), math.log(rate) - rate * 0.4
    )
    d3 = dist.CoalescentTimes(torch.zeros(3, dtype=torch.float64), rate)
    # three pairs merge at total rate 3 * rate, then the last pair at rate
    value = torch.tensor([-1.0, -0.25], dtype=torch.float64)
    expected = math.log(3 * rate) - 3 * rate * 0.25 + math.log(rate) - rate * 0.75
    assert math.isclose(float(d3.log_prob(value)), expected, rel_tol=1e-12)


def test_impossible_times_have_no_density_and_are_refused_under_validation():
    leaves = torch.tensor([0.0, 1.0])  # between 0 and 1 a single lineage exists
    assert dist.CoalescentTimes(leaves, validate_args=False).log_prob(torch.tensor([0.5])) == (
        -math.inf
    )
    with pytest.raises(ValueError):
        dist.CoalescentTimes(leaves, validate_args=True).log_prob(torch.tensor([0.5]))


def test_draws_follow_the_exponential_waiting_times():
    torch.manual_seed(0)
    rate = 0.8
    leaves = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    draws = dist.CoalescentTimes(leaves, rate).sample((4000,))
    assert draws.shape == (4000, 2, 1)
    # Leaves at 0 and 1: nothing can merge before 0, then the pair waits Exponential(rate).
    assert stats.kstest((-draws[:, 0, 0]).numpy(), stats.expon(scale=1 / rate).cdf).pvalue > LEVEL
    three = dist.CoalescentTimes(torch.tensor([0.0, 0.0, 0.0]), rate).sample((4000,))
    assert (three[:, 0] <= three[:, 1]).all()  # sorted increasingly
    first_wait = (-three[:, 1]).double().numpy()
    second_wait = (three[:, 1] - three[:, 0]).double().numpy()
    assert stats.kstest(first_wait, stats.expon(scale=1 / (3 * rate)).cdf).pvalue > LEVEL
    assert stats.kstest(second_wait, stats.expon(scale=1 / rate).cdf).pvalue > LEVEL


def test_draws_are_valid_and_shaped_with_batches():
    torch.manual_seed(1)
    leaves = torch.rand(2, 3, 7) * 5
    d = dist.CoalescentTimes(leaves, torch.tensor([1.0, 2.0, 0.5]))
    draws = d.sample((4,))
    assert draws.shape == (4, 2, 3, 6)
    assert d.support.check(draws).all()
    assert torch.isfinite(d.log_prob(draws)).all()


def test_piecewise_rate_density_and_its_constant_special_case():
    leaves = torch.tensor([2.5, 2.5], dtype=torch.float64)
    grid = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    d = dist.CoalescentTimesWithRate(leaves, grid)
    # merge at 0.5: rate 1 there; hazard integral 3 * 0.5 + 2 * 1 + 1 * 0.5 from 2.5 down to 0.5
    assert math.isclose(
        float(d.log_prob(torch.tensor([0.5], dtype=torch.float64))), -(1.5 + 2.0 + 0.5)
    )
    assert d.duration == 3
    torch.manual_seed(2)
    leaves = torch.rand(4, 6, dtype=torch.float64) * 9
    rate = torch.rand(4, dtype=torch.float64) + 0.5
    constant = dist.CoalescentTimes(leaves, rate)
    value = constant.sample((5,))
    gridded = dist.CoalescentTimesWithRate(leaves, rate[:, None].expand(4, 9))
    assert torch.allclose(gridded.log_prob(value), constant.log_prob(value), atol=1e-10)
    assert gridded.expand((3, 4)).log_prob(value[:, None]).shape == (5, 3, 4)


@pytest.mark.parametrize("batch_shape", [(), (3, 2)])
def test_rate_likelihood_splits_the_gridded_density_by_cell(batch_shape):
    torch.manual_seed(3)
    leaves = torch.rand((*batch_shape, 8), dtype=torch.float64) * 6
    coals = dist.CoalescentTimes(leaves).sample()  # reaches before 0: the first cell's tail
    grid = torch.rand((*batch_shape, 6), dtype=torch.float64) + 0.5
    expected = dist.CoalescentTimesWithRate(leaves, grid).log_prob(coals)
    likelihood = dist.CoalescentRateLikelihood(leaves, coals, 6)
    assert torch.allclose(likelihood(grid).sum(-1), expected, atol=1e-10)
    one_by_one = sum(likelihood(grid[..., t], t) for t in range(6))
    assert torch.allclose(one_by_one, expected, atol=1e-10)
    with pytest.raises(ValueError, match="fewer than two lineages"):
        dist.CoalescentRateLikelihood(
            torch.tensor([0.0, 1.0]), torch.tensor([0.5]), 2, validate_args=True
        )


def test_draws_keep_the_leaves_dtype_whatever_the_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        draws = dist.CoalescentTimes(torch.zeros(4, dtype=torch.float32)).sample((3,))
    finally:
        torch.set_default_dtype(old)
    assert draws.dtype == torch.float32 and draws.shape == (3, 3)


def test_phylogeny_to_times_counts_each_split_as_binary_coalescences():
    from types import SimpleNamespace

    from engine.distributions.coalescent import bio_phylo_to_times

    def clade(children=(), length=None, date=None):
        return SimpleNamespace(clades=list(children), branch_length=length, date=date)

    # A root (no length: counts 1) splitting three ways, one child splitting in two.
    tips = [clade(length=2.0, date=5.0), clade(length=0.5, date=4.0), clade(length=1.0, date=4.5)]
    inner = clade(tips[1:], length=1.0, date=3.0)
    tree = SimpleNamespace(root=clade([tips[0], inner, clade(length=3.0, date=6.0)], date=1.0))
    leaves, coalescences = bio_phylo_to_times(tree)
    assert sorted(leaves.tolist()) == [2.5, 3.0, 3.0, 4.0]
    assert sorted(coalescences.tolist()) == [1.0, 1.0, 2.0]  # the three-way root counts twice
    dated_leaves, dated_coalescences = bio_phylo_to_times(tree, get_time=lambda c: c.date)
    assert sorted(dated_leaves.tolist()) == [4.0, 4.5, 5.0, 6.0]
    assert sorted(dated_coalescences.tolist()) == [1.0, 1.0, 3.0]
    # Looking back from the latest leaf, the lineage count never goes below one.
    times = torch.cat([coalescences, leaves])
    signs = torch.cat([-torch.ones_like(coalescences), torch.ones_like(leaves)])
    lineages = signs[times.argsort(descending=True)].cumsum(0)
    assert lineages.min() >= 1 and lineages[-1] == 1
    assert dist.CoalescentTimes(leaves).log_prob(coalescences).isfinite()
