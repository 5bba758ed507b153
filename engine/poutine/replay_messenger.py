"""``replay``: re-use the values a previous trace drew (a guide's, typically) at same-named sites.

Observed sites keep their data. Param sites are replayed only when ``params`` is given.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("z", dist.Normal(0.0, 1.0))
>>> tr = poutine.trace(model).get_trace()
>>> bool(poutine.replay(model, trace=tr)() == tr.nodes["z"]["value"])
True
"""

from __future__ import annotations

from typing import Any

from engine.errors import ReplayError
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, Messenger


class ReplayMessenger(Messenger):
    """Take latent sample values from ``trace`` and param values from ``params``.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     return engine.sample("x", dist.Normal(0.0, 1.0))
    >>> earlier = engine.poutine.trace(model).get_trace()
    >>> with ReplayMessenger(trace=earlier):
    ...     again = model()
    >>> bool(again == earlier.nodes["x"]["value"])  # the recorded draw, not a new one
    True
    """

    def __init__(self, trace: Trace | None = None, params: dict[str, Any] | None = None):
        if trace is None and params is None:
            raise ValueError("replay needs a trace or params to replay")
        self.trace = trace
        self.params = params

    def _process_sample(self, msg: Message) -> None:
        if self.trace is None or msg["is_observed"]:
            return
        replayed = self.trace.nodes.get(msg["name"])
        if replayed is None:
            return
        if replayed["type"] != "sample" or replayed["is_observed"]:
            kind = "observed sample" if replayed["type"] == "sample" else replayed["type"]
            raise ReplayError(
                f"Cannot replay site '{msg['name']}': in the replayed trace it is a {kind} site, "
                "but here it is a latent sample site. Rename one of them, or remove the "
                "observation from the trace being replayed."
            )
        msg["value"] = replayed["value"]
        msg["infer"] = replayed["infer"]
        msg["done"] = True

    def _process_param(self, msg: Message) -> None:
        if self.params is None:
            return
        replayed = self.params.get(msg["name"])
        if replayed is not None:
            msg["value"] = replayed["value"] if isinstance(replayed, dict) else replayed
            msg["done"] = True
