"""``config_enumerate``: mark every discrete latent site of a model or guide for enumeration.

It only fills in ``infer["enumerate"]`` (and ``infer["expand"]``) where the site has a finite
support and says nothing itself; ``TraceEnum_ELBO``, ``infer_discrete`` and ``poutine.enum`` read
the mark.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> @config_enumerate
... def model():
...     engine.sample("z", dist.Bernoulli(0.5))
...     engine.sample("x", dist.Normal(0.0, 1.0))
>>> tr = poutine.trace(model).get_trace()
>>> tr.nodes["z"]["infer"], tr.nodes["x"]["infer"]
({'enumerate': 'parallel', 'expand': False}, {})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.poutine.infer_config_messenger import InferConfigMessenger
from engine.runtime import Message

STRATEGIES = ("parallel", "sequential")


def config_enumerate(
    guide: Callable | None = None, default: str = "parallel", expand: bool = False
) -> Any:
    """Mark the discrete latent sites of ``guide`` (a model or a guide) with
    ``infer={"enumerate": default}``; usable as ``@config_enumerate`` or
    ``@config_enumerate(default="sequential")``. ``expand=True`` enumerates values expanded to
    the site's full batch shape instead of broadcasting them.

    >>> config_enumerate(default="sequential")  # doctest: +ELLIPSIS
    <function config_enumerate.<locals>.configure at ...>
    """
    if default not in STRATEGIES:
        raise ValueError(
            f"config_enumerate: default={default!r}; use 'parallel' (every value at once, in a "
            "tensor dim) or 'sequential' (one value per run of the guide)."
        )

    def config_fn(site: Message) -> dict[str, Any]:
        if site["type"] != "sample" or site["is_observed"] or "enumerate" in site["infer"]:
            return {}
        if not getattr(site["fn"], "has_enumerate_support", False):
            return {}
        return {"enumerate": default, "expand": expand}

    def configure(fn: Callable) -> Callable:
        return InferConfigMessenger(config_fn)(fn)

    return configure if guide is None else configure(guide)
