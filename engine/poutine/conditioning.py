"""Handlers that fix the value of sites: ``condition``, ``do``, ``substitute``, ``uncondition``.

- ``condition`` observes a sample site: the value is data, and its density counts.
- ``do`` intervenes: downstream code sees the value, but the site is not evidence; the natural
  draw (with its density) is still recorded under the site's name, for counterfactuals.
- ``substitute`` replaces the value of a sample or param site; a substituted sample site stays
  latent and its density counts.
- ``uncondition`` turns observed sites back into latent ones that are sampled.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("x", dist.Normal(0.0, 1.0))
>>> poutine.condition(model, data={"x": torch.tensor(3.0)})()
tensor(3.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.poutine.trace_struct import Trace
from engine.runtime import Message, Messenger, is_subsample_site


def _site_values(data: dict[str, Any] | Trace) -> dict[str, Any]:
    if isinstance(data, Trace):
        return {
            name: site["value"]
            for name, site in data.nodes.items()
            if site["type"] == "sample" and not is_subsample_site(site)
        }
    return data


class ConditionMessenger(Messenger):
    """Observe the sample sites named in ``data`` (a dict of values, or a trace).

    >>> import torch, engine, engine.distributions as dist
    >>> with engine.poutine.trace() as tracer, ConditionMessenger({"x": torch.tensor(1.0)}):
    ...     x = engine.sample("x", dist.Normal(0.0, 1.0))
    >>> x.item(), tracer.trace.nodes["x"]["is_observed"]  # observed at 1.0: scored, not drawn
    (1.0, True)
    """

    def __init__(self, data: dict[str, Any] | Trace):
        self.data = _site_values(data)

    def _process_sample(self, msg: Message) -> None:
        if is_subsample_site(msg):
            return  # a plate's mini-batch indices, named after the plate, are never data
        value = self.data.get(msg["name"])
        if value is not None:
            msg["value"] = value
            msg["is_observed"] = True


class DoMessenger(Messenger):
    """Intervene on the sample sites named in ``data``: fix their value without evidence.

    The site is still drawn from its distribution and recorded under its name by the handlers
    outside (for counterfactual reasoning); the code after the site, and the handlers inside,
    see the intervention value.

    >>> import torch, engine, engine.distributions as dist
    >>> with engine.poutine.trace() as tracer, DoMessenger({"x": torch.tensor(1.0)}):
    ...     x = engine.sample("x", dist.Normal(0.0, 1.0))
    >>> site = tracer.trace.nodes["x"]  # outside: drawn as ever, not observed
    >>> x.item(), site["is_observed"], bool(site["value"] != 1.0)
    (1.0, False, True)
    """

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def _postprocess_sample(self, msg: Message) -> None:
        if is_subsample_site(msg):
            return
        intervention = self.data.get(msg["name"])
        if intervention is not None:
            msg["value"] = intervention


class SubstituteMessenger(Messenger):
    """Replace the values of sample and param sites from ``data`` or ``substitute_fn(site)``.

    >>> import torch
    >>> import engine
    >>> with SubstituteMessenger(data={"w": torch.ones(2)}):
    ...     w = engine.param("w", torch.zeros(2))
    >>> w.tolist(), "w" in engine.get_param_store()  # the given value; the store is untouched
    ([1.0, 1.0], False)
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        substitute_fn: Callable[[Message], Any] | None = None,
    ):
        self.data = {} if data is None else data
        self.substitute_fn = substitute_fn

    def _value_for(self, msg: Message) -> Any:
        value = self.data.get(msg["name"])
        if value is None and self.substitute_fn is not None:
            value = self.substitute_fn(msg)
        return value

    def _process_sample(self, msg: Message) -> None:
        value = self._value_for(msg)
        if value is not None:
            msg["value"] = value
            msg["done"] = True

    _process_param = _process_sample


class UnconditionMessenger(Messenger):
    """Sample observed sites instead of observing them (the data is kept in ``infer["obs"]``).

    >>> import torch, engine, engine.distributions as dist
    >>> with engine.poutine.trace() as tracer, UnconditionMessenger():
    ...     y = engine.sample("y", dist.Normal(0.0, 1.0), obs=torch.tensor(5.0))
    >>> tracer.trace.nodes["y"]["is_observed"], bool(y != 5.0)  # drawn instead of observed
    (False, True)
    """

    def _process_sample(self, msg: Message) -> None:
        if msg["is_observed"] and not msg["infer"].get("_deterministic", False):
            msg["infer"] = {**msg["infer"], "was_observed": True, "obs": msg["value"]}
            msg["is_observed"] = False
            msg["value"] = None
            msg["done"] = False
