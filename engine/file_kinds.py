"""What a file is, when it cannot be loaded as the state file that was asked for.

A failed load says why in the user's terms: the file is empty, cut short, damaged after it was
written, a file of another kind (which one, when its first bytes tell), or a state file of another
kind or version of this project. Everything here reads bytes and plain data only: nothing in the
file is unpickled or run.

>>> format_problem({"format": "pplkernel-svi-state-v1"}, "pplkernel-param-store-1")
'it is an SVI state file, not a param store file; load it with svi.load(path) on an SVI object'
"""

from __future__ import annotations

import os
import pickletools
import re
import zipfile
from typing import Any

import torch

from engine.errors import fmt_shape

# The state files this project writes, by format family (the marker without its version):
# what each holds and how it is loaded.
KINDS: dict[str, tuple[str, str]] = {
    "pplkernel-param-store": ("a param store", "engine.get_param_store().load(path)"),
    "pplkernel-svi-state": ("an SVI state", "svi.load(path) on an SVI object"),
    "pplkernel-optim": ("an optimizer state", "optim.load(path) on an engine.optim optimizer"),
}

_ZIP_MAGIC = b"PK\x03\x04"
# torch.save before torch 1.6 (and with _use_new_zipfile_serialization=False) starts with a
# pickled magic number.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_HEAD_BYTES = 512
_CUT_SHORT = (
    "it is cut short or damaged: the table of contents at the end of this torch file ({size} "
    "bytes) is missing or unreadable, as happens when a copy, a download or a save stops early. "
    "Use a complete copy"
)


def _family(marker: str) -> str | None:
    match = re.fullmatch(r"(pplkernel-[a-z-]+?)-v?\d+", marker)
    return match.group(1) if match else None


def kind_name(marker: str) -> str:
    """What a file with format ``marker`` holds, for messages.

    >>> kind_name("pplkernel-optim-1")
    'an optimizer state'
    """
    family = _family(marker)
    return KINDS[family][0] if family in KINDS else f"a {marker!r} file"


def _list_keys(keys: list[Any], limit: int = 6) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def describe_payload(payload: Any) -> str:
    """Name what ``torch.save`` wrote, for a file that loaded but is not the kind expected.

    >>> describe_payload({"loc": torch.zeros(2)})
    "a dict of tensors (keys 'loc'), as torch.save(module.state_dict()) writes"
    >>> describe_payload(torch.zeros(2, 3))
    'a single tensor of shape (2, 3)'
    """
    if isinstance(payload, torch.Tensor):
        return f"a single tensor of shape {fmt_shape(payload.shape)}"
    if isinstance(payload, dict):
        keys = list(payload)
        if not keys:
            return "an empty dict"
        if {"state", "param_groups"} <= payload.keys():
            return "a torch optimizer's state_dict (torch.save(optimizer.state_dict()) writes one)"
        values = list(payload.values())
        if all(isinstance(v, dict) and {"state", "param_groups"} <= v.keys() for v in values):
            return f"a Pyro optimizer state (one torch state_dict per param: {_list_keys(keys)})"
        if all(isinstance(v, torch.Tensor) for v in values):
            return (
                f"a dict of tensors (keys {_list_keys(keys)}), as "
                "torch.save(module.state_dict()) writes"
            )
        return f"a dict with keys {_list_keys(keys)}"
    if isinstance(payload, list | tuple):
        return f"a {type(payload).__name__} of {len(payload)} items"
    return f"a {type(payload).__name__} ({payload!r:.60})"


def format_problem(payload: Any, expected: str) -> str | None:
    """Why ``payload`` is not a state with format marker ``expected``, or None when it is.

    >>> format_problem({"format": "pplkernel-param-store-2"}, "pplkernel-param-store-1")[:52]
    'it was written by another version of pplkernel (its '
    """
    marker = payload.get("format") if isinstance(payload, dict) else None
    if marker == expected:
        return None
    wanted = kind_name(expected)
    if isinstance(marker, str):
        family = _family(marker)
        if family is not None and family == _family(expected):
            return (
                f"it was written by another version of pplkernel (its format is {marker!r}; this "
                f"version reads {expected!r}). Load it with the version that saved it, or save it "
                "again from there"
            )
        if family in KINDS:
            what, how = KINDS[family]
            return f"it is {what} file, not {wanted} file; load it with {how}"
        return f"its format marker {marker!r} is not one this project writes"
    problem = (
        f"it is {describe_payload(payload)}, not {wanted} file saved by this project (those "
        f"carry the format marker {expected!r})"
    )
    if (
        _family(expected) == "pplkernel-param-store"
        and isinstance(payload, dict)
        and payload
        and all(isinstance(v, torch.Tensor) for v in payload.values())
    ):
        problem += (
            ". To put such tensors in the param store, assign them: "
            "engine.get_param_store()[name] = tensor"
        )
    return problem


def _read_head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(_HEAD_BYTES)


