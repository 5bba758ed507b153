"""Helpers shared by the inference algorithms: plate nesting and vectorised particles.

>>> import engine, engine.distributions as dist
>>> def model():
...     with engine.plate("data", 3):
...         return engine.sample("x", dist.Normal(0.0, 1.0))
>>> vectorize(model, 5, max_plate_nesting=1, name="draws")().shape
torch.Size([5, 3])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from engine.errors import PlateError
from engine.infer.guide_then_model import guide_and_model_traces
from engine.poutine.enum_messenger import EnumMessenger
from engine.poutine.handlers import trace
from engine.poutine.plate_messenger import PlateMessenger
from engine.poutine.trace_struct import Trace, log_prob_shape
from engine.runtime import Message, wraps


def values_by_site_name(values: dict[str, Any]) -> tuple[Any, ...]:
    """A dict of site values as a tuple ordered by site name: the form of ``call`` (Pyro's
    tuple-returning twin of a guide's or ``Predictive``'s ``__call__``, which tracers such as
    ``torch.jit.trace_module`` accept as an output).

    >>> values_by_site_name({"b": 2, "a": 1})
    (1, 2)
    """
    return tuple(values[name] for name in sorted(values))


def max_plate_nesting_of(*traces: Trace) -> int:
    """How many batch dims the sites of these traces use: their vectorised plates' dims, and
    any dim of size above 1 that a site's log-density has outside its plates (``Normal(mu, 1)``
    observing 50 points without a plate), so that the dims an inference adds on the left
    (particles, chains, enumeration) never land on data (0 without either).

    >>> import torch, engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(50, 1))
    >>> max_plate_nesting_of(trace(model).get_trace())
    2
    """
    deepest = 0
    for tr in traces:
        for site in tr.nodes.values():
            if site["type"] != "sample":
                continue
            for frame in site["cond_indep_stack"]:
                if frame.vectorized:
                    deepest = max(deepest, -frame.dim)
            shape = log_prob_shape(site) or ()
            wide = [len(shape) - position for position, size in enumerate(shape) if size > 1]
            deepest = max([deepest, *wide])
    return deepest


def sum_except_plate(values: torch.Tensor, site: Message, plate_name: str) -> torch.Tensor:
    """Sum a site's per-element ``values`` over every dim right of the vectorised plate
    ``plate_name`` (vectorised particles, MCMC chains), keeping that dim; over every dim when the
    site is outside that plate.

    >>> import torch, engine, engine.distributions as dist
    >>> from engine.poutine.handlers import trace
    >>> def model():
    ...     with PlateMessenger("chains", 4, dim=-2), engine.plate("data", 3):
    ...         engine.sample("x", dist.Normal(0.0, 1.0))
    >>> site = trace(model).get_trace().nodes["x"]
    >>> sum_except_plate(torch.ones(4, 3), site, "chains")
    tensor([3., 3., 3., 3.])
    """
    for frame in site["cond_indep_stack"]:
        if frame.name == plate_name:
            start = values.dim() + frame.dim + 1
            return values if start >= values.dim() else values.flatten(start_dim=start).sum(-1)
    return values.sum()


def guess_max_plate_nesting(
    model: Callable, guide: Callable | None, args: tuple, kwargs: dict[str, Any]
) -> int:
    """Run the guide and the model once and read off their deepest plate dim."""
    if guide is None:
        return max_plate_nesting_of(trace(model).get_trace(*args, **kwargs))
    return max_plate_nesting_of(*guide_and_model_traces(model, guide, args, kwargs))


def vectorize(
    fn: Callable,
    num: int,
    max_plate_nesting: int,
    name: str,
) -> Callable:
    """Run ``fn`` under a plate named ``name`` of size ``num`` left of its own plates
    (``dim=-max-1``), so that every site gets ``num`` independent draws along that dim. Each
    caller names its own plate (the ELBOs' is :data:`engine.infer.elbo.PARTICLE_PLATE`).

    A plate of ``fn`` that asks for that dim means ``max_plate_nesting`` was set too low; the
    error says so rather than blaming the plate.

    >>> import engine, engine.distributions as dist
    >>> def deep():
    ...     with engine.plate("rows", 2, dim=-2):
    ...         engine.sample("x", dist.Normal(0.0, 1.0))
    >>> try:
    ...     vectorize(deep, 5, max_plate_nesting=1, name="draws")()
    ... except PlateError as error:
    ...     print(error.message[:60])
    max_plate_nesting=1 is too small: plate 'rows' (size 2) asks
    """

    @wraps(fn)
    def vectorized(*args: Any, **kwargs: Any) -> Any:
        dim = -max_plate_nesting - 1
        with PlateMessenger(name, num, dim=dim):
            try:
                return fn(*args, **kwargs)
            except PlateError as error:
                if getattr(error, "holder", None) == name:
                    error.message = _nesting_too_small(error, max_plate_nesting, num)
                raise

    return vectorized


def _nesting_too_small(error: PlateError, max_plate_nesting: int, num: int) -> str:
    """The message of a model plate that clashed with the vectorising plate."""
    dim = -max_plate_nesting - 1
    return (
        f"max_plate_nesting={max_plate_nesting} is too small: plate {error.asking} asks for dim "
        f"{dim}, where the {num} vectorised draws go, since max_plate_nesting={max_plate_nesting} "
        f"leaves the model's plates only the {max_plate_nesting} rightmost dim(s). Fix: "
        f"max_plate_nesting={max_plate_nesting + 1} or more (as many as the model and guide nest "
        "plates), or leave max_plate_nesting out to have it read off the model."
    )


def inspection_trace(fn: Callable, args: tuple, kwargs: dict[str, Any]) -> Trace:
    """One run of ``fn`` to look at: when sites are marked for parallel enumeration they hold
    all their values, in the dims TraceEnum_ELBO would give them.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
    >>> inspection_trace(model, (), {}).nodes["z"]["value"]
    tensor([0., 1.])
    """
    plain = trace(fn).get_trace(*args, **kwargs)
    marked = any(site["infer"].get("enumerate") == "parallel" for _, site in plain.sample_sites())
    if not marked:
        return plain
    first_dim = -max_plate_nesting_of(plain) - 1
    return trace(EnumMessenger(first_dim)(fn)).get_trace(*args, **kwargs)


def plate_position(site: Message, plate_name: str) -> int:
    """Where the vectorised plate ``plate_name`` puts its dim in ``site``'s value, counted from
    the left (the plate's ``dim`` counts from the right of the batch shape, left of the event
    dims). The ELBOs' vectorised particles (:data:`engine.infer.elbo.PARTICLE_PLATE`) are found
    this way.

    >>> import engine, engine.distributions as dist
    >>> from engine.poutine.handlers import trace
    >>> def model():
    ...     with PlateMessenger("draws", 4, dim=-2), engine.plate("data", 3):
    ...         engine.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    >>> site = trace(model).get_trace().nodes["x"]
    >>> site["value"].shape, plate_position(site, "draws")
    (torch.Size([4, 3, 2]), 0)
    """
    value = site["value"]
    event_dim = len(getattr(site["fn"], "event_shape", ()))
    for frame in site["cond_indep_stack"]:
        if frame.name == plate_name:
            return value.dim() - event_dim + frame.dim
    raise PlateError(
        f"Site {site['name']!r} is outside the plate {plate_name!r} that should hold every "
        "site of this run."
    )
