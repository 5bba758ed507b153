"""``config_enumerate``: mark every discrete latent site of a model or guide for enumeration.

It only fills in ``infer["enumerate"]`` (and ``infer["expand"]``) where the site has a finite
support and says nothing itself; ``TraceEnum_ELBO``, ``infer_discrete`` and ``poutine.enum`` read
the mark. With ``num_samples`` it marks every latent site, discrete or not, to take that many
draws instead (Tensor Monte Carlo, for ``TraceTMC_ELBO``).

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

from engine.errors import ArgumentError, EnumerationError
from engine.poutine.infer_config_messenger import InferConfigMessenger
from engine.runtime import Message, is_subsample_site

STRATEGIES = ("parallel", "sequential")
TMC_STRATEGIES = ("diagonal", "mixture")


def config_enumerate(
    guide: Callable | None = None,
    default: str | None = "parallel",
    expand: bool = False,
    num_samples: int | None = None,
    tmc: str | None = "diagonal",
) -> Any:
    """Mark the discrete latent sites of ``guide`` (a model or a guide) with
    ``infer={"enumerate": default, "expand": expand}``; a site that already says either keeps
    what it says.

    Use it on a function, ``config_enumerate(model)`` or ``config_enumerate(model,
    "sequential")``, or as a decorator, ``@config_enumerate`` or
    ``@config_enumerate(default="sequential")``. ``default`` is ``"parallel"`` (every value at
    once, in a tensor dim of its own), ``"sequential"`` (one value per run of the guide) or
    ``None`` (mark the sites as not enumerated). ``expand=True`` enumerates values expanded to
    the site's full batch shape instead of broadcasting them.

    ``num_samples`` (a positive int) asks for sampled enumeration instead, Tensor Monte Carlo:
    every latent site (discrete or continuous) is marked ``{"enumerate": default,
    "num_samples": num_samples, "expand": expand, "tmc": tmc}`` and takes that many draws in its
    enumeration dim; :class:`~engine.infer.tracetmc_elbo.TraceTMC_ELBO` sums them out.
    ``tmc`` says how a site's draws meet the draws of a sampled site it depends on: draw ``i``
    given draw ``i`` (``"diagonal"``) or given one chosen at random (``"mixture"``). In a
    guide, ``TraceEnum_ELBO`` averages its costs over a sampled site's draws (a Monte Carlo
    estimate); the algorithms that sum a model's sites out exactly (``TraceEnum_ELBO``,
    ``infer_discrete``) refuse sampled model sites, naming them. Sequential enumeration has no
    sampled form, so ``default="sequential"`` with ``num_samples`` is refused here.

    >>> import engine, engine.distributions as dist
    >>> def guide():
    ...     engine.sample("z", dist.Bernoulli(0.5))
    >>> marked = config_enumerate(guide, "sequential", expand=True)
    >>> engine.poutine.trace(marked).get_trace().nodes["z"]["infer"]
    {'enumerate': 'sequential', 'expand': True}
    >>> sampled = config_enumerate(guide, num_samples=3)
    >>> engine.poutine.trace(sampled).get_trace().nodes["z"]["infer"]["num_samples"]
    3
    >>> try:
    ...     config_enumerate(default="flat")
    ... except ArgumentError as error:
    ...     print(str(error)[:40])
    config_enumerate: default='flat'; use 'p
    """
    if guide is not None and not callable(guide):
        raise ArgumentError(
            f"config_enumerate: the first argument is the model or guide to mark, a callable; "
            f"got {type(guide).__name__} {guide!r}. Write config_enumerate(default={guide!r}) "
            "to choose the strategy."
        )
    if default is not None and default not in STRATEGIES:
        raise ArgumentError(
            f"config_enumerate: default={default!r}; use 'parallel' (every value at once, in a "
            "tensor dim), 'sequential' (one value per run of the guide) or None (no "
            "enumeration)."
        )
    if expand not in (True, False):
        raise ArgumentError(f"config_enumerate: expand must be True or False, got {expand!r}.")
    if tmc is not None and tmc not in TMC_STRATEGIES:
        raise ArgumentError(
            f"config_enumerate: tmc={tmc!r}; Tensor Monte Carlo strategies are 'diagonal' and "
            "'mixture'."
        )
    if num_samples is not None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ArgumentError(
                f"config_enumerate: num_samples={num_samples!r}; give a positive int (the number "
                "of draws per site, Tensor Monte Carlo), or None to enumerate supports."
            )
        if default == "sequential":
            raise EnumerationError(
                "config_enumerate(default='sequential', num_samples=...): sampled enumeration "
                "draws every value at once, in a tensor dim; there is no sequential form. Use "
                "default='parallel' with num_samples, or leave num_samples out."
            )

    def config_fn(site: Message) -> dict[str, Any]:
        if site["type"] != "sample" or site["is_observed"] or is_subsample_site(site):
            return {}
        # What the site says itself wins; only what it leaves out is filled in.
        infer = site["infer"]
        if num_samples is not None:
            return {
                "enumerate": infer.get("enumerate", default),
                "num_samples": infer.get("num_samples", num_samples),
                "expand": infer.get("expand", expand),
                "tmc": infer.get("tmc", tmc),
            }
        if not getattr(site["fn"], "has_enumerate_support", False):
            return {}
        return {"enumerate": infer.get("enumerate", default), "expand": infer.get("expand", expand)}

    def configure(fn: Callable) -> Callable:
        return InferConfigMessenger(config_fn)(fn)

    return configure if guide is None else configure(guide)
