"""SpanningTree against brute force over every tree of small complete graphs.

Trees are listed here independently (every (V-1)-subset of edges that connects all vertices);
``log Z``, ``edge_mean`` and the mode are checked against sums and maxima over that list; exact
draws and the Gibbs chain of ``sample_tree`` against exact probabilities by a Pearson chi-square
test at level 1e-3.
"""

import itertools
import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine.distributions.spanning_tree import (
    NUM_SPANNING_TREES,
    find_best_tree,
    make_complete_graph,
    sample_tree,
)
from engine.errors import DistributionArgumentError, SupportError

stats = pytest.importorskip("scipy.stats")

LEVEL = 1e-3


def _all_trees(num_vertices: int) -> torch.Tensor:
    edges = make_complete_graph(num_vertices).T.tolist()
    trees = []
    for subset in itertools.combinations(edges, num_vertices - 1):
        reached, changed = {0}, True
        while changed:
            changed = False
            for a, b in subset:
                if (a in reached) != (b in reached):
                    reached |= {a, b}
                    changed = True
        if len(reached) == num_vertices:
            trees.append(sorted(subset, key=lambda e: (e[1], e[0])))
    return torch.tensor(trees)


def _tree_logits(edge_logits, trees):
    v1, v2 = trees[..., 0], trees[..., 1]
    return edge_logits[v1 + v2 * (v2 - 1) // 2].sum(-1)


@pytest.mark.parametrize("num_vertices", [2, 3, 4, 5, 6])
def test_log_z_edge_mean_mode_and_enumeration_match_brute_force(num_vertices):
    torch.manual_seed(num_vertices)
    k = num_vertices * (num_vertices - 1) // 2
    edge_logits = torch.randn(k, dtype=torch.float64) * 2
    d = dist.SpanningTree(edge_logits)
    trees = _all_trees(num_vertices)
    assert len(trees) == NUM_SPANNING_TREES[num_vertices]
    weights = _tree_logits(edge_logits, trees)
    assert torch.allclose(d.log_partition_function, weights.logsumexp(0), atol=1e-10)
    listed = d.enumerate_support()
    assert sorted(map(str, listed.tolist())) == sorted(map(str, trees.tolist()))
    assert abs(float(d.log_prob(listed).logsumexp(0))) < 1e-10
    probs = (weights - weights.logsumexp(0)).exp()
    expected = torch.zeros(num_vertices, num_vertices, dtype=torch.float64)
    for tree, p in zip(trees, probs, strict=True):
        expected[tree[:, 0], tree[:, 1]] += p
        expected[tree[:, 1], tree[:, 0]] += p
    assert torch.allclose(d.edge_mean, expected, atol=1e-10)
    assert torch.equal(d.mode, trees[weights.argmax()])
    assert torch.equal(find_best_tree(edge_logits), trees[weights.argmax()])


@pytest.mark.parametrize("chain", [False, True])
def test_draws_follow_exact_probabilities(chain):
    engine.set_rng_seed(0)
    edge_logits = torch.randn(6, dtype=torch.float64)  # 4 vertices, 16 trees
    edge_logits[1] = -math.inf  # edge (0, 2) never appears
    trees = _all_trees(4)
    weights = _tree_logits(edge_logits, trees)
    probs = (weights - weights.logsumexp(0)).exp()
    num_draws = 4000
    if chain:
        # Independent replicates of 30 Gibbs sweeps from one fixed start: if the sweep leaves the
        # law invariant and mixes, the end states follow it. (8 sweeps still show the start:
        # this seed's weights make some moves rare; 30 leave no trace 2000 draws can see.)
        num_draws = 2000
        start = trees[-1]
        draws = [sample_tree(edge_logits, start, mcmc_steps=30) for _ in range(num_draws)]
        draws = torch.stack(draws)
    else:
        draws = dist.SpanningTree(edge_logits).sample((num_draws,))
    assert draws.shape == (num_draws, 3, 2)
    counts = (draws[:, None] == trees).all(-1).all(-1).sum(0).double()
    assert counts.sum() == num_draws
    possible = probs > 0
    assert counts[~possible].sum() == 0
    expected = num_draws * probs[possible]
    chi2 = ((counts[possible] - expected) ** 2 / expected).sum()
    limit = stats.chi2.ppf(1 - LEVEL, df=int(possible.sum()) - 1)
    assert float(chi2) < limit


def test_validate_edges_and_bad_arguments():
    d = dist.SpanningTree(torch.zeros(6), validate_args=True)
    d.validate_edges(torch.tensor([[0, 1], [1, 2], [0, 3]]))
    with pytest.raises(SupportError, match="cycle"):
        d.validate_edges(torch.tensor([[0, 1], [0, 2], [1, 2]]))
    with pytest.raises(SupportError, match="colexicographic"):
        d.validate_edges(torch.tensor([[0, 3], [0, 1], [1, 2]]))
    with pytest.raises(SupportError):
        d.log_prob(torch.tensor([[1, 0], [1, 2], [0, 3]]))
    with pytest.raises(DistributionArgumentError, match="V \\* \\(V - 1\\) / 2"):
        dist.SpanningTree(torch.zeros(5))
    with pytest.raises(DistributionArgumentError, match="backend"):
        dist.SpanningTree(torch.zeros(3), sampler_options={"backend": "cuda"})
    with pytest.raises(NotImplementedError, match="too many"):
        dist.SpanningTree(torch.zeros(36)).enumerate_support()
