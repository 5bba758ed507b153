"""``lift``: turn ``param`` sites into ``sample`` sites drawn from a prior.

This is how a deterministic model with learnable parameters becomes a Bayesian one without editing
it: every param named in ``prior`` (or every param, when ``prior`` is one distribution) is drawn.
A dict key matches a param's full name, or the part after ``$$$`` for ``module`` parameters
(``{"weight": ...}`` lifts ``"net$$$weight"``). A param read twice in one run is drawn once.

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

import torch

from engine.runtime import Message, Messenger


class LiftMessenger(Messenger):
    """Replace param sites by sample sites from ``prior`` (a distribution, or a dict of them).

    >>> LiftMessenger(prior={}).prior
    {}
    """

    def __init__(self, prior: Any | dict[str, Any]):
        self.prior = prior
        self._draws: dict[str, torch.Tensor] = {}
        self._lifting: set[str] = set()

    def __enter__(self) -> LiftMessenger:
        self._draws = {}
        return super().__enter__()

    def _prior_for(self, name: str) -> Callable | None:
        if not isinstance(self.prior, dict):
            return self.prior
        found = self.prior.get(name)
        if found is None and "$$$" in name:
            found = self.prior.get(name.rsplit("$$$", 1)[1])
        return found

    def _process_param(self, msg: Message) -> None:
        name = msg["name"]
        if name in self._draws:
            # A second read of a lifted param sees the first draw, as a second read of a param
            # sees the same value; it is not a new random variable.
            msg["value"] = self._draws[name]
            msg["done"] = True
            msg["stop"] = True
            return
        prior = self._prior_for(name)
        if prior is None:
            return
        self._lifting.add(name)
        msg["type"] = "sample"
        msg["fn"] = prior
        msg["args"] = ()
        msg["kwargs"] = {}
        msg["infer"] = {}
        msg["value"] = None
        msg["is_observed"] = False

    def _postprocess_sample(self, msg: Message) -> None:
        if msg["name"] in self._lifting:
            self._lifting.discard(msg["name"])
            self._draws[msg["name"]] = msg["value"]
