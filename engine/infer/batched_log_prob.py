"""The total log-density of many sites, with same-family sites scored in one batched op.

A model with 50 scalar ``Normal`` sites pays 50 times for a handful of tiny torch ops, and its
backward pass pays again for every autograd node. When an ELBO only needs the *total*
log-density of a set of sites (every guide site reparameterised), sites of one family with equal
shapes, dtype, device and plain scale are stacked and scored once. The numbers are the same (one
``log_prob`` of stacked parameters is elementwise the same arithmetic); only the op count drops.
A batch that fails validation is scored again site by site, so the error names its site.

Families register how to stack themselves (:func:`register_family`); torch's common continuous
families are registered here, the autoguides register their own site distribution.

>>> import torch, engine.distributions as dist
>>> from engine.runtime import new_message
>>> sites = []
>>> for i in range(3):
...     site = new_message("sample", f"x{i}", dist.Normal(torch.tensor(0.0), 1.0),
...                        value=torch.tensor(float(i)))
...     sites.append(site)
>>> expected = sum(dist.Normal(0.0, 1.0).log_prob(torch.tensor(float(i))) for i in range(3))
>>> bool(torch.isclose(log_prob_total(sites), expected))
True
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

from engine.poutine.trace_struct import compute_site_log_prob
from engine.runtime import Message


@dataclass(frozen=True)
class Family:
    """How to score a stack of sites of one distribution family at once.

    ``key(fn, value)`` returns a hashable group key (sites with equal keys are stacked) or None
    when this site cannot join a batch; ``summed_log_prob(sites)`` returns the summed, unscaled
    log-density of the group.
    """

    key: Callable[[torch.distributions.Distribution, torch.Tensor], Hashable | None]
    summed_log_prob: Callable[[Sequence[Message]], torch.Tensor]


_FAMILIES: dict[type, Family] = {}


def register_family(cls: type, family: Family) -> None:
    """Let sites whose ``fn`` is exactly of type ``cls`` be scored in batches."""
    _FAMILIES[cls] = family


def _shape_key(tensors: Sequence[torch.Tensor]) -> tuple:
    return tuple((t.shape, t.dtype, t.device) for t in tensors)


def parametric_family(cls: type, names: tuple[str, ...]) -> Family:
    """A torch distribution rebuilt from the parameters ``names`` (e.g. Normal's loc, scale)."""

    def key(fn, value):
        params = [getattr(fn, name) for name in names]
        # Stacked along a new leading dim, parameters and values must line up exactly.
        if any(param.shape != value.shape for param in params):
            return None
        return _shape_key([*params, value])

    def summed_log_prob(sites):
        params = [torch.stack([getattr(s["fn"], name) for s in sites]) for name in names]
        values = torch.stack([s["value"] for s in sites])
        return cls(*params).log_prob(values).sum()

    return Family(key, summed_log_prob)


def _independent_key(fn, value):
    base_family = _FAMILIES.get(type(fn.base_dist))
    if base_family is None:
        return None
    base_key = base_family.key(fn.base_dist, value)
    if base_key is None:
        return None
    return (type(fn.base_dist), base_key)


def _independent_total(sites):
    # An Independent's log-density is the sum of its base's over the event dims, and only the
    # total is needed: score the bases as a batch.
    base_sites = [dict(site, fn=site["fn"].base_dist) for site in sites]
    return _FAMILIES[type(base_sites[0]["fn"])].summed_log_prob(base_sites)


def _group_key(site: Message) -> Hashable | None:
    fn, value = site["fn"], site["value"]
    family = _FAMILIES.get(type(fn))
    scale = site["scale"]
    if family is None or site["mask"] is not None or not isinstance(scale, int | float):
        return None
    if not isinstance(value, torch.Tensor) or site["args"] or site["kwargs"]:
        return None
    key = family.key(fn, value)
    return None if key is None else (type(fn), scale, key)


def log_prob_total(sites: Sequence[Message]) -> torch.Tensor:
    """The summed, scaled and masked log-density of ``sites`` (sample-site messages)."""
    groups: dict[Hashable, list[Message]] = {}
    singles: list[Message] = []
    # Compiled code has no per-op Python cost to save, and grouping by shape would tie it to
    # the shapes it was traced with (torch.compile cannot hash a dynamic size).
    compiling = torch.compiler.is_compiling()
    for site in sites:
        key = None if compiling else _group_key(site)
        if key is None:
            singles.append(site)
        else:
            groups.setdefault(key, []).append(site)
    terms = []
    for (cls, scale, _), members in groups.items():
        if len(members) == 1:
            singles.extend(members)
            continue
        try:
            group_total = _FAMILIES[cls].summed_log_prob(members)
        except ValueError:
            singles.extend(members)  # rescored one by one below, so the error names the site
            continue
        terms.append(group_total if scale == 1 else scale * group_total)
    for site in singles:
        if "log_prob_sum" not in site:
            compute_site_log_prob(site)
        terms.append(site["log_prob_sum"])
    if not terms:
        return torch.zeros(())
    return terms[0] if len(terms) == 1 else torch.stack(terms).sum()


def _register_torch_families() -> None:
    import engine.distributions as dist

    location_scale = ("loc", "scale")
    for cls, names in [
        (dist.Normal, location_scale),
        (dist.LogNormal, location_scale),
        (dist.Cauchy, location_scale),
        (dist.Laplace, location_scale),
        (dist.Gumbel, location_scale),
        (dist.HalfNormal, ("scale",)),
        (dist.HalfCauchy, ("scale",)),
        (dist.Exponential, ("rate",)),
        (dist.Gamma, ("concentration", "rate")),
        (dist.Beta, ("concentration1", "concentration0")),
        (dist.StudentT, ("df", "loc", "scale")),
    ]:
        register_family(cls, parametric_family(cls, names))
    register_family(dist.Independent, Family(_independent_key, _independent_total))


_register_torch_families()
