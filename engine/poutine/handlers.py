"""The handler functions users call: ``poutine.trace(fn)``, ``poutine.condition(fn, data)``, ...

Each one builds its messenger; given a function it returns the wrapped function, given none it
returns the messenger, to use as ``with poutine.X(...):`` or as a decorator ``@poutine.X(...)``.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> @poutine.scale(scale=0.5)
... def model():
...     engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
>>> round(poutine.trace(model).get_trace().log_prob_sum().item(), 4)
-0.4595
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import torch

from engine.poutine.block_messenger import (
    BlockMessenger,
    EscapeMessenger,
    NonlocalExit,
    SitePredicate,
)
from engine.poutine.broadcast_messenger import BroadcastMessenger
from engine.poutine.conditioning import (
    ConditionMessenger,
    DoMessenger,
    SubstituteMessenger,
    UnconditionMessenger,
)
from engine.poutine.enum_messenger import EnumMessenger
from engine.poutine.equalize_messenger import EqualizeMessenger
from engine.poutine.infer_config_messenger import InferConfigMessenger
from engine.poutine.lift_messenger import LiftMessenger
from engine.poutine.markov_messenger import MarkovMessenger
from engine.poutine.reparam_messenger import ReparamConfig, ReparamMessenger
from engine.poutine.replay_messenger import ReplayMessenger
from engine.poutine.seed_messenger import SeedMessenger
from engine.poutine.trace_messenger import TraceHandler, TraceMessenger
from engine.poutine.trace_struct import Trace
from engine.poutine.util import discrete_escape, enum_extend
from engine.poutine.weighting import MaskMessenger, ScaleMessenger
from engine.runtime import Messenger


def _apply(messenger: Messenger, fn: Callable | None) -> Any:
    return messenger if fn is None else messenger(fn)


def trace(
    fn: Callable | None = None, graph_type: str | None = None, param_only: bool = False
) -> TraceHandler | TraceMessenger:
    """Record the sites of ``fn``; ``trace(fn).get_trace(*args)`` returns a :class:`Trace`."""
    return _apply(TraceMessenger(graph_type=graph_type, param_only=param_only), fn)


def replay(
    fn: Callable | None = None,
    trace: Trace | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """Re-use latent values from ``trace`` (and param values from ``params``) by site name."""
    return _apply(ReplayMessenger(trace=trace, params=params), fn)


def condition(fn: Callable | None = None, data: dict[str, Any] | Trace | None = None) -> Any:
    """Observe the sites named in ``data`` with the given values."""
    return _apply(ConditionMessenger(data if data is not None else {}), fn)


def do(fn: Callable | None = None, data: dict[str, Any] | None = None) -> Any:
    """Intervene: fix the sites named in ``data`` without treating them as evidence."""
    return _apply(DoMessenger(data if data is not None else {}), fn)


def substitute(
    fn: Callable | None = None,
    data: dict[str, Any] | None = None,
    substitute_fn: Callable | None = None,
) -> Any:
    """Replace the values of sample and param sites (from ``data`` or ``substitute_fn(site)``)."""
    return _apply(SubstituteMessenger(data=data, substitute_fn=substitute_fn), fn)


def uncondition(fn: Callable | None = None) -> Any:
    """Sample the observed sites instead of observing them."""
    return _apply(UnconditionMessenger(), fn)


def block(
    fn: Callable | None = None,
    hide_fn: SitePredicate | None = None,
    expose_fn: SitePredicate | None = None,
    hide_all: bool = True,
    expose_all: bool = False,
    hide: Iterable[str] | None = None,
    expose: Iterable[str] | None = None,
    hide_types: Iterable[str] | None = None,
    expose_types: Iterable[str] | None = None,
) -> Any:
    """Hide sites from the handlers outside (all of them unless told which)."""
    messenger = BlockMessenger(
        hide_fn=hide_fn,
        expose_fn=expose_fn,
        hide_all=hide_all,
        expose_all=expose_all,
        hide=hide,
        expose=expose,
        hide_types=hide_types,
        expose_types=expose_types,
    )
    return _apply(messenger, fn)


def escape(fn: Callable | None = None, escape_fn: SitePredicate | None = None) -> Any:
    """Abort the run with ``NonlocalExit`` at the first site where ``escape_fn(site)`` holds."""
    if escape_fn is None:
        raise ValueError("escape needs an escape_fn")
    return _apply(EscapeMessenger(escape_fn), fn)


def seed(fn: Callable | None = None, rng_seed: int = 0) -> Any:
    """Run with fixed seeds for torch, ``random`` and NumPy, restoring their state afterwards."""
    return _apply(SeedMessenger(rng_seed), fn)


def scale(fn: Callable | None = None, scale: float | torch.Tensor = 1.0) -> Any:
    """Multiply the log density of every sample site by ``scale``."""
    return _apply(ScaleMessenger(scale), fn)


def mask(fn: Callable | None = None, mask: bool | torch.Tensor = True) -> Any:
    """Keep sample sites' log densities only where ``mask`` is True."""
    return _apply(MaskMessenger(mask), fn)


def lift(fn: Callable | None = None, prior: Any = None) -> Any:
    """Turn param sites into sample sites drawn from ``prior``."""
    if prior is None:
        raise ValueError("lift needs a prior: a distribution or a dict of them by param name")
    return _apply(LiftMessenger(prior), fn)


