"""``OneOneMatching``: a random perfect matching (a permutation) weighted by edge logits."""

from __future__ import annotations

from engine.distributions.matching import CapacityMatching


class OneOneMatching(CapacityMatching):
    """Random perfect matching of ``N`` sources to ``N`` destinations, one to one.

    A draw ``v`` is a long tensor of shape ``(N,)``, a permutation of ``0 .. N-1`` (source ``s``
    goes to ``v[s]``), with ``log p(v) = sum_s logits[s, v[s]] - log Z``. ``log Z`` (the log
    permanent of ``exp(logits)``) is exact by default, costing ``2**N`` states; ``bp_iters=k``
    uses ``k`` sweeps of belief propagation for the Bethe approximation instead. ``mode()`` solves
    the assignment problem for any ``N``.

    :param logits: an ``(N, N)`` tensor of edge logits (``-inf`` forbids an edge).
    :param bp_iters: sweeps of belief propagation, or ``None`` for exact computations.

    >>> import torch
    >>> d = OneOneMatching(torch.tensor([[0.0, 2.0], [2.0, 0.0]]))
    >>> d.enumerate_support()
    tensor([[0, 1],
            [1, 0]])
    >>> d.log_prob(torch.tensor([1, 0])).exp()  # e^4 / (e^0 + e^4)
    tensor(0.9820)
    >>> d.mode()
    tensor([1, 0])
    """

    capacity = 1
