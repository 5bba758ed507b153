"""``trace``: record every site of a run into a :class:`~engine.poutine.trace_struct.Trace`.

Besides recording, the trace guards the run: a plate name used with two sizes is an error, and any
error raised while recording leaves with the shape table of the sites seen so far, because that
table is what a user needs to find a shape bug, and with the user's line and the culprit site
(:mod:`engine.poutine.error_context`).

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("z", dist.Normal(0.0, 1.0))
>>> tr = poutine.trace(model).get_trace()
>>> list(tr.nodes)
['_INPUT', 'z', '_RETURN']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.errors import PlateError, describe_plates
from engine.poutine.error_context import annotate_error
from engine.poutine.plate_messenger import is_unfilled_whole_plate
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, Messenger


class TraceMessenger(Messenger):
    """Record sample and param sites (only params with ``param_only=True``).

    >>> import engine, engine.distributions as dist
    >>> with TraceMessenger() as tracer:
    ...     x = engine.sample("x", dist.Normal(0.0, 1.0))
    ...     _ = engine.sample("y", dist.Normal(x, 1.0), obs=0.5)
    >>> list(tracer.trace.nodes), bool(tracer.trace.nodes["x"]["value"] == x)
    (['x', 'y'], True)
    >>> tracer.trace.nodes["y"]["is_observed"]
    True
    """

    def __init__(self, graph_type: str | None = None, param_only: bool = False):
        self.graph_type = graph_type or "flat"
        self.param_only = param_only
        self.trace = Trace(self.graph_type)  # checks the graph type
        self._plate_sizes: dict[str, tuple[int | None, str]] = {}

    def __enter__(self) -> TraceMessenger:
        self.trace = Trace(self.graph_type)
        self._plate_sizes = {}
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if exc_value is not None:
            annotate_error(exc_value, self.trace, traceback)
        elif self.param_only:
            # The handler's _INPUT and _RETURN nodes go too: a param-only trace is all params.
            for name, site in list(self.trace.nodes.items()):
                if site["type"] != "param":
                    self.trace.remove_node(name)
        elif self.graph_type == "dense":
            self.trace.add_dense_edges()
        super().__exit__(exc_type, exc_value, traceback)

    def _reset(self) -> None:
        """Forget the sites of a run left by an escape (``NonlocalExit.reset_stack``), keeping
        the run's ``_INPUT`` node: the next run records afresh."""
        fresh = Trace(self.graph_type)
        if "_INPUT" in self.trace.nodes:
            fresh.add_node("_INPUT", **self.trace.nodes["_INPUT"])
        self.trace = fresh
        self._plate_sizes = {}

    def __call__(self, fn: Callable) -> TraceHandler:
        return TraceHandler(self, fn)

    def get_trace(self) -> Trace:
        return self.trace

    def _postprocess_sample(self, msg: Message) -> None:
        # A whole plate's index site is recorded only when a handler gave it a mini-batch.
        if not self.param_only and not is_unfilled_whole_plate(msg):
            self._check_plate_sizes(msg)
            self.trace.add_node(msg["name"], **msg)

    def _postprocess_param(self, msg: Message) -> None:
        self.trace.add_node(msg["name"], **msg)

    def _check_plate_sizes(self, msg: Message) -> None:
        for frame in msg["cond_indep_stack"]:
            size = frame.full_size if frame.full_size is not None else frame.size
            seen = self._plate_sizes.get(frame.name)
            if seen is None:
                self._plate_sizes[frame.name] = (size, msg["name"])
            elif seen[0] != size:
                raise PlateError(
                    f"Plate '{frame.name}' is used with two sizes in one run: size {seen[0]} "
                    f"at site '{seen[1]}', size {size} at site '{msg['name']}' "
                    f"({describe_plates(msg['cond_indep_stack'])}). One plate name means one "
                    "independence axis with one size: give the second plate its own name."
                )


class TraceHandler:
    """A function wrapped by ``trace``: calling it runs the function and keeps its trace, with
    the ``_INPUT`` and ``_RETURN`` nodes added (except in a param-only trace).

    >>> import torch, engine
    >>> def model():
    ...     engine.param("w", torch.ones(2))
    ...     engine.sample("z", engine.distributions.Normal(0.0, 1.0))
    >>> list(TraceHandler(TraceMessenger(param_only=True), model).get_trace().nodes)
    ['w']
    """

    def __init__(self, messenger: TraceMessenger, fn: Callable):
        self.msngr = messenger
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.msngr:
            self.msngr.trace.add_node(
                "_INPUT", name="_INPUT", type="args", args=args, kwargs=kwargs
            )
            value = self.fn(*args, **kwargs)
            self.msngr.trace.add_node("_RETURN", name="_RETURN", type="return", value=value)
        return value

    @property
    def trace(self) -> Trace:
        return self.msngr.trace

    def get_trace(self, *args: Any, **kwargs: Any) -> Trace:
        """Run the function once with these arguments and return its trace."""
        self(*args, **kwargs)
        return self.msngr.trace


__all__ = ["TraceHandler", "TraceMessenger"]
