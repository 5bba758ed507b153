"""``infer_config``: add inference hints to sites' ``infer`` dicts from a function of the site.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     engine.sample("z", dist.Bernoulli(0.5))
>>> configured = poutine.infer_config(model, config_fn=lambda site: {"enumerate": "parallel"})
>>> poutine.trace(configured).get_trace().nodes["z"]["infer"]
{'enumerate': 'parallel'}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.runtime import Message, Messenger


class InferConfigMessenger(Messenger):
    """Merge ``config_fn(site)`` into the ``infer`` dict of each sample and param site."""

    def __init__(self, config_fn: Callable[[Message], dict[str, Any]]):
        self.config_fn = config_fn

    def _process_sample(self, msg: Message) -> None:
        msg["infer"] = {**msg["infer"], **self.config_fn(msg)}

    _process_param = _process_sample
