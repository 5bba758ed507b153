"""``lift``: turn ``param`` sites into ``sample`` sites drawn from a prior.

This is how a deterministic model with learnable parameters becomes a Bayesian one without editing
it: every param named in ``prior`` (or every param, when ``prior`` is one distribution) is drawn.
A dict key matches a param's full name, or the part after ``$$$`` for ``module`` parameters
(``{"weight": ...}`` lifts ``"net$$$weight"``). A param read twice in one run is drawn once.

A prior may also be a stochastic function instead of a distribution, as in Pyro: it is called the
way the param was, with the param's initial value first (``prior(init_tensor, constraint,
event_dim=...)``), and returns the draw. Given as the whole ``prior`` (not in a dict), such a
function stands in for the lifted sites, which outer handlers then do not see (its own sample
sites, if any, are what they record); in a dict, the lifted site is recorded with the function as
its ``fn``. With validation on, dict keys that matched no param in a run are warned about.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.param("w", torch.tensor(0.0))
>>> tr = poutine.trace(poutine.lift(model, prior=dist.Normal(5.0, 1e-3))).get_trace()
>>> tr.nodes["w"]["type"], round(tr.nodes["w"]["value"].item())
('sample', 5)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from engine.distributions.validation import is_validation_enabled
from engine.params import user_param_name
from engine.runtime import Message, Messenger


class LiftMessenger(Messenger):
    """Replace param sites by sample sites from ``prior`` (a distribution or stochastic function,
    or a dict of them by param name).

    >>> import torch, engine
    >>> def model():
    ...     return engine.param("w", torch.zeros(2))
    >>> def prior(init, *args, **kwargs):  # a stochastic function: shaped like the param
    ...     return init + 7.0
    >>> with LiftMessenger(prior={"w": prior}):
    ...     model()
    tensor([7., 7.])
    """

    def __init__(self, prior: Any | dict[str, Any]):
        self.prior = prior
        self._draws: dict[str, torch.Tensor] = {}
        self._lifting: set[str] = set()
        self._matched: set[str] = set()

    def __enter__(self) -> LiftMessenger:
        self._draws = {}
        self._matched = set()
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if exc_value is None and isinstance(self.prior, dict) and is_validation_enabled():
            unmatched = sorted(set(self.prior) - self._matched)
            if unmatched:
                warnings.warn(
                    f"lift: the prior names {unmatched}, but the run read no param of that "
                    f"name (it read {sorted(self._draws) or 'none that matched'}). Check the "
                    "keys: a module's params are named 'module$$$attribute' (the key may be "
                    "the part after $$$).",
                    UserWarning,
                    stacklevel=2,
                )
        super().__exit__(exc_type, exc_value, traceback)

    def _prior_for(self, name: str) -> Callable | None:
        if not isinstance(self.prior, dict):
            return self.prior
        key = name if name in self.prior else user_param_name(name)
        found = self.prior.get(key)
        if found is not None:
            self._matched.add(key)
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
        if isinstance(prior, torch.distributions.Distribution):
            msg["args"] = ()
            msg["kwargs"] = {}
        else:
            msg["args"] = msg["args"][1:]  # called as the param was, less its name
            msg["stop"] = not isinstance(self.prior, dict)
        msg["infer"] = {}
        msg["value"] = None
        msg["is_observed"] = False

    def _postprocess_sample(self, msg: Message) -> None:
        if msg["name"] in self._lifting:
            self._lifting.discard(msg["name"])
            self._draws[msg["name"]] = msg["value"]
