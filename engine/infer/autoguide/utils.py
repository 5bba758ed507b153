"""Helpers around autoguides (Pyro's ``pyro.infer.autoguide.utils``): ``mean_field_entropy``.

>>> import torch, engine, engine.distributions as dist
>>> def guide():
...     engine.sample("z", dist.Normal(0.0, 1.0))
>>> round(float(mean_field_entropy(guide, ())), 4)  # 0.5 * log(2 pi e)
1.4189
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch

from engine.poutine.handlers import trace
from engine.runtime import is_subsample_site

__all__ = ["mean_field_entropy"]


def mean_field_entropy(
    model: Callable, args: tuple, whitelist: Collection[str] | None = None
) -> torch.Tensor | float:
    """The entropy of one run of ``model(*args)`` when its sample sites are independent: the sum
    of every site's own entropy (only the sites named in ``whitelist``, when given; plates'
    mini-batch sites never count). Each entropy keeps its batch shape, so a batched site gives
    one entropy per element.

    >>> import torch, engine, engine.distributions as dist
    >>> def guide():
    ...     engine.sample("a", dist.Bernoulli(torch.tensor([0.5, 0.5])))
    ...     engine.sample("b", dist.Bernoulli(torch.tensor([0.5, 0.5])))
    >>> mean_field_entropy(guide, (), whitelist=["a"])  # log 2 per element
    tensor([0.6931, 0.6931])
    """
    run = trace(model).get_trace(*args)
    total: torch.Tensor | float = 0.0
    for name, site in run.nodes.items():
        if site["type"] != "sample" or is_subsample_site(site):
            continue
        if whitelist is None or name in whitelist:
            total = total + site["fn"].entropy()
    return total
