"""The one move every ELBO, the SVI checks and the Laplace guide share: run the guide, then the
model replayed on the guide's draws, each under ``trace``.

Pyro spreads this over its ELBOs' ``_get_trace``; here it is one function, so a change to how
a guide and a model meet (which errors say who raised them, how a mismatch is reported) happens
in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.infer.model_guide_checks import run_guide, run_model_on_guide
from engine.poutine.handlers import replay, trace
from engine.poutine.trace_struct import Trace


def guide_and_model_traces(
    model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
) -> tuple[Trace, Trace]:
    """Run the guide, then the model replayed on the guide's draws: ``(guide_trace, model_trace)``.

    An engine error says whether the guide or the model raised it, and a model that fails
    after a site where the guide disagrees with it reports that mismatch instead (see
    :func:`~engine.infer.model_guide_checks.run_model_on_guide`).

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("z", dist.Normal(0.0, 1.0))
    >>> g, m = guide_and_model_traces(model, model, (), {})
    >>> bool(g.nodes["z"]["value"] == m.nodes["z"]["value"])
    True
    """
    guide_trace = run_guide(trace(guide), args, kwargs)
    model_trace = run_model_on_guide(
        trace(replay(model, trace=guide_trace)), guide_trace, args, kwargs
    )
    return guide_trace, model_trace