def equalize(
    fn: Callable | None = None,
    sites: str | Sequence[str] | None = None,
    type: str = "sample",
    keep_dist: bool = False,
) -> Any:
    """Give the sites matching ``sites`` (names or regular expressions) the first one's value."""
    if sites is None:
        raise ValueError("equalize needs sites: a name or regular expression, or a list of them")
    return _apply(EqualizeMessenger(sites, type=type, keep_dist=keep_dist), fn)


def infer_config(fn: Callable | None = None, config_fn: Callable | None = None) -> Any:
    """Merge ``config_fn(site)`` into every sample and param site's ``infer`` dict."""
    if config_fn is None:
        raise ValueError("infer_config needs a config_fn")
    return _apply(InferConfigMessenger(config_fn), fn)


def broadcast(fn: Callable | None = None) -> Any:
    """Expand every sample site to the full shape of its plates (plates already do this)."""
    return _apply(BroadcastMessenger(), fn)


def reparam(fn: Callable | None = None, config: ReparamConfig | None = None) -> Any:
    """Rewrite the sample sites ``config`` covers with reparameterizers (``config``: a dict
    ``{site name: reparameterizer}`` or a function ``site -> reparameterizer or None``)."""
    if config is None:
        raise TypeError(
            "poutine.reparam needs config=: a dict {site name: reparameterizer} or a function "
            "site -> reparameterizer or None (e.g. config={'theta': LocScaleReparam(0.0)})."
        )
    return _apply(ReparamMessenger(config), fn)


def enum(fn: Callable | None = None, first_available_dim: int | None = None) -> Any:
    """Enumerate the sites marked ``infer={"enumerate": "parallel"}`` in their own dims, from
    ``first_available_dim`` (``-max_plate_nesting - 1``) leftwards.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     return engine.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
    >>> enum(model, first_available_dim=-1)()
    tensor([0., 1.])
    """
    return _apply(EnumMessenger(first_available_dim), fn)


def markov(
    fn: Callable | Iterable | None = None,
    history: int = 1,
    keep: bool = False,
    dim: int | None = None,
    name: str | None = None,
) -> Any:
    """Mark Markov steps: as ``with markov():``, as a decorator, or ``for t in markov(range(T))``.

    >>> [t for t in markov(range(3))]
    [0, 1, 2]
    """
    messenger = MarkovMessenger(history=history, keep=keep, dim=dim, name=name)
    if fn is None:
        return messenger
    if callable(fn):
        return messenger(fn)
    return _markov_steps(messenger, fn)


def _markov_steps(messenger: MarkovMessenger, steps: Iterable) -> Iterator:
    for step in steps:
        with messenger:
            yield step


class _TraceQueue(Protocol):
    def get(self) -> Trace: ...
    def put(self, item: Trace) -> None: ...
    def empty(self) -> bool: ...


def queue(
    fn: Callable | None = None,
    queue: _TraceQueue | None = None,
    max_tries: int | None = None,
    extend_fn: Callable[..., list[Trace]] | None = None,
    escape_fn: Callable[[Trace, dict], bool] | None = None,
    num_samples: int | None = None,
) -> Any:
    """Sequential enumeration: each call of the wrapped ``fn`` takes a partial trace from
    ``queue`` (anything with ``get``, ``put`` and ``empty``, such as ``queue.Queue``), replays
    it, and runs on until ``escape_fn(partial_trace, site)`` (default
    :func:`~engine.poutine.util.discrete_escape`: a discrete latent site not in the partial
    trace) stops it at a new site. Then ``extend_fn(partial_trace, site, num_samples=...)``
    (default :func:`~engine.poutine.util.enum_extend`: one trace per value of the site) puts
    the longer partial traces back into the queue and the next one is tried, up to
    ``max_tries`` (default a million) times. The first run that reaches the end returns.

    Put an empty ``Trace()`` in the queue first; keep calling (``trace(queue(fn, q))``) while
    the queue is not empty to visit every execution of a model with discrete choices.

    >>> import queue as queues, torch, engine as pyro, engine.distributions as dist
    >>> def coin():
    ...     return pyro.sample("c", dist.Bernoulli(0.3))
    >>> q = queues.Queue()
    >>> q.put(Trace())
    >>> runs = trace(queue(coin, queue=q))
    >>> seen = []
    >>> while not q.empty():
    ...     seen.append(runs.get_trace().nodes["c"]["value"].item())
    >>> seen
    [0.0, 1.0]
    """
    if queue is None:
        raise ValueError("poutine.queue needs a queue of partial traces (put a Trace() in it)")
    tries = int(1e6) if max_tries is None else max_tries
    extend = enum_extend if extend_fn is None else extend_fn
    stop_at = discrete_escape if escape_fn is None else escape_fn

    def wrapper(wrapped: Callable) -> Callable:
        @functools.wraps(wrapped)
        def run_next(*args: Any, **kwargs: Any) -> Any:
            for _ in range(tries):
                if queue.empty():
                    raise ValueError(
                        "poutine.queue: the queue of partial traces is empty, so no run is "
                        "left to try (put a Trace() in it before the first call, and stop "
                        "calling once it is empty)."
                    )
                partial = queue.get()
                recorder = trace(
                    escape(
                        replay(wrapped, trace=partial),
                        escape_fn=functools.partial(stop_at, partial),
                    )
                )
                try:
                    return recorder(*args, **kwargs)
                except NonlocalExit as exit:
                    exit.reset_stack()
                    for extended in extend(
                        recorder.trace.copy(), exit.site, num_samples=num_samples
                    ):
                        queue.put(extended)
            raise ValueError(f"poutine.queue: max_tries ({tries}) exceeded")

        return run_next

    return wrapper(fn) if fn is not None else wrapper
