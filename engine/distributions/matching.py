"""Random matchings of sources to destinations with a fixed capacity: the common machinery.

A matching sends each of ``c * N`` sources to one of ``N`` destinations so that every destination
receives exactly ``c`` sources (``c = 1``: a permutation, :class:`OneOneMatching`; ``c = 2``:
:class:`OneTwoMatching`). Its weight is ``exp(sum_s logits[s, v[s]])``; the distribution divides
by the sum ``Z`` of all weights. Three computations serve both families:

* exact ``log Z`` and exact draws by dynamic programming over how full each destination is
  (``(c + 1) ** N`` states, so only for small ``N``);
* a Bethe approximation of ``log Z`` by loopy belief propagation (``bp_iters`` sweeps), cheap
  for any size, differentiable, its gradient close to the edge marginals;
* the most probable matching, an assignment problem solved by shortest augmenting paths.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.distributions import constraints

from engine.distributions.torch_distribution import TorchDistribution
from engine.errors import DistributionArgumentError

# Above this many fill states the exact dynamic programme costs too much memory and time.
MAX_EXACT_STATES = 2**21


def _safe_log(x: torch.Tensor) -> torch.Tensor:
    """``log x`` with ``log 0 = -inf`` and a zero (not NaN) gradient there."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).log(), -math.inf)


