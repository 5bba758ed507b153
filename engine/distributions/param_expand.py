"""One ``expand`` for distributions whose state is a few broadcast parameter tensors.

Most of the engine's own distribution families hold nothing but parameters of their batch shape
(plus, for a multivariate family, trailing event dims). Expanding such a distribution is the same
steps each time: a blank instance, every parameter expanded, the base initialised without
re-validating. This module writes those steps once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


def expand_params(
    dist: torch.distributions.Distribution,
    cls: type,
    batch_shape: Sequence[int],
    _instance: Any = None,
    event_dims: Mapping[str, int] | None = None,
    copy: Sequence[str] = (),
) -> Any:
    """A copy of ``dist`` of class ``cls`` whose parameters are expanded to ``batch_shape``.

    The parameters are the keys of ``cls.arg_constraints`` that ``dist`` holds (for a family
    given either ``probs`` or ``logits``, whichever was given); ``event_dims`` names those with
    trailing event dims (a vector ``loc`` has 1), and ``copy`` names plain attributes to carry
    over unchanged.

    >>> import engine.distributions as dist
    >>> d = dist.Logistic(torch.zeros(3), 1.0).expand([2, 3])
    >>> d.batch_shape, d.loc.shape, d.scale.shape
    (torch.Size([2, 3]), torch.Size([2, 3]), torch.Size([2, 3]))
    """
    new = dist._get_checked_instance(cls, _instance)
    batch_shape = torch.Size(batch_shape)
    event_dims = event_dims or {}
    for name in cls.arg_constraints:
        if name not in dist.__dict__:
            continue
        value = getattr(dist, name)
        dims = event_dims.get(name, 0)
        trailing = value.shape[value.dim() - dims :] if dims else torch.Size()
        setattr(new, name, value.expand(batch_shape + trailing))
    for name in copy:
        setattr(new, name, getattr(dist, name))
    torch.distributions.Distribution.__init__(
        new, batch_shape, dist.event_shape, validate_args=False
    )
    new._validate_args = dist._validate_args
    return new