def _as_text(head: bytes) -> str | None:
    """The start of ``head`` as text, if it reads as UTF-8 text without control characters."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        # A multi-byte character cut by the end of the head is still text.
        if len(head) < _HEAD_BYTES or err.start < len(head) - 3:
            return None
        text = head[: err.start].decode("utf-8")
    if not text or not all(c.isprintable() or c in "\t\r\n" for c in text):
        return None
    return text


def _foreign_kind(head: bytes, size: int) -> str | None:
    """Name a file of another program by its first bytes, or None."""
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy file (numpy.save writes those; numpy.load reads them)"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file (as h5py and Keras write)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file (decompress it first)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (as pickle.dump writes)"
    if len(head) >= 10 and head[8:10] == b'{"' and 8 + int.from_bytes(head[:8], "little") <= size:
        return "a safetensors file (safetensors.torch.load_file reads those)"
    text = _as_text(head)
    if text is not None:
        return f"a text file (it begins {text[:40]!r})"
    return None


def _zip_problem(path: str, size: int) -> str | None:
    """What is wrong with a zip file that should be a torch save file, or None if it is whole:
    a torch archive whose table of contents reads and whose every checksum matches."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError):
        return _CUT_SHORT.format(size=size)
    with archive:
        names = archive.namelist()
        if not any(name.endswith("/data.pkl") for name in names):
            if names and all(name.endswith(".npy") for name in names):
                kind = "a NumPy .npz archive (numpy.savez writes those; numpy.load reads them)"
            else:
                kind = f"a zip archive (holding {_list_keys(names, 4)})"
            return f"it is {kind}, not a file torch.save writes"
        for info in archive.infolist():
            # torch's reader takes an entry marked as a folder (MS-DOS attribute 0x10) for one
            # and reads wrong bytes for it without complaint; torch never writes folders.
            if info.external_attr & 0x10 or info.filename.endswith("/"):
                return (
                    f"it is damaged: its table of contents marks {info.filename!r} as a folder, "
                    "which torch never writes. Use another copy"
                )
            # torch.serialization.set_crc32_options(False) writes no checksums (zeros).
            if info.CRC == 0:
                continue
            try:
                with archive.open(info) as member:
                    while member.read(1 << 20):
                        pass
            except zipfile.BadZipFile as err:
                if "CRC" not in str(err):
                    return f"it is damaged: the entry for {info.filename!r} is unreadable ({err})"
                return (
                    f"it is damaged: the bytes of {info.filename!r} inside it no longer match "
                    "their checksum, so the file changed after it was saved (a disk, memory or "
                    "copying fault). Use another copy"
                )
            except (OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as err:
                # A damaged table of contents: offsets past the end, an "encrypted" flag ...
                return f"it is damaged: the entry for {info.filename!r} is unreadable ({err})"
    return None


def checksum_problem(path: str) -> str | None:
    """For a file ``torch.load`` read without complaint: whether its bytes changed after it was
    saved. torch does not check the archive's checksums, so a flipped bit in a tensor would
    otherwise load as a wrong number."""
    if not _read_head(path).startswith(_ZIP_MAGIC):
        return None
    return _zip_problem(path, os.path.getsize(path))


def unreadable_problem(path: str) -> str | None:
    """Why ``torch.load`` could not read ``path``: empty, cut short, damaged, or a file of another
    kind. None when the file is a whole torch file, so the failure lies elsewhere (a bad
    ``map_location``, say) and the caller should let torch's own error through."""
    size = os.path.getsize(path)
    if size == 0:
        return "the file is empty (0 bytes), so nothing was ever saved in it"
    head = _read_head(path)
    if head.startswith(_ZIP_MAGIC):
        return _zip_problem(path, size)
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return (
            f"it is a torch file in the format torch used before version 1.6, and it is cut "
            f"short or damaged ({size} bytes)"
        )
    kind = _foreign_kind(head, size)
    if kind is not None:
        return f"it is {kind}, not a file torch.save writes"
    return f"it is not a file torch.save writes (it begins with the bytes {head[:12]!r})"


def archive_problem(err: BaseException) -> str | None:
    """The damage torch's own error reports in a torch archive that Python's reading of the same
    file did not fault (torch's zip reader checks fields of the table of contents, such as the
    disk numbers, that Python's ignores), or None."""
    found = re.search(r"PytorchStreamReader failed reading zip archive: ([^.]+)", str(err))
    if isinstance(err, RuntimeError) and found:
        return f"it is damaged: torch cannot read its archive ({found.group(1)})"
    return None


def _pickled_strings(path: str) -> set[str]:
    """The strings in a torch archive's pickle, read opcode by opcode (nothing is built)."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            data = archive.read(name)
        return {arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)}
    except (zipfile.BadZipFile, StopIteration, ValueError, EOFError):
        return set()


def refusal_problem(path: str, err: Exception) -> str:
    """Why ``torch.load(path, weights_only=True)`` refused ``path`` (an UnpicklingError): a torch
    file that pickles objects other than tensors and plain data, or no torch file at all."""
    head = _read_head(path)
    if head.startswith(_ZIP_MAGIC):
        damage = _zip_problem(path, os.path.getsize(path))
        if damage is not None:
            return damage
    elif not head.startswith(_LEGACY_TORCH_MAGIC):
        return unreadable_problem(path) or "it is not a file torch.save writes"
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    problem = (
        "it holds objects other than tensors and plain data"
        + (f" (such as {found.group(1)})" if found else "")
        + ", which only a full unpickler could rebuild, running code from the file; this "
        "project's own files never hold such objects"
    )
    if head.startswith(_ZIP_MAGIC) and {"params", "constraints"} <= _pickled_strings(path):
        problem += (
            ". It looks like a Pyro param store (Pyro's ParamStoreDict.save, or "
            "torch.save(pyro.get_param_store().get_state())), whose constraints are pickled "
            "objects. If you trust the file, load it with "
            "engine.get_param_store().set_state(torch.load(path, weights_only=False)) and save "
            "it again with engine.get_param_store().save(path): that file loads safely"
        )
    return problem