def safe_logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``logsumexp`` whose gradient stays finite where every term is ``-inf``.

    >>> safe_logsumexp(torch.tensor([[0.0, 0.0], [-math.inf, -math.inf]]), -1)
    tensor([0.6931,   -inf])
    """
    m = x.detach().amax(dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return _safe_log((x - m).exp().sum(dim)) + m.squeeze(dim)


def logsumexp_others(x: torch.Tensor, dim: int) -> torch.Tensor:
    """For every entry, the ``logsumexp`` of all the *other* entries along ``dim``.

    Subtracting an entry from the total is exact except for the largest entry, whose complement
    may be tiny next to it; that one is summed afresh with itself left out.

    >>> logsumexp_others(torch.tensor([0.0, 1.0, 2.0]).log(), 0).exp()
    tensor([3., 2., 1.])
    """
    # (amax and argmax apart: ``Tensor.max(dim)`` is orders of magnitude slower on small CPU
    # tensors in torch 2.13.)
    m = x.detach().amax(dim, keepdim=True)
    top = x.detach().argmax(dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    scaled = (x - m).exp()
    rest = scaled.sum(dim, keepdim=True) - scaled
    is_top = torch.zeros_like(x, dtype=torch.bool).scatter(dim, top, True)
    without_top = safe_logsumexp(x.masked_fill(is_top, -math.inf), dim).unsqueeze(dim)
    return torch.where(is_top, without_top, _safe_log(torch.where(is_top, 1.0, rest)) + m)


# ------------------------------------------------------------------ exact dynamic programme
@functools.lru_cache(maxsize=16)
def _fill_layers(num_destins: int, capacity: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The fill states layer by layer (layer ``s``: ``s`` sources placed).

    Returns, for each layer ``s >= 1``, ``(prev, valid)``: ``prev[k, j]`` is the position in
    layer ``s - 1`` of state ``k`` with one source taken back from destination ``j``, and
    ``valid[k, j]`` whether destination ``j`` holds a source in state ``k``.
    """
    base = capacity + 1
    codes = np.arange(base**num_destins)
    powers = base ** np.arange(num_destins)
    digits = (codes[:, None] // powers) % base
    fill = digits.sum(1)
    position = np.zeros_like(codes)
    layers = []
    for s in range(capacity * num_destins + 1):
        members = codes[fill == s]
        position[members] = np.arange(len(members))
        if s:
            valid = digits[members] > 0
            prev = position[np.where(valid, members[:, None] - powers, 0)]
            layers.append((prev, valid))
    return layers


def check_exact_size(num_destins: int, capacity: int, what: str) -> None:
    """Refuse an exact computation whose state space would not fit."""
    if (capacity + 1) ** num_destins > MAX_EXACT_STATES:
        raise NotImplementedError(
            f"exact {what} for a matching onto {num_destins} destinations needs "
            f"{capacity + 1}**{num_destins} states; pass bp_iters=... for the Bethe "
            "approximation of log Z (exact draws stay limited to small matchings)"
        )


def exact_prefix_log_weights(logits: torch.Tensor, capacity: int) -> list[torch.Tensor]:
    """``h[s][k]``: log total weight of placing sources ``0 .. s-1`` so destinations fill as ``k``.

    The last layer has one state (all full); its value is ``log Z``.
    """
    num_destins = logits.size(-1)
    h = [logits.new_zeros(1)]
    for s, (prev, valid) in enumerate(_fill_layers(num_destins, capacity)):
        prev_t = torch.as_tensor(prev, device=logits.device)
        valid_t = torch.as_tensor(valid, device=logits.device)
        terms = torch.where(valid_t, h[-1][prev_t] + logits[s], -math.inf)
        h.append(safe_logsumexp(terms, -1))
    return h


def exact_sample(logits: torch.Tensor, capacity: int, num_samples: int) -> torch.Tensor:
    """``num_samples`` exact draws, placing sources from the last to the first."""
    num_sources, num_destins = logits.shape
    logits = logits.detach()
    h = exact_prefix_log_weights(logits, capacity)
    layers = _fill_layers(num_destins, capacity)
    state = torch.zeros(num_samples, dtype=torch.long, device=logits.device)  # the full state
    out = torch.empty(num_samples, num_sources, dtype=torch.long, device=logits.device)
    for s in range(num_sources - 1, -1, -1):
        prev, valid = layers[s]
        prev_t = torch.as_tensor(prev, device=logits.device)[state]
        valid_t = torch.as_tensor(valid, device=logits.device)[state]
        weights = torch.where(valid_t, h[s][prev_t] + logits[s], -math.inf)
        choice = torch.distributions.Categorical(logits=weights).sample()
        out[:, s] = choice
        state = prev_t.gather(-1, choice[:, None]).squeeze(-1)
    return out


def enumerate_matchings(num_destins: int, capacity: int, device=None) -> torch.Tensor:
    """Every matching, one per row, in lexicographic order."""
    rows = np.zeros((1, 0), dtype=np.int64)
    counts = np.zeros((1, num_destins), dtype=np.int64)
    for _ in range(capacity * num_destins):
        new_rows, new_counts = [], []
        for j in range(num_destins):
            ok = counts[:, j] < capacity
            new_rows.append(np.concatenate([rows[ok], np.full((ok.sum(), 1), j)], 1))
            bumped = counts[ok].copy()
            bumped[:, j] += 1
            new_counts.append(bumped)
        rows, counts = np.concatenate(new_rows), np.concatenate(new_counts)
    rows = rows[np.lexsort(rows.T[::-1])]
    return torch.as_tensor(rows, device=device)


# ------------------------------------------------------------------ Bethe approximation
# BP stands in this finite value for "impossible": -inf would turn into NaN in its sums.
_VERY_NEGATIVE = -1e30
# An impossible edge costs this much less than the least likely possible one (a weight ratio of
# e**-50, far below float precision of any sum it enters).
_IMPOSSIBLE_GAP = 50.0


def _floor_impossible(logits: torch.Tensor) -> torch.Tensor:
    finite = torch.isfinite(logits)
    low = logits.detach()[finite].min() if finite.any() else logits.new_tensor(0.0)
    return torch.where(finite, logits, low - _IMPOSSIBLE_GAP)


def _log_e2_others(q: torch.Tensor, e1_others: torch.Tensor) -> torch.Tensor:
    """For every source ``i`` of a column, ``log e2`` of the column's other sources (dim 0).

    ``e2 - q_i * e1_others_i`` loses no precision unless ``q_i`` is one of the two largest
    entries (then ``q_i * e1_others_i`` is at most 3/4 of ``e2``); those two are summed afresh.
    """
    e2 = _log_e2(q, 0)
    top = q.detach().topk(2, dim=0).indices
    ratio = (q + e1_others - e2).clamp(max=math.log(0.999))
    out = e2 + torch.log1p(-ratio.exp())
    for t in range(2):
        is_top = torch.zeros_like(q, dtype=torch.bool).scatter(0, top[t : t + 1], True)
        refreshed = _log_e2(q.masked_fill(is_top, _VERY_NEGATIVE), 0)
        out = torch.where(is_top, refreshed, out)
    return out


def bethe_log_partition(logits: torch.Tensor, capacity: int, bp_iters: int) -> torch.Tensor:
    """The Bethe approximation of ``log Z`` after ``bp_iters`` sweeps of loopy BP.

    The factor graph has one binary variable per edge, one factor per source (exactly one of its
    edges on, weighted ``exp(logits)``) and one per destination (exactly ``capacity`` on).
    Messages are kept as log odds: ``q[s, d]`` from source ``s`` towards destination ``d`` and
    ``r[s, d]`` back. The free energy is then read off the beliefs:
    ``log Z ~ E[logits] + H(sources) + H(destinations) - H(edges)``.
    """
    num_destins = logits.size(-1)
    if num_destins == 1:  # a single destination: the factor graph is a tree, BP is exact
        return logits.sum()
    L = _floor_impossible(logits)
    log_r = torch.zeros_like(L)
    for _ in range(bp_iters):
        log_q = L - logsumexp_others(L + log_r, -1)
        e1_others = logsumexp_others(log_q, 0)
        log_r = -e1_others if capacity == 1 else e1_others - _log_e2_others(log_q, e1_others)
    log_q = L - logsumexp_others(L + log_r, -1)
    # Source beliefs (row-normalised) and the edge marginals they imply.
    a = L + log_r
    norm = safe_logsumexp(a, -1).unsqueeze(-1)
    log_b = a - norm
    log_1mb = logsumexp_others(a, -1) - norm
    b = log_b.exp()
    source_terms = (b * (L - log_b)).sum()
    edge_entropy = -(b * log_b + log_1mb.exp() * log_1mb).sum()
    # Destination beliefs: a set of ``capacity`` sources with probability prop. to prod exp(q).
    if capacity == 1:
        log_norm = safe_logsumexp(log_q, 0)
        log_in = log_q - log_norm
    else:
        e1_others = logsumexp_others(log_q, 0)
        log_norm = _log_e2(log_q, 0)
        log_in = log_q + e1_others - log_norm
    destin_entropy = log_norm.sum() - (log_in.exp() * log_q).sum()
    return source_terms + destin_entropy - edge_entropy


# ------------------------------------------------------------------ the most probable matching
def _min_cost_assignment(cost: np.ndarray) -> np.ndarray:
    """Column of each row in a square assignment of least total ``cost``.

    Shortest augmenting paths with row/column potentials (the Hungarian method in its
    ``O(n^3)`` form); the scan over columns is vectorised.
    """
    n = cost.shape[0]
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    row_of = np.full(n + 1, -1)  # row matched to each column; column n is a scratch column
    way = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        row_of[n] = i
        j0 = n
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = row_of[j0]
            reduced = cost[i0] - u[i0] - v[:n]
            better = ~used[:n] & (reduced < minv[:n])
            minv[:n][better] = reduced[better]
            way[:n][better] = j0
            candidates = np.where(used[:n], np.inf, minv[:n])
            j1 = int(candidates.argmin())
            delta = candidates[j1]
            u[row_of[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if row_of[j0] == -1:
                break
        while j0 != n:  # flip the augmenting path
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    column_of = np.empty(n, dtype=np.int64)
    column_of[row_of[:n]] = np.arange(n)
    return column_of


def max_weight_matching(logits: torch.Tensor, capacity: int) -> torch.Tensor:
    """The matching of largest total logit: an assignment onto ``capacity`` copies of each
    destination."""
    w = logits.detach().cpu().double().numpy()
    finite = np.isfinite(w)
    if finite.any():
        # An impossible edge costs more than any matching of possible ones.
        spread = w[finite].max() - w[finite].min()
        w = np.where(finite, w, w[finite].min() - (spread + 1.0) * w.shape[0])
    cost = -np.repeat(w, capacity, axis=1)
    slots = _min_cost_assignment(cost)
    return torch.as_tensor(slots // capacity, device=logits.device)


def _log_e2(q: torch.Tensor, dim: int) -> torch.Tensor:
    """``log`` of the second elementary symmetric polynomial of ``exp(q)`` along ``dim``.

    Summed as ``sum_k q_k * (sum of the q_l after k)``: positive terms only, so no cancellation.
    """
    after = torch.logcumsumexp(q.flip(dim), dim).flip(dim).narrow(dim, 1, q.size(dim) - 1)
    last = torch.full_like(q.narrow(dim, 0, 1), _VERY_NEGATIVE)
    return safe_logsumexp(q + torch.cat([after, last], dim), dim)


# ------------------------------------------------------------------ the distribution
class MatchingConstraint(constraints.Constraint):
    """Long vectors of ``capacity * N`` destinations in ``0 .. N-1``, each used ``capacity``
    times. ``check`` answers per matching (shape ``value.shape[:-1]``)."""

    is_discrete = True
    event_dim = 1

    def __init__(self, num_destins: int, capacity: int):
        self.num_destins = num_destins
        self.capacity = capacity
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        in_range = ((value >= 0) & (value < self.num_destins)).all(-1)
        counts = torch.nn.functional.one_hot(
            value.long().clamp(0, self.num_destins - 1), self.num_destins
        ).sum(-2)
        return in_range & (counts == self.capacity).all(-1)

    def plain_words(self) -> tuple[str, str]:
        return (
            f"a matching: {self.capacity * self.num_destins} destinations in "
            f"0..{self.num_destins - 1}, each used exactly {self.capacity} time(s)",
            "pass a draw of the distribution, or one row of enumerate_support()",
        )


class CapacityMatching(TorchDistribution):
    """A random matching of ``capacity * N`` sources onto ``N`` destinations, each destination
    receiving exactly ``capacity`` sources; ``log p(v) = sum_s logits[s, v[s]] - log Z``.

    ``log Z`` is exact by default and the Bethe approximation with ``bp_iters`` sweeps of belief
    propagation when ``bp_iters`` is given. Draws are exact whenever the exact computation fits
    (``(capacity + 1) ** N`` fill states), whatever ``bp_iters`` says.
    """

    capacity = 1
    arg_constraints = {"logits": constraints.real}
    has_enumerate_support = True

    def __init__(
        self,
        logits: torch.Tensor,
        *,
        bp_iters: int | None = None,
        validate_args: bool | None = None,
    ):
        name = type(self).__name__
        logits = torch.as_tensor(logits)
        if logits.dim() != 2:
            raise DistributionArgumentError(
                f"{name}: logits must be a matrix (sources x destinations), got shape "
                f"{tuple(logits.shape)}; batches of matchings are not supported, build one "
                f"{name} per matrix"
            )
        num_sources, num_destins = logits.shape
        if num_sources != self.capacity * num_destins or num_destins < 1:
            raise DistributionArgumentError(
                f"{name}: logits of shape {tuple(logits.shape)} need {self.capacity} source "
                f"row(s) per destination column, i.e. shape ({self.capacity} * N, N)"
            )
        if bp_iters is not None and (int(bp_iters) != bp_iters or bp_iters < 1):
            raise DistributionArgumentError(
                f"{name}: bp_iters must be a positive whole number or None, got {bp_iters!r}"
            )
        self.logits = logits
        self.num_destins = num_destins
        self.bp_iters = bp_iters
        super().__init__(event_shape=(num_sources,), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> constraints.Constraint:
        return MatchingConstraint(self.num_destins, self.capacity)

    @property
    def log_partition_function(self) -> torch.Tensor:
        """``log Z``: exact, or the Bethe approximation when ``bp_iters`` is set."""
        if "_log_z" not in self.__dict__:
            if self.bp_iters is None:
                check_exact_size(self.num_destins, self.capacity, "log Z")
                self._log_z = exact_prefix_log_weights(self.logits, self.capacity)[-1][0]
            else:
                self._log_z = bethe_log_partition(self.logits, self.capacity, self.bp_iters)
        return self._log_z

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        rows = torch.arange(value.size(-1), device=value.device)
        return self.logits[rows, value.long()].sum(-1) - self.log_partition_function

    def sample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        check_exact_size(self.num_destins, self.capacity, "draws")
        with torch.no_grad():
            flat = exact_sample(self.logits, self.capacity, sample_shape.numel())
        return flat.reshape(sample_shape + self.event_shape)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """Every matching, one per row (their number grows like ``N!``)."""
        return enumerate_matchings(self.num_destins, self.capacity, self.logits.device)

    def mode(self) -> torch.Tensor:
        """The most probable matching (largest total logit)."""
        return max_weight_matching(self.logits, self.capacity)

    def expand(self, batch_shape, _instance=None):
        if torch.Size(batch_shape) == self.batch_shape:
            return self
        raise DistributionArgumentError(
            f"{type(self).__name__} does not support batches; build one per logits matrix"
        )
