"""Saving and loading state files safely. The param store, the optimizers and SVI save through it.

A save is atomic: written to a temporary file beside the target, flushed and synced, then renamed
over it, so a crash or a full disk never leaves a half-written file and the old one stays as it
was. A load uses ``weights_only=True`` (no code from the file runs), checks the archive's checksums
and the format marker, and says what is wrong in plain words when it cannot be used.

Every failure is a :class:`~engine.errors.StateFileError` naming the file the user asked for
(never the temporary one): a :class:`~engine.errors.StateFileAccessError` (an ``OSError``) when the
file system refuses, a :class:`~engine.errors.StateFileContentError` (a ``ValueError``) when the
file holds something unusable.
"""

from __future__ import annotations

import errno
import os
import pickle
import secrets
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from engine.errors import (
    StateFileAccessError,
    StateFileContentError,
    StateFileError,
    StateFileNotFoundError,
    did_you_mean,
    fmt_shape,
)
from engine.file_kinds import (
    archive_problem,
    checksum_problem,
    format_problem,
    kind_name,
    refusal_problem,
    unreadable_problem,
)

_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)


class _WriteRecorder:
    """The file object ``torch.save`` writes to. It keeps the ``OSError`` of a failed write, which
    torch's archive writer turns into a ``RuntimeError`` ("enforce fail at inline_container.cc")
    that no longer says the disk was full."""

    def __init__(self, file: Any):
        self._file = file
        self.failure: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except OSError as err:
            self.failure = err
            raise

    def flush(self) -> None:
        self._file.flush()


def _reason(err: OSError) -> str:
    if err.errno is not None:
        return os.strerror(err.errno).lower()
    return str(err) or type(err).__name__


def _save_error(
    path: str, what: str, err: OSError, stage: str, existed: bool
) -> StateFileAccessError:
    """The error for a save that failed at ``stage`` ("create", "write" or "replace")."""
    folder = os.path.dirname(path) or "."
    reason, code = _reason(err), err.errno
    error_class = StateFileAccessError
    if code in _DISK_FULL:
        problem = f"the disk is full ({reason})"
        fix = "Free some space, or save somewhere else."
    elif stage == "create" and code == errno.ENOENT:
        problem = f"the folder {folder!r} does not exist"
        fix = f"Create it first: os.makedirs({folder!r}, exist_ok=True)."
        error_class = StateFileNotFoundError
    elif stage == "create" and code == errno.ENOTDIR:
        problem = f"part of the folder path {folder!r} is a file, not a folder"
        fix = "Check the path."
    elif stage == "create" and code in _NOT_ALLOWED:
        problem = f"the folder {folder!r} is not writable ({reason})"
        fix = "Save into a folder you can write to."
    elif stage == "replace":
        problem = f"the new file could not take the place of the old one ({reason})"
        fix = "Check who owns the old file, or save under another name."
    else:
        problem = f"{'creating' if stage == 'create' else 'writing'} the file failed ({reason})"
        fix = "Check the disk, or save somewhere else."
    kept = "The file already there is unchanged" if existed else "Nothing was written"
    return error_class(
        f"cannot save {what} to {path!r}: {problem}. {kept} and no partial copy is left. {fix}",
        path,
        code,
    )


def atomic_torch_save(
    payload: Any, filename: str | os.PathLike[str], what: str = "the state"
) -> None:
    """``torch.save(payload, filename)``, but a crash never leaves a half-written file, and a
    failure is a :class:`StateFileAccessError` naming ``filename`` and saying why (``what`` names
    the thing saved, e.g. ``"the param store"``). Errors that are not the file system's
    (an object torch cannot save) pass through unchanged; the old file is kept either way.

    >>> import tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "x.pt")
    >>> atomic_torch_save({"a": torch.ones(1)}, path)
    >>> torch.load(path, weights_only=True)
    {'a': tensor([1.])}
    """
    path = os.fspath(filename)
    if os.path.isdir(path):
        raise StateFileAccessError(
            f"cannot save {what} to {path!r}: it is a folder. Name a file inside it, e.g. "
            f"{os.path.join(path, 'state.pt')!r}.",
            path,
            errno.EISDIR,
        )
    existed = os.path.exists(path)
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never clobber another writer's file; mode 0o666 lets the umask decide, as open() does.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(temp, flags, 0o666)
    except OSError as err:
        # `from None`: the chained error would name the temporary file, which means nothing to
        # the user (it stays reachable as __context__).
        raise _save_error(path, what, err, "create", existed) from None
    recorder = None
    stage = "write"
    try:
        with os.fdopen(fd, "wb") as f:
            recorder = _WriteRecorder(f)
            torch.save(payload, recorder)
            f.flush()
            os.fsync(f.fileno())
        stage = "replace"
        os.replace(temp, path)
    except BaseException as err:
        # The target is untouched until os.replace; only the temporary file needs removing.
        if os.path.exists(temp):
            os.unlink(temp)
        failure = err if isinstance(err, OSError) else recorder and recorder.failure
        if not failure:
            raise
        raise _save_error(path, what, failure, stage, existed) from None
    if os.name == "posix":
        # Make the rename itself durable across a power loss.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _missing_file_problem(path: str) -> str:
    """Why ``path`` is not there, ending with a close match among the files beside it."""
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        return f"the folder {folder!r} does not exist."
    problem = "there is no such file"
    if not os.path.isabs(path):
        problem += f" (relative paths start in the current folder, {os.getcwd()!r})"
    try:
        names = os.listdir(folder or ".")
    except OSError:
        names = []
    return problem + "." + did_you_mean(os.path.basename(path), names)


