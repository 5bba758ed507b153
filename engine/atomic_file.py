"""Saving and loading state files safely: written atomically (to a temporary file beside the
target, flushed and synced, then renamed over it) and read with ``weights_only=True`` (no code
from the file runs). The param store, the optimizers and SVI save their state through it.
"""

from __future__ import annotations

import os
import pickle
import secrets
from collections.abc import Callable
from typing import Any

import torch


def atomic_torch_save(payload: Any, filename: str | os.PathLike[str]) -> None:
    """``torch.save(payload, filename)``, but a crash never leaves a half-written file.

    >>> import tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "x.pt")
    >>> atomic_torch_save({"a": torch.ones(1)}, path)
    >>> torch.load(path, weights_only=True)
    {'a': tensor([1.])}
    """
    filename = os.fspath(filename)
    directory = os.path.dirname(os.path.abspath(filename))
    temp = os.path.join(directory, f".{os.path.basename(filename)}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never clobber another writer's file; mode 0o666 lets the umask decide, as open() does.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, filename)
    except BaseException:
        # The target is untouched until os.replace; only the temporary file needs removing.
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    if os.name == "posix":
        # Make the rename itself durable across a power loss.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def safe_torch_load(
    filename: str | os.PathLike[str],
    map_location: Any = None,
    what: str = "a state file",
    error: Callable[[str], Exception] = ValueError,
) -> Any:
    """``torch.load`` with ``weights_only=True``; a file holding pickled objects is refused with
    ``error(message)``, a message that says what the file was expected to be.

    >>> import tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "x.pt")
    >>> torch.save({"a": object()}, path)
    >>> safe_torch_load(path, what="a param store")
    Traceback (most recent call last):
    ...
    ValueError: cannot load ... as a param store: ...
    """
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise error(
            f"cannot load {os.fspath(filename)!r} as {what}: it holds objects other than tensors "
            "and plain data, so this project did not write it (Pyro's files pickle objects and "
            f"cannot be loaded safely). torch said: {err}"
        ) from err
