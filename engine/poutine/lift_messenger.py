"""``lift``: turn ``param`` sites into ``sample`` sites drawn from a prior.

This is how a deterministic model with learnable parameters becomes a Bayesian one without editing
it: every param named in ``prior`` (or every param, when ``prior`` is one distribution) is drawn.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.param("w", torch.tensor(0.0))
>>> tr = poutine.trace(poutine.lift(model, prior=dist.Normal(5.0, 1e-3))).get_trace()
>>> tr.nodes["w"]["type"], round(tr.nodes["w"]["value"].item())
('sample', 5)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.runtime import Message, Messenger


class LiftMessenger(Messenger):
    """Replace param sites by sample sites from ``prior`` (a distribution, or a dict of them).

    >>> LiftMessenger(prior={}).prior
    {}
    """

    def __init__(self, prior: Any | dict[str, Any]):
        self.prior = prior

    def _prior_for(self, name: str) -> Callable | None:
        if isinstance(self.prior, dict):
            return self.prior.get(name)
        return self.prior

    def _process_param(self, msg: Message) -> None:
        prior = self._prior_for(msg["name"])
        if prior is None:
            return
        msg["type"] = "sample"
        msg["fn"] = prior
        msg["args"] = ()
        msg["kwargs"] = {}
        msg["infer"] = {}
        msg["value"] = None
        msg["is_observed"] = False
