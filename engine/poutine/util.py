"""Pyro's ``pyro.poutine.util``: small predicates on trace sites and the helpers of sequential
enumeration (``poutine.queue``): extending a partial trace by one site.

Pyro's Bayesian-regression tutorial uses :func:`prune_subsample_sites` to drop a plate's
mini-batch index sites from a trace before reading its latent values.

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     with pyro.plate("data", 100, subsample_size=10):
...         pyro.sample("x", dist.Normal(0.0, 1.0))
>>> tr = poutine.trace(model).get_trace()
>>> sample_sites = lambda tr: [n for n, site in tr.nodes.items() if site["type"] == "sample"]
>>> sample_sites(tr), sample_sites(prune_subsample_sites(tr))
(['data', 'x'], ['x'])
"""

from __future__ import annotations

from engine.distributions.unit import Unit
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, is_subsample_site


def site_is_subsample(site: Message) -> bool:
    """Whether ``site`` holds a plate's mini-batch indices (not a random variable).

    >>> import engine as pyro
    >>> from engine import poutine
    >>> def model():
    ...     with pyro.plate("data", 10, subsample_size=3):
    ...         pass
    >>> site_is_subsample(poutine.trace(model).get_trace().nodes["data"])
    True
    """
    return is_subsample_site(site)


def site_is_factor(site: Message) -> bool:
    """Whether ``site`` was made by ``pyro.factor`` (a log-density term with no value).

    >>> import torch, engine as pyro
    >>> from engine import poutine
    >>> tr = poutine.trace(lambda: pyro.factor("f", torch.tensor(-1.0))).get_trace()
    >>> site_is_factor(tr.nodes["f"])
    True
    """
    return site["type"] == "sample" and isinstance(site["fn"], Unit)


def prune_subsample_sites(trace: Trace) -> Trace:
    """A copy of ``trace`` without its subsample sites (the trace itself is left as it is)."""
    pruned = trace.copy()
    for name, site in trace.nodes.items():
        if site_is_subsample(site):
            pruned.remove_node(name)
    return pruned


def _extended(trace: Trace, msg: Message, value: object) -> Trace:
    site = dict(msg, value=value)
    # The escape that stopped the run at this site left its exit in the message; a site
    # recorded in a trace has run to the end.
    site["continuation"] = None
    extended = trace.copy()
    extended.add_node(msg["name"], **site)
    return extended


def enum_extend(trace: Trace, msg: Message, num_samples: int | None = None) -> list[Trace]:
    """Copies of the partial ``trace``, one per value in the support of ``msg``'s distribution,
    each with the site ``msg`` added holding that value (at most ``num_samples`` copies when
    given). Exact enumeration of a discrete site, one run per value.

    >>> import torch, engine.distributions as dist
    >>> from engine.runtime import new_message
    >>> msg = new_message("sample", "z", dist.Categorical(torch.ones(3)))
    >>> [tr.nodes["z"]["value"].item() for tr in enum_extend(Trace(), msg)]
    [0, 1, 2]
    >>> len(enum_extend(Trace(), msg, num_samples=2))
    2
    """
    support = msg["fn"].enumerate_support()
    if num_samples is not None:
        support = support[:num_samples]
    return [_extended(trace, msg, value) for value in support]


def mc_extend(trace: Trace, msg: Message, num_samples: int | None = None) -> list[Trace]:
    """``num_samples`` (default 1) copies of the partial ``trace``, each with the site ``msg``
    added holding a fresh draw from its distribution: Monte Carlo in place of enumeration.

    >>> import engine.distributions as dist
    >>> from engine.runtime import new_message
    >>> msg = new_message("sample", "x", dist.Normal(0.0, 1.0))
    >>> extended = mc_extend(Trace(), msg, num_samples=3)
    >>> len(extended), all("x" in tr for tr in extended)
    (3, True)
    """
    count = 1 if num_samples is None else num_samples
    return [_extended(trace, msg, msg["fn"](*msg["args"], **msg["kwargs"])) for _ in range(count)]


def discrete_escape(trace: Trace, msg: Message) -> bool:
    """Whether ``msg`` is a latent sample site with an enumerable (discrete) support that
    ``trace`` does not hold yet: where sequential enumeration stops a run to branch.

    >>> import engine.distributions as dist
    >>> from engine.runtime import new_message
    >>> discrete_escape(Trace(), new_message("sample", "z", dist.Bernoulli(0.5)))
    True
    >>> discrete_escape(Trace(), new_message("sample", "x", dist.Normal(0.0, 1.0)))
    False
    """
    return all_escape(trace, msg) and bool(getattr(msg["fn"], "has_enumerate_support", False))


def all_escape(trace: Trace, msg: Message) -> bool:
    """Whether ``msg`` is a latent, named sample site that ``trace`` does not hold yet.

    >>> import engine.distributions as dist
    >>> from engine.runtime import new_message
    >>> all_escape(Trace(), new_message("sample", "x", dist.Normal(0.0, 1.0)))
    True
    """
    return (
        msg["type"] == "sample"
        and not msg["is_observed"]
        and msg["name"] is not None
        and msg["name"] not in trace
    )


__all__ = [
    "all_escape",
    "discrete_escape",
    "enum_extend",
    "mc_extend",
    "prune_subsample_sites",
    "site_is_factor",
    "site_is_subsample",
]
