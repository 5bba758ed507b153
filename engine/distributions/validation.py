"""The switch for distribution validation.

There is one source of truth: torch's own class-level default
(``torch.distributions.Distribution._validate_args``), because torch's ``__init__`` and
``log_prob`` read it. Engine code asks :func:`is_validation_enabled` instead of keeping a copy that
could drift out of sync with it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class _ThreadState(threading.local):
    trusted = False


_THREAD = _ThreadState()


def enable_validation(is_validate: bool = True) -> None:
    """Turn checking of distribution arguments and of scored values on or off (on by default).

    Validation costs a little time per distribution built; turn it off once a model works.

    >>> enable_validation(False); is_validation_enabled()
    False
    >>> enable_validation(True); is_validation_enabled()
    True
    """
    torch.distributions.Distribution.set_default_validate_args(bool(is_validate))


def is_validation_enabled() -> bool:
    """Whether distributions built from now on (in this thread) check their arguments.

    >>> isinstance(is_validation_enabled(), bool)
    True
    """
    return bool(torch.distributions.Distribution._validate_args) and not _THREAD.trusted


def structure_checks_enabled() -> bool:
    """Whether the checks decided by shapes and names alone (model/guide site matching, batch
    dims against plates) run: they follow :func:`enable_validation`, also inside
    :func:`trusted_run`, which only waives the checks of values.

    >>> with trusted_run():
    ...     structure_checks_enabled(), is_validation_enabled()
    (True, False)
    """
    return bool(torch.distributions.Distribution._validate_args)


def in_trusted_run() -> bool:
    """Whether this thread runs inside :func:`trusted_run` (engine distributions skip checks)."""
    return _THREAD.trusted


@contextmanager
def trusted_run() -> Iterator[None]:
    """Skip argument and value checks of engine distributions in this thread only (unlike
    :func:`enable_validation`, which is global). SVI uses it to re-run a failed step and find the
    first NaN, where an invalid argument must show up as the NaN it causes instead of raising;
    the compiled ELBOs run their compiled code in it (compiled code cannot raise on a value).

    >>> import engine.distributions as dist
    >>> with trusted_run():
    ...     dist.Normal(0.0, -1.0).scale  # no error: the caller vouches for the arguments
    tensor(-1.)
    """
    previous = _THREAD.trusted
    _THREAD.trusted = True
    try:
        yield
    finally:
        _THREAD.trusted = previous


@contextmanager
def validation_enabled(is_validate: bool = True) -> Iterator[None]:
    """Context manager that sets validation for its body and restores the previous setting.

    >>> with validation_enabled(False):
    ...     is_validation_enabled()
    False
    """
    old = is_validation_enabled()
    enable_validation(is_validate)
    try:
        yield
    finally:
        enable_validation(old)
