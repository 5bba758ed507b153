"""Helpers shared by the inference algorithms: plate nesting and vectorised particles.

>>> import engine, engine.distributions as dist
>>> def model():
...     with engine.plate("data", 3):
...         return engine.sample("x", dist.Normal(0.0, 1.0))
>>> vectorize(model, 5, max_plate_nesting=1)().shape
torch.Size([5, 3])
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from engine.poutine.handlers import replay, trace
from engine.poutine.plate_messenger import PlateMessenger
from engine.poutine.trace_struct import Trace


def max_plate_nesting_of(*traces: Trace) -> int:
    """How many batch dims the vectorised plates of these traces use (0 without plates)."""
    deepest = 0
    for tr in traces:
        for site in tr.nodes.values():
            if site["type"] != "sample":
                continue
            for frame in site["cond_indep_stack"]:
                if frame.vectorized:
                    deepest = max(deepest, -frame.dim)
    return deepest


def guide_and_model_traces(
    model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
) -> tuple[Trace, Trace]:
    """Run the guide, then the model replayed on the guide's draws: ``(guide_trace, model_trace)``.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("z", dist.Normal(0.0, 1.0))
    >>> g, m = guide_and_model_traces(model, model, (), {})
    >>> bool(g.nodes["z"]["value"] == m.nodes["z"]["value"])
    True
    """
    guide_trace = trace(guide).get_trace(*args, **kwargs)
    model_trace = trace(replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    return guide_trace, model_trace


def guess_max_plate_nesting(
    model: Callable, guide: Callable | None, args: tuple, kwargs: dict[str, Any]
) -> int:
    """Run the guide and the model once and read off their deepest plate dim."""
    if guide is None:
        return max_plate_nesting_of(trace(model).get_trace(*args, **kwargs))
    return max_plate_nesting_of(*guide_and_model_traces(model, guide, args, kwargs))


def vectorize(
    fn: Callable, num: int, max_plate_nesting: int, name: str = "_num_particles_vectorized"
) -> Callable:
    """Run ``fn`` under a plate of size ``num`` left of its own plates (``dim=-max-1``), so that
    every site gets ``num`` independent draws along that dim."""

    @functools.wraps(fn)
    def vectorized(*args: Any, **kwargs: Any) -> Any:
        with PlateMessenger(name, num, dim=-max_plate_nesting - 1):
            return fn(*args, **kwargs)

    return vectorized
