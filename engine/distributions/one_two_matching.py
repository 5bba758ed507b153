"""``OneTwoMatching``: a random matching of ``2N`` sources onto ``N`` destinations, two each."""

from __future__ import annotations

from engine.distributions.matching import CapacityMatching


class OneTwoMatching(CapacityMatching):
    """Random matching of ``2N`` sources to ``N`` destinations, each destination taking two.

    A draw ``v`` is a long tensor of shape ``(2N,)`` with values in ``0 .. N-1``, each appearing
    exactly twice, with ``log p(v) = sum_s logits[s, v[s]] - log Z``. (A binary tree's internal
    nodes each have two children: this is the shape of assigning children to parents.) ``log Z``
    is exact by default, costing ``3**N`` states; ``bp_iters=k`` uses ``k`` sweeps of belief
    propagation for the Bethe approximation instead.

    :param logits: a ``(2N, N)`` tensor of edge logits (``-inf`` forbids an edge).
    :param bp_iters: sweeps of belief propagation, or ``None`` for exact computations.

    >>> import torch
    >>> d = OneTwoMatching(torch.zeros(4, 2))
    >>> len(d.enumerate_support())  # 4! / (2! 2!)
    6
    >>> d.log_prob(torch.tensor([0, 1, 1, 0])).exp()
    tensor(0.1667)
    """

    capacity = 2