def _load_access_error(path: str, what: str, err: OSError) -> StateFileAccessError:
    code = err.errno
    error_class = StateFileAccessError
    if code == errno.ENOENT:
        problem = _missing_file_problem(path)
        error_class = StateFileNotFoundError
    elif code == errno.EISDIR or os.path.isdir(path):
        problem = "it is a folder, not a file"
        try:
            inside = sorted(n for n in os.listdir(path) if n.endswith((".pt", ".pth")))
        except OSError:
            inside = []
        if inside:
            problem += f" (it holds {', '.join(inside[:5])})"
    elif code in _NOT_ALLOWED:
        problem = f"you may not read it ({_reason(err)})"
    else:
        problem = f"it could not be read ({_reason(err)})"
    if not problem.endswith((".", "?")):
        problem += "."
    return error_class(f"cannot load {path!r} as {what}: {problem}", path, code)


def _content_error(path: str, what: str, problem: str) -> StateFileContentError:
    return StateFileContentError(
        f"cannot load {path!r} as {what}: {problem}. Nothing was loaded; what is in memory is "
        "unchanged.",
        path,
    )


def _load_failure(path: str, what: str, err: Exception) -> StateFileError | None:
    """The error to raise for ``torch.load(path)`` having raised ``err``; None when the file
    turns out whole, so the failure lies elsewhere (a bad ``map_location``, say) and torch's own
    error says it best."""
    if not os.path.isfile(path):
        return _load_access_error(path, what, err) if isinstance(err, OSError) else None
    if isinstance(err, pickle.UnpicklingError):
        return _content_error(path, what, refusal_problem(path, err))
    # torch fails on damaged input in many ways (EOFError, RuntimeError, KeyError, OSError ...):
    # the file itself is examined to say what is wrong with it.
    problem = unreadable_problem(path) or archive_problem(err)
    if problem is not None:
        return _content_error(path, what, problem)
    return _load_access_error(path, what, err) if isinstance(err, OSError) else None


def load_state_file(
    filename: str | os.PathLike[str], expected_format: str, map_location: Any = None
) -> dict[str, Any]:
    """Read a state file saved by :func:`atomic_torch_save` whose format marker is
    ``expected_format``; ``map_location`` as in ``torch.load``.

    Raises :class:`StateFileNotFoundError` / :class:`StateFileAccessError` when the file cannot
    be read, and :class:`StateFileContentError` when it is empty, cut short, damaged, holds pickled
    objects (refused: unpickling them would run code from the file), or is a file of another kind
    or version, each naming ``filename`` and what is wrong.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.pt")
    >>> torch.save({"a": object()}, path)
    >>> load_state_file(path, "pplkernel-param-store-1")
    Traceback (most recent call last):
    ...
    engine.errors.StateFileContentError: cannot load ... as a param store: it holds objects ...
    """
    path = os.fspath(filename)
    what = kind_name(expected_format)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        failure = _load_failure(path, what, err)
        if failure is None:
            raise
        # `from None`: torch's own message is long, internal, and suggests weights_only=False.
        raise failure from None
    problem = checksum_problem(path) or format_problem(payload, expected_format)
    if problem is not None:
        raise _content_error(path, what, problem)
    return payload


def require_entries(
    payload: Mapping[str, Any], entries: Mapping[str, type], path: str, expected_format: str
) -> None:
    """Check that a loaded state holds each of ``entries`` (name -> type), or raise a
    :class:`StateFileContentError` naming ``path`` and the first missing or mistyped entry.

    >>> require_entries({"format": "pplkernel-optim-1"}, {"state": dict}, "o.pt",
    ...                 "pplkernel-optim-1")
    Traceback (most recent call last):
    ...
    engine.errors.StateFileContentError: cannot load 'o.pt' as an optimizer state: it lacks ...
    """
    for name, kind in entries.items():
        if name not in payload:
            problem = f"it lacks its {name!r} entry"
        elif not isinstance(payload[name], kind):
            problem = (
                f"its {name!r} entry is a {type(payload[name]).__name__} where a "
                f"{kind.__name__} belongs"
            )
        else:
            continue
        raise _content_error(
            path,
            kind_name(expected_format),
            f"{problem}, so it was edited or written by other code",
        )


def content_error(path: str, expected_format: str, problem: str) -> StateFileContentError:
    """The error for a state file whose contents do not fit what they are loaded into (a
    constraint that cannot be read, an optimizer state for other params, ...)."""
    return _content_error(path, kind_name(expected_format), problem)


def warn_replaced_shapes(
    current: Mapping[str, torch.Tensor], loaded: Mapping[str, Any], path: str
) -> None:
    """Warn when loading ``path`` replaces tensors in memory with ones of another shape.

    Loading replaces same-named params, as in Pyro, so this is allowed; but it is rarely meant: a
    model or guide still written for the old shapes then fails or broadcasts wrongly.

    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_replaced_shapes({"w": torch.zeros(2)}, {"w": torch.zeros(3)}, "p.pt")
    >>> str(caught[0].message)[:60]
    "loading 'p.pt' replaces param 'w' of shape (2,) with one of "
    """
    changed: Iterable[str] = [
        f"param {name!r} of shape {fmt_shape(current[name].shape)} with one of shape "
        f"{fmt_shape(value.shape)}"
        for name, value in loaded.items()
        if name in current
        and isinstance(value, torch.Tensor)
        and value.shape != current[name].shape
    ]
    if changed:
        warnings.warn(
            f"loading {path!r} replaces {'; '.join(changed)}. A model or guide written for the "
            "old shapes will fail or broadcast wrongly: is the file from another model?",
            stacklevel=3,
        )
