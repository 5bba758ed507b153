"""Seeding and saving the random state of every generator a model may use (torch, random, numpy).

>>> set_rng_seed(0)
>>> state = get_rng_state()
>>> import torch
>>> a = torch.rand(1)
>>> set_rng_state(state)
>>> bool(torch.rand(1) == a)
True
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def set_rng_seed(rng_seed: int) -> None:
    """Seed torch, Python's ``random`` and NumPy at once."""
    torch.manual_seed(rng_seed)
    random.seed(rng_seed)
    np.random.seed(rng_seed % 2**32)


def get_rng_state() -> dict[str, Any]:
    """The state of all three generators (CUDA too when it is in use)."""
    state = {
        "torch": torch.get_rng_state(),
        "random": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_state_payload() -> dict[str, Any]:
    """The generators' state as tensors and plain data (loadable with ``weights_only=True``).

    >>> set_rng_seed(1)
    >>> payload = rng_state_payload()
    >>> import torch
    >>> a = torch.rand(1)
    >>> restore_rng_state_payload(payload)
    >>> bool(torch.rand(1) == a)
    True
    """
    state = get_rng_state()
    kind, keys, position, has_gauss, cached = state["numpy"]
    state["numpy"] = [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached]
    state["random"] = list(state["random"])
    return state


def restore_rng_state_payload(payload: dict[str, Any]) -> None:
    """Restore a state written by :func:`rng_state_payload`.

    All or nothing: a malformed payload raises and leaves every generator as it was (the
    generators are set one after another, so a failure part way would otherwise leave some
    moved).

    >>> import torch
    >>> set_rng_seed(5)
    >>> broken = {**rng_state_payload(), "random": [3, [0, 0, 0], None]}  # torch's part is fine
    >>> set_rng_seed(2)
    >>> a = torch.rand(1); set_rng_seed(2)
    >>> restore_rng_state_payload(broken)
    Traceback (most recent call last):
    ...
    ValueError: state vector is the wrong size
    >>> bool(torch.rand(1) == a)  # torch's generator was set, then put back
    True
    """
    before = get_rng_state()
    try:
        kind, keys, position, has_gauss, cached = payload["numpy"]
        version, internal, gauss = payload["random"]
        state = dict(payload)
        state["numpy"] = (kind, keys.numpy().astype(np.uint32), position, has_gauss, cached)
        state["random"] = (version, tuple(internal), gauss)
        set_rng_state(state)
    except BaseException:
        set_rng_state(before)
        raise


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block that draws random numbers without moving the generators' streams.

    Set-up work (an autoguide's first run of the model, guessing plate nesting) uses it, so that a
    run resumed from a saved state draws exactly what the original run drew.

    >>> import torch
    >>> set_rng_seed(0)
    >>> with preserved_rng_state():
    ...     _ = torch.rand(5)
    >>> a = torch.rand(1); set_rng_seed(0)
    >>> bool(torch.rand(1) == a)
    True
    """
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
