"""``equalize``: make several sites of a run take one value, the value of the first of them.

Sites are picked by name with regular expressions (each must match the whole name) and by kind
(``"sample"`` or ``"param"``). The first matching site runs as usual; every later one gets its
value. A later sample site becomes a deterministic site of that value (no density of its own, not
a latent a guide must cover), unless ``keep_dist=True``: then it keeps its distribution and is
observed at the first value, which conditions the model on the sites being equal.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return [engine.sample(f"scale_{i}", dist.LogNormal(0.0, 1.0)) for i in range(3)]
>>> tr = poutine.trace(EqualizeMessenger("scale_.*")(model)).get_trace()
>>> first, *rest = tr.nodes["_RETURN"]["value"]
>>> all(value is first for value in rest), tr.stochastic_nodes
(True, ['scale_0'])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from engine.distributions import Delta
from engine.errors import ArgumentError
from engine.runtime import Message, Messenger


class EqualizeMessenger(Messenger):
    """Give every site whose name matches ``sites`` (one pattern or several) and whose kind is
    ``type`` the value of the first such site of the run.

    >>> import engine
    >>> def model():
    ...     return engine.param("a", torch.zeros(1)), engine.param("b", torch.ones(1))
    >>> engine.clear_param_store()
    >>> with EqualizeMessenger(["a", "b"], type="param"):
    ...     a, b = model()
    >>> a is b
    True
    """

    def __init__(
        self, sites: str | Sequence[str], type: str = "sample", keep_dist: bool = False
    ) -> None:
        patterns = [sites] if isinstance(sites, str) else list(sites)
        if not patterns or not all(isinstance(p, str) for p in patterns):
            raise ArgumentError(
                f"equalize(sites={sites!r}): give a site name or regular expression, or a list "
                "of them, e.g. equalize(model, ['x', 'y']) or equalize(model, '.+_scale')."
            )
        if type not in ("sample", "param"):
            raise ArgumentError(f"equalize(type={type!r}): the type is 'sample' or 'param'.")
        self.patterns = [re.compile(p) for p in patterns]
        self.type = type
        self.keep_dist = keep_dist
        self.value: torch.Tensor | None = None

    def __enter__(self) -> EqualizeMessenger:
        self.value = None
        return super().__enter__()

    def _matches(self, msg: Message) -> bool:
        return msg["type"] == self.type and any(p.fullmatch(msg["name"]) for p in self.patterns)

    def _process_message(self, msg: Message) -> None:
        if self.value is None or not self._matches(msg):
            return
        msg["value"] = self.value  # a param given a value is not read from the store
        if msg["type"] == "sample":
            msg["is_observed"] = True
            if not self.keep_dist:
                # As engine.deterministic records a value: a Delta that adds no density.
                msg["fn"] = Delta(self.value, event_dim=msg["fn"].event_dim).mask(False)
                msg["infer"] = {"_deterministic": True}

    def _postprocess_message(self, msg: Message) -> None:
        if self.value is None and self._matches(msg):
            self.value = msg["value"]


__all__ = ["EqualizeMessenger"]
