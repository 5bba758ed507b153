"""OneOneMatching and OneTwoMatching against brute force over every matching.

Exact ``log Z`` and the mode are compared with sums and maxima over matchings listed here with
itertools (independently of ``enumerate_support``); draws with exact probabilities by a Pearson
chi-square test at level 1e-3; the Bethe ``log Z`` with the bounds known for the permanent
(Gurvits: perm_B <= perm; Anari and Rezaei: perm <= sqrt(2)**N perm_B).
"""

import itertools
import math

import pytest
import torch

import engine.distributions as dist
from engine.errors import DistributionArgumentError

stats = pytest.importorskip("scipy.stats")

LEVEL = 1e-3


def _all_matchings(num_destins: int, capacity: int) -> torch.Tensor:
    slots = [j for j in range(num_destins) for _ in range(capacity)]
    return torch.tensor(sorted(set(itertools.permutations(slots))))


def _brute_log_z(logits: torch.Tensor, capacity: int) -> torch.Tensor:
    values = _all_matchings(logits.size(1), capacity)
    return logits[torch.arange(values.size(1)), values].sum(-1).logsumexp(0)


CASES = [(dist.OneOneMatching, 1, n) for n in (1, 2, 3, 4, 5)]
CASES += [(dist.OneTwoMatching, 2, n) for n in (1, 2, 3, 4)]


@pytest.mark.parametrize("cls,capacity,n", CASES)
def test_exact_log_z_and_enumeration_match_brute_force(cls, capacity, n):
    torch.manual_seed(n)
    logits = torch.randn(capacity * n, n, dtype=torch.float64) * 3
    if n > 1:
        logits[0, 0] = -math.inf  # a forbidden edge
    d = cls(logits)
    expected = _brute_log_z(logits, capacity)
    assert torch.allclose(d.log_partition_function, expected, rtol=1e-12, atol=1e-12)
    values = d.enumerate_support()
    assert torch.equal(values, _all_matchings(n, capacity))
    assert d.support.check(values).all()
    total = d.log_prob(values).logsumexp(0)
    assert abs(float(total)) < 1e-12


def test_support_check_answers_per_matching():
    support = dist.OneTwoMatching(torch.zeros(4, 2)).support
    values = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 1], [0, 1, 2, 0]])
    assert support.check(values).tolist() == [True, False, False]


@pytest.mark.parametrize(
    "cls,capacity,n", [(dist.OneOneMatching, 1, 3), (dist.OneTwoMatching, 2, 2)]
)
@pytest.mark.parametrize("bp_iters", [None, 30])
def test_draws_follow_exact_probabilities(cls, capacity, n, bp_iters):
    torch.manual_seed(0)
    logits = torch.randn(capacity * n, n, dtype=torch.float64)
    d = cls(logits, bp_iters=bp_iters)  # draws are exact either way
    num_draws = 6000
    draws = d.sample((num_draws,))
    assert draws.shape == (num_draws, capacity * n)
    values = _all_matchings(n, capacity)
    probs = (d.log_prob(values) - d.log_prob(values).logsumexp(0)).exp()
    counts = (draws[:, None, :] == values).all(-1).sum(0).double()
    assert counts.sum() == num_draws  # every draw is a matching
    chi2 = ((counts - num_draws * probs) ** 2 / (num_draws * probs)).sum()
    assert float(chi2) < stats.chi2.ppf(1 - LEVEL, df=len(values) - 1)


@pytest.mark.parametrize(
    "cls,capacity,n", [(dist.OneOneMatching, 1, 6), (dist.OneTwoMatching, 2, 4)]
)
def test_mode_is_the_most_probable_matching(cls, capacity, n):
    torch.manual_seed(1)
    values = _all_matchings(n, capacity)
    for _ in range(5):
        logits = torch.randn(capacity * n, n, dtype=torch.float64) * 5
        d = cls(logits)
        best = values[d.log_prob(values).argmax()]
        assert torch.equal(d.mode(), best)


def test_mode_of_a_large_matching_respects_forbidden_edges():
    torch.manual_seed(2)
    n = 150
    logits = torch.randn(2 * n, n)
    logits[torch.arange(2 * n)[:, None] // 2 < torch.arange(n)] = -math.inf  # only j <= s // 2
    d = dist.OneTwoMatching(logits)
    v = d.mode()
    assert d.support.check(v)
    assert torch.isfinite(logits[torch.arange(2 * n), v]).all()


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_bethe_log_z_lies_within_the_permanent_bounds(n):
    torch.manual_seed(n)
    logits = torch.randn(n, n, dtype=torch.float64)
    exact = dist.OneOneMatching(logits).log_partition_function
    bethe = dist.OneOneMatching(logits, bp_iters=200).log_partition_function
    # Converged BP: log perm_B <= log perm <= log perm_B + (N / 2) log 2 (up to rounding).
    assert bethe <= exact + 1e-9
    assert exact <= bethe + n / 2 * math.log(2) + 1e-9


def test_bethe_log_z_of_a_two_by_two_is_its_larger_diagonal():
    # For 2 x 2 the Bethe free energy is linear in the one free marginal: its optimum is a vertex.
    logits = torch.tensor([[0.3, -1.0], [0.5, 0.9]], dtype=torch.float64)
    bethe = dist.OneOneMatching(logits, bp_iters=500).log_partition_function
    assert abs(float(bethe) - max(0.3 + 0.9, -1.0 + 0.5)) < 1e-2


def test_bethe_log_z_is_smooth_and_close_for_peaked_one_two_matchings():
    torch.manual_seed(3)
    logits = (torch.randn(8, 4, dtype=torch.float64) * 3).requires_grad_()
    torch.autograd.gradcheck(
        lambda x: dist.OneTwoMatching(x, bp_iters=20).log_partition_function, logits
    )
    # Peaked weights: one matching carries most of Z, and every term of the free energy tends to
    # its exact value; Bethe underestimates here, by well under a nat.
    peaked = logits.detach() * 4
    for _ in range(3):
        gap = float(
            dist.OneTwoMatching(peaked).log_partition_function
            - dist.OneTwoMatching(peaked, bp_iters=100).log_partition_function
        )
        assert 0.0 <= gap < 1.0
        peaked = peaked + torch.randn_like(peaked)


def test_bad_arguments_are_refused_with_the_fix():
    with pytest.raises(DistributionArgumentError, match="one OneOneMatching per matrix"):
        dist.OneOneMatching(torch.zeros(2, 3, 3))
    with pytest.raises(DistributionArgumentError, match=r"shape \(2 \* N, N\)"):
        dist.OneTwoMatching(torch.zeros(3, 2))
    with pytest.raises(DistributionArgumentError, match="bp_iters"):
        dist.OneOneMatching(torch.zeros(2, 2), bp_iters=0)
    with pytest.raises(NotImplementedError, match="bp_iters"):
        _ = dist.OneOneMatching(torch.zeros(40, 40)).log_partition_function
    d = dist.OneOneMatching(torch.zeros(3, 3), validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([0, 0, 1]))
