"""``seed``: run with fixed random seeds, then put the generators back as they were.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("x", dist.Normal(0.0, 1.0))
>>> bool(poutine.seed(model, rng_seed=3)() == poutine.seed(model, rng_seed=3)())
True
"""

from __future__ import annotations

from typing import Any

from engine.rng import get_rng_state, set_rng_seed, set_rng_state
from engine.runtime import Messenger


class SeedMessenger(Messenger):
    """Seed torch, ``random`` and NumPy on entry; restore their previous state on exit."""

    def __init__(self, rng_seed: int):
        self.rng_seed = rng_seed
        self._saved: list[dict[str, Any]] = []

    def __enter__(self) -> SeedMessenger:
        self._saved.append(get_rng_state())
        set_rng_seed(self.rng_seed)
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        set_rng_state(self._saved.pop())
        super().__exit__(exc_type, exc_value, traceback)
