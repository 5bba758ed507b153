"""``SpanningTree``: a random spanning tree of the complete graph, weighted by edge logits.

The weight of a tree is ``exp(sum of its edges' logits)``. Kirchhoff's matrix-tree theorem gives
the total weight ``Z`` as a determinant of the weighted Laplacian with one vertex removed, and
the edge marginals from that matrix's inverse (effective resistances). Draws are exact, by
Wilson's algorithm: loop-erased random walks whose steps follow the edge weights.

Edges are numbered colexicographically, ``k = v1 + v2 * (v2 - 1) // 2`` for ``v1 < v2``: (0,1),
(0,2), (1,2), (0,3), ... A tree is a ``(V-1, 2)`` long tensor of sorted pairs in that order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.errors import DistributionArgumentError, SupportError

# Cayley's formula: the complete graph on V vertices has V ** (V - 2) spanning trees.
NUM_SPANNING_TREES = [1, 1] + [v ** (v - 2) for v in range(2, 20)]

_BACKENDS = ("python", "cpp")  # Pyro's two backends; here both name the one implementation
_MAX_ENUMERATE_VERTICES = 8


def _num_vertices(num_edges_complete: int) -> int:
    v = (1 + math.isqrt(1 + 8 * num_edges_complete)) // 2
    if v * (v - 1) // 2 != num_edges_complete:
        raise DistributionArgumentError(
            f"SpanningTree: edge_logits has {num_edges_complete} entries, which is not "
            "V * (V - 1) / 2 for any V; pass one logit per edge of the complete graph"
        )
    return v


def _check_backend(backend: str) -> None:
    if backend not in _BACKENDS:
        raise DistributionArgumentError(
            f"SpanningTree: backend must be one of {_BACKENDS}, got {backend!r}"
        )


def make_complete_graph(num_vertices: int, backend: str = "python") -> torch.Tensor:
    """The ``(2, K)`` grid of the complete graph's edges ``(v1, v2)``, ``v1 < v2``, in edge order.

    >>> make_complete_graph(3)
    tensor([[0, 0, 1],
            [1, 2, 2]])
    """
    _check_backend(backend)
    v2 = torch.tensor([b for b in range(num_vertices) for _ in range(b)], dtype=torch.long)
    v1 = torch.tensor([a for b in range(num_vertices) for a in range(b)], dtype=torch.long)
    return torch.stack([v1, v2]).reshape(2, -1)


def _edge_ids(edges: torch.Tensor) -> torch.Tensor:
    v1, v2 = edges[..., 0], edges[..., 1]
    return v1 + v2 * (v2 - 1) // 2


def _sorted_tree(pairs: list[tuple[int, int]] | np.ndarray) -> torch.Tensor:
    pairs = sorted((min(a, b), max(a, b)) for a, b in pairs)
    pairs.sort(key=lambda e: (e[1], e[0]))  # colexicographic
    return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)


def _weight_matrix(edge_logits: torch.Tensor, num_vertices: int) -> np.ndarray:
    logits = edge_logits.detach().cpu().double().numpy()
    w = np.zeros((num_vertices, num_vertices))
    if len(logits):
        v1, v2 = make_complete_graph(num_vertices).numpy()
        finite = np.isfinite(logits)
        shifted = np.where(finite, logits - logits[finite].max(), -np.inf)
        w[v1, v2] = w[v2, v1] = np.exp(shifted)
    return w


def _wilson(w: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """One exact draw by Wilson's algorithm (loop-erased random walks to a tree rooted at 0)."""
    v = w.shape[0]
    in_tree = np.zeros(v, dtype=bool)
    in_tree[0] = True
    nxt = np.full(v, -1)
    step_probs = w / w.sum(1, keepdims=True)
    cumulative = np.cumsum(step_probs, 1)
    for start in range(1, v):
        u = start
        while not in_tree[u]:  # walk, remembering only the last exit from each vertex
            nxt[u] = min(
                int(np.searchsorted(cumulative[u], rng.random() * cumulative[u, -1], side="right")),
                v - 1,
            )
            u = nxt[u]
        u = start
        while not in_tree[u]:
            in_tree[u] = True
            u = nxt[u]
    return _sorted_tree([(a, int(nxt[a])) for a in range(1, v)])


