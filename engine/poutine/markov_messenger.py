"""``markov``: declare that each step of a loop depends only on the last ``history`` steps.

Each entry of the handler (one loop step) opens a new step; every sample site inside is stamped
with ``infer["_markov_scope"]``, the names of the sites in the current step and the ``history``
steps before it, the only sites it may depend on. Enumeration reads that scope to recycle tensor
dims, so a chain of T discrete states costs O(T), not O(K^T). With ``keep=True`` no step ever
leaves the window.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def chain():
...     x = 0.0
...     for t in engine.markov(range(3)):
...         x = engine.sample(f"x_{t}", dist.Normal(x, 1.0))
>>> sorted(poutine.trace(chain).get_trace().nodes["x_2"]["infer"]["_markov_scope"])
['x_1']
"""

from __future__ import annotations

from collections import deque

from engine.runtime import Message, Messenger, is_subsample_site


class MarkovMessenger(Messenger):
    """One step of a Markov loop per entry; see the module docstring.

    >>> m = MarkovMessenger(history=2)
    >>> with m:
    ...     pass
    >>> len(m._steps)
    1
    """

    def __init__(self, history: int = 1, keep: bool = False, dim: int | None = None, name=None):
        if history < 0:
            raise ValueError(f"markov history must be >= 0, got {history}")
        self.history = history
        self.keep = keep
        self.dim = dim
        self.name = name
        self._steps: deque[list[str]] = deque(maxlen=None if keep else history + 1)

    def __enter__(self) -> MarkovMessenger:
        self._steps.append([])
        return super().__enter__()

    def _process_sample(self, msg: Message) -> None:
        scope = frozenset(name for step in self._steps for name in step)
        msg["infer"] = {**msg["infer"], "_markov_scope": scope}

    def _postprocess_sample(self, msg: Message) -> None:
        if not is_subsample_site(msg):
            self._steps[-1].append(msg["name"])