def _gibbs_sweep(tree: list[tuple[int, int]], w: np.ndarray, rng: np.random.Generator) -> list:
    """Resample every edge in turn given the others: remove it, then reconnect the two parts by
    an edge across the cut chosen with probability proportional to its weight."""
    v = w.shape[0]
    tree = list(tree)
    for e in range(len(tree)):
        rest = tree[:e] + tree[e + 1 :]
        adjacency = [[] for _ in range(v)]
        for a, b in rest:
            adjacency[a].append(b)
            adjacency[b].append(a)
        side = np.zeros(v, dtype=bool)
        stack = [tree[e][0]]
        side[stack[0]] = True
        while stack:
            for b in adjacency[stack.pop()]:
                if not side[b]:
                    side[b] = True
                    stack.append(b)
        cut = w * (side[:, None] & ~side[None, :])
        flat = cut.ravel() / cut.sum()
        k = int(rng.choice(len(flat), p=flat))
        tree = [*rest[:e], (k // v, k % v), *rest[e:]]
    return tree


def _rng() -> np.random.Generator:
    # Seeded from torch's generator, so engine.set_rng_seed makes draws reproducible.
    return np.random.default_rng(int(torch.randint(0, 2**62, ())))


def sample_tree(
    edge_logits: torch.Tensor,
    init_edges: torch.Tensor | None = None,
    mcmc_steps: int = 1,
    backend: str = "python",
) -> torch.Tensor:
    """A spanning tree drawn with probability proportional to ``exp(sum of its edge logits)``.

    Without ``init_edges`` the draw is exact (Wilson's algorithm). With ``init_edges`` it takes
    ``mcmc_steps`` Gibbs sweeps from that tree (each edge in turn is removed and the cut
    reconnected by a weighted choice), a Markov chain that leaves the distribution invariant.

    >>> sample_tree(torch.zeros(3)).shape  # 3 vertices, 2 edges
    torch.Size([2, 2])
    """
    _check_backend(backend)
    num_vertices = _num_vertices(edge_logits.size(-1))
    w = _weight_matrix(edge_logits, num_vertices)
    rng = _rng()
    if init_edges is None:
        return _wilson(w, rng)
    tree = [tuple(int(x) for x in pair) for pair in init_edges]
    for _ in range(mcmc_steps):
        tree = _gibbs_sweep(tree, w, rng)
    return _sorted_tree(tree)


def find_best_tree(edge_logits: torch.Tensor, backend: str = "python") -> torch.Tensor:
    """The spanning tree of largest total logit (Prim's algorithm), edges sorted as above.

    >>> find_best_tree(torch.tensor([5.0, 0.0, 3.0]))  # edges (0,1), (0,2), (1,2)
    tensor([[0, 1],
            [1, 2]])
    """
    _check_backend(backend)
    v = _num_vertices(edge_logits.size(-1))
    logits = np.full((v, v), -np.inf)
    if v > 1:
        v1, v2 = make_complete_graph(v).numpy()
        values = edge_logits.detach().cpu().double().numpy()
        logits[v1, v2] = logits[v2, v1] = values
    in_tree = np.zeros(v, dtype=bool)
    in_tree[0] = True
    best = logits[0].copy()
    parent = np.zeros(v, dtype=np.int64)
    pairs = []
    for _ in range(v - 1):
        u = int(np.where(in_tree, -np.inf, best).argmax())
        pairs.append((int(parent[u]), u))
        in_tree[u] = True
        better = ~in_tree & (logits[u] > best)
        best[better] = logits[u][better]
        parent[better] = u
    return _sorted_tree(pairs)


def _prufer_trees(num_vertices: int) -> torch.Tensor:
    """Every spanning tree, decoded from every Prüfer sequence."""
    if num_vertices < 2:
        return torch.zeros(1, 0, 2, dtype=torch.long)
    trees = []
    for seq in np.ndindex(*([num_vertices] * (num_vertices - 2))):
        degree = np.ones(num_vertices, dtype=np.int64)
        for x in seq:
            degree[x] += 1
        pairs = []
        for x in seq:
            leaf = int(np.argmax(degree == 1))
            pairs.append((leaf, x))
            degree[leaf] -= 1
            degree[x] -= 1
        a, b = np.flatnonzero(degree == 1)
        pairs.append((int(a), int(b)))
        trees.append(_sorted_tree(pairs))
    return torch.stack(trees)


def _root(parent: list[int], a: int) -> int:
    while parent[a] != a:
        a = parent[a]
    return a


def _symmetric(values: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """The ``V x V`` symmetric matrix with ``values`` on the complete graph's edges."""
    v1, v2 = make_complete_graph(num_vertices).to(values.device)
    out = values.new_zeros(num_vertices, num_vertices)
    return out.index_put((v1, v2), values).index_put((v2, v1), values)


class SpanningTree(TorchDistribution):
    """Random spanning tree of the complete graph on ``V`` vertices.

    ``p(tree) = exp(sum_{e in tree} edge_logits[e]) / Z``. A tree is a ``(V-1, 2)`` long tensor of
    sorted edges ``(v1, v2)``, ``v1 < v2``, in colexicographic order; ``edge_logits`` holds one
    logit per edge of the complete graph in the same order (``make_complete_graph(V)`` lists the
    edges, so ``edge_logits = matrix[make_complete_graph(V).unbind()]`` converts a ``V x V``
    matrix). ``log Z`` and :attr:`edge_mean` are exact (matrix-tree theorem); draws are exact
    (Wilson's algorithm), so of Pyro's ``sampler_options`` only ``backend`` (``"python"`` or
    ``"cpp"``, both the same code here) is meaningful; ``mcmc_steps`` and ``initial_edges`` are
    accepted and not needed.

    :param edge_logits: a ``(V * (V - 1) / 2,)`` tensor of edge logits.
    :param sampler_options: an optional dict as above.

    >>> d = SpanningTree(torch.zeros(3))  # a triangle: three trees, equally likely
    >>> d.log_partition_function.exp()
    tensor(3.)
    >>> d.edge_mean
    tensor([[0.0000, 0.6667, 0.6667],
            [0.6667, 0.0000, 0.6667],
            [0.6667, 0.6667, 0.0000]])
    """

    arg_constraints = {"edge_logits": constraints.real}
    support = constraints.nonnegative_integer
    has_enumerate_support = True

    def __init__(
        self,
        edge_logits: torch.Tensor,
        sampler_options: dict | None = None,
        validate_args: bool | None = None,
    ):
        edge_logits = torch.as_tensor(edge_logits)
        if edge_logits.dim() != 1:
            raise DistributionArgumentError(
                f"SpanningTree: edge_logits must be a vector, got shape {tuple(edge_logits.shape)};"
                " batches of trees are not supported, build one SpanningTree per vector"
            )
        self.edge_logits = edge_logits
        self.num_vertices = _num_vertices(edge_logits.size(0))
        self.sampler_options = dict(sampler_options or {})
        unknown = set(self.sampler_options) - {"backend", "mcmc_steps", "initial_edges"}
        if unknown:
            raise DistributionArgumentError(
                f"SpanningTree: unknown sampler_options {sorted(unknown)}; the options are "
                "backend, mcmc_steps and initial_edges"
            )
        _check_backend(self.sampler_options.get("backend", "python"))
        super().__init__(event_shape=(self.num_vertices - 1, 2), validate_args=validate_args)

    def validate_edges(self, edges: torch.Tensor) -> None:
        """Raise :class:`~engine.errors.SupportError` unless every tree in ``edges`` (shape
        ``(..., V-1, 2)``) is a spanning tree written in the canonical order."""
        v = self.num_vertices
        if edges.shape[-2:] != self.event_shape:
            raise SupportError(
                f"SpanningTree: edges of shape {tuple(edges.shape)} should end in "
                f"{tuple(self.event_shape)} (V - 1 edges of two vertices)"
            )
        for tree in edges.reshape(-1, v - 1, 2).tolist():
            parent = list(range(v))
            for a, b in tree:
                if not 0 <= a < b < v:
                    raise SupportError(
                        f"SpanningTree: edge {(a, b)} is not a sorted pair in 0..{v - 1}"
                    )
                ra, rb = _root(parent, a), _root(parent, b)
                if ra == rb:
                    raise SupportError(f"SpanningTree: edges {tree} contain a cycle")
                parent[ra] = rb
            keys = [(b, a) for a, b in tree]
            if keys != sorted(keys):
                raise SupportError(f"SpanningTree: edges {tree} are not in colexicographic order")

    def _laplacian_minor(self) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.num_vertices
        shift = self.edge_logits.detach().max() if v > 1 else self.edge_logits.new_zeros(())
        weights = (self.edge_logits - shift).exp()
        v1, v2 = make_complete_graph(v).to(self.edge_logits.device)
        w = (
            self.edge_logits.new_zeros(v, v)
            .index_put((v1, v2), weights)
            .index_put((v2, v1), weights)
        )
        laplacian = torch.diag(w.sum(-1)) - w
        return laplacian[1:, 1:], shift

    @property
    def log_partition_function(self) -> torch.Tensor:
        """``log Z``, the log total weight of all spanning trees (matrix-tree theorem)."""
        minor, shift = self._laplacian_minor()
        return torch.linalg.slogdet(minor)[1] + (self.num_vertices - 1) * shift

    def log_prob(self, edges: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self.validate_edges(edges)
        return self.edge_logits[_edge_ids(edges)].sum(-1) - self.log_partition_function

    def sample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        trees = [sample_tree(self.edge_logits) for _ in range(sample_shape.numel())]
        return torch.stack(trees).reshape(sample_shape + self.event_shape)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """Every spanning tree (``V ** (V - 2)`` of them; up to 8 vertices)."""
        if self.num_vertices > _MAX_ENUMERATE_VERTICES:
            raise NotImplementedError(
                f"SpanningTree.enumerate_support: {NUM_SPANNING_TREES[self.num_vertices]} trees "
                f"on {self.num_vertices} vertices are too many to list (limit "
                f"{_MAX_ENUMERATE_VERTICES} vertices)"
            )
        return _prufer_trees(self.num_vertices).to(self.edge_logits.device)

    @property
    def mode(self) -> torch.Tensor:
        """The most probable tree: the maximum-weight spanning tree."""
        return find_best_tree(self.edge_logits, self.sampler_options.get("backend", "python"))

    @property
    def edge_mean(self) -> torch.Tensor:
        """The ``(V, V)`` symmetric matrix of each edge's probability of being in the tree.

        By Kirchhoff, ``P(e = uv) = w_uv * R_uv``, with ``R`` the effective resistance between
        ``u`` and ``v`` read off the inverse of the Laplacian minor.
        """
        v = self.num_vertices
        minor, shift = self._laplacian_minor()
        inverse = self.edge_logits.new_zeros(v, v)
        if v > 1:
            inverse[1:, 1:] = torch.linalg.inv(minor)
        diag = inverse.diagonal()
        resistance = diag[:, None] + diag[None, :] - 2 * inverse
        v1, v2 = make_complete_graph(v).to(self.edge_logits.device)
        probs = (self.edge_logits - shift).exp() * resistance[v1, v2]
        return (
            self.edge_logits.new_zeros(v, v).index_put((v1, v2), probs).index_put((v2, v1), probs)
        )
