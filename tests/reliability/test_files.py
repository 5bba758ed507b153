"""Damaged, foreign and unwritable state files: the param store's, SVI's and the optimizers'.

Each case asserts the exception type, that the message names the user's file (never the
temporary one a save writes first) and what is wrong with it, and that nothing changed: the files
on disk keep their bytes, and the params, the optimizer, the SVI step count and the random
generators in memory are as they were.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.distributions import constraints

import engine as pyro
import engine.distributions as dist
from engine.errors import (
    StateFileAccessError,
    StateFileContentError,
    StateFileError,
    StateFileNotFoundError,
)
from engine.infer import SVI, Trace_ELBO
from engine.optim import Adam, OptimError
from engine.params import ParamStoreDict


def model():
    pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))


def guide():
    loc = pyro.param("loc", torch.zeros(2))
    scale = pyro.param("scale", torch.ones(2), constraint=constraints.positive)
    pyro.sample("z", dist.Normal(loc, scale).to_event(1))


@dataclass
class World:
    """A trained SVI run with its three files saved in ``folder``."""

    svi: SVI
    folder: Path

    @property
    def params_file(self) -> Path:
        return self.folder / "params.pt"

    @property
    def svi_file(self) -> Path:
        return self.folder / "svi.pt"

    @property
    def optim_file(self) -> Path:
        return self.folder / "optim.pt"


@pytest.fixture
def world(tmp_path: Path) -> World:
    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    svi.run(3)
    folder = tmp_path / "run"
    folder.mkdir()
    made = World(svi, folder)
    pyro.get_param_store().save(made.params_file)
    svi.save(made.svi_file)
    svi.optim.save(made.optim_file)
    return made


# -- what "nothing changed" means --------------------------------------------------------------


def snapshot(world: World) -> dict[str, Any]:
    store = pyro.get_param_store()
    state = store.get_state()
    return {
        "values": {name: value.detach().clone() for name, value in store.items()},
        "leaves": {name: leaf.detach().clone() for name, leaf in state["params"].items()},
        "constraints": dict(state["constraints"]),
        "step": world.svi.step_count,
        "optim": world.svi.optim.get_state(),
        "rng": (torch.get_rng_state(), random.getstate(), np.random.get_state()),
        "files": {p.name: p.read_bytes() for p in sorted(world.folder.iterdir())},
    }


def same(a: Any, b: Any) -> bool:
    """Equal all the way down, tensors by torch.equal and arrays by numpy."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_unchanged(before: dict[str, Any], world: World) -> None:
    after = snapshot(world)
    for key in before:
        assert same(before[key], after[key]), f"{key} changed"


def assert_names_path(err: StateFileError, path: Path) -> None:
    message = str(err)
    assert repr(str(path)) in message, message
    assert err.path == str(path)
    # The temporary file of a save is never shown, not even in the chained traceback.
    assert ".tmp" not in message
    assert err.__cause__ is None or ".tmp" not in str(err.__cause__)
    if err.__context__ is not None and ".tmp" in str(err.__context__):
        assert err.__suppress_context__


# -- damaged and foreign files -----------------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tensor_data_offset(path: Path) -> int:
    """Where the first tensor's bytes start inside a torch file (a zip archive)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size)
    raw = path.read_bytes()
    name_length, extra_length = struct.unpack(
        "<HH", raw[info.header_offset + 26 : info.header_offset + 30]
    )
    return info.header_offset + 30 + name_length + extra_length


def written_by(write: Callable[[Path], Any], path: Path) -> Path:
    write(path)
    return path


def torch_saved(obj: Any, path: Path) -> Path:
    torch.save(obj, path)
    return path


def flipped(source: Path, target: Path, where: Callable[[bytes], int] | None = None) -> Path:
    """A copy of ``source`` with one bit flipped: in the first tensor's bytes, or at ``where``."""
    raw = bytearray(source.read_bytes())
    at = _tensor_data_offset(source) + 1 if where is None else where(bytes(raw))
    raw[at] ^= 0x40 if where is None else 0x10
    return _write(target, bytes(raw))


def _folder_attribute_of_first_tensor(raw: bytes) -> int:
    """The low byte of the first tensor's MS-DOS attributes in the table of contents."""
    entry = raw.index(b"PK\x01\x02")
    while (
        b"/data/"
        not in raw[entry + 46 : entry + 46 + struct.unpack("<H", raw[entry + 28 : entry + 30])[0]]
    ):
        entry = raw.index(b"PK\x01\x02", entry + 1)
    return entry + 38


def _disk_number(raw: bytes) -> int:
    """The "disk number start" field of the first entry in the table of contents."""
    return raw.index(b"PK\x01\x02") + 34


def edited_state(source: Path, target: Path, edit: Callable[[dict], None]) -> Path:
    state = torch.load(source, weights_only=True)
    edit(state)
    torch.save(state, target)
    return target


class RunsCode:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _drop(key: str) -> Callable[[dict], None]:
    return lambda state: state.pop(key)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    return lambda state: state.__setitem__(key, value)


def _set_param_entry(key: str, name: str, value: Any) -> Callable[[dict], None]:
    return lambda state: state[key].__setitem__(name, value)


def _bad_numpy_rng(state: dict) -> None:
    state["rng"]["numpy"][1] = torch.zeros(5, dtype=torch.int64)  # 624 words belong here


def _other_shape_optim(state: dict) -> None:
    for entry in state["state"].values():
        entry["exp_avg"] = torch.zeros(3)
        entry["exp_avg_sq"] = torch.zeros(3)


LOADERS: dict[str, Callable[[World, Path], None]] = {
    "params": lambda w, path: pyro.get_param_store().load(path),
    "svi": lambda w, path: w.svi.load(path),
    "optim": lambda w, path: w.svi.optim.load(path),
}

# (id, loader, makes the bad file from the world, exception type, fragments of the message)
LOAD_CASES: list[tuple[str, str, Callable[[World], Path], type, list[str]]] = [
    (
        "empty-params",
        "params",
        lambda w: _write(w.folder / "e.pt", b""),
        StateFileContentError,
        ["empty (0 bytes)"],
    ),
    (
        "empty-svi",
        "svi",
        lambda w: _write(w.folder / "e.pt", b""),
        StateFileContentError,
        ["empty (0 bytes)"],
    ),
    (
        "truncated-params",
        "params",
        lambda w: _write(w.folder / "t.pt", w.params_file.read_bytes()[:700]),
        StateFileContentError,
        ["cut short", "700 bytes"],
    ),
    (
        "truncated-svi",
        "svi",
        lambda w: _write(w.folder / "t.pt", w.svi_file.read_bytes()[:-40]),
        StateFileContentError,
        ["cut short"],
    ),
    (
        "first-bytes-only-optim",
        "optim",
        lambda w: _write(w.folder / "t.pt", w.optim_file.read_bytes()[:10]),
        StateFileContentError,
        ["cut short", "10 bytes"],
    ),
    (
        "flipped-bit-params",
        "params",
        lambda w: flipped(w.params_file, w.folder / "f.pt"),
        StateFileContentError,
        ["damaged", "checksum", "/data/"],
    ),
    (
        "flipped-bit-svi",
        "svi",
        lambda w: flipped(w.svi_file, w.folder / "f.pt"),
        StateFileContentError,
        ["damaged", "checksum"],
    ),
    (
        "folder-flag-params",  # torch alone would load wrong numbers for the tensor
        "params",
        lambda w: flipped(w.params_file, w.folder / "f.pt", _folder_attribute_of_first_tensor),
        StateFileContentError,
        ["damaged", "as a folder", "/data/"],
    ),
    (
        "disk-number-optim",
        "optim",
        lambda w: flipped(w.optim_file, w.folder / "f.pt", _disk_number),
        StateFileContentError,
        ["damaged", "torch cannot read its archive", "multidisk"],
    ),
    (
        "text-params",
        "params",
        lambda w: _write(w.folder / "g.pt", b"hello, world\n" * 5),
        StateFileContentError,
        ["text file", "hello, world"],
    ),
    (
        "binary-garbage-svi",
        "svi",
        lambda w: _write(w.folder / "g.pt", bytes(range(7, 200))),
        StateFileContentError,
        ["not a file torch.save writes", "begins with the bytes"],
    ),
    (
        "npy-optim",
        "optim",
        lambda w: written_by(lambda path: np.save(path, np.ones(3)), w.folder / "a.npy"),
        StateFileContentError,
        ["NumPy .npy file"],
    ),
    (
        "npz-params",
        "params",
        lambda w: written_by(lambda path: np.savez(path, x=np.ones(3)), w.folder / "a.npz"),
        StateFileContentError,
        ["NumPy .npz archive"],
    ),
    (
        "python-pickle-params",
        "params",
        lambda w: _write(w.folder / "p.pkl", pickle.dumps({"loc": [0.0, 1.0]})),
        StateFileContentError,
        ["Python pickle"],
    ),
    (
        "missing-file",
        "params",
        lambda w: w.folder / "paramz.pt",
        StateFileNotFoundError,
        ["no such file", "params.pt"],
    ),
    (
        "missing-folder",
        "svi",
        lambda w: w.folder / "nowhere" / "svi.pt",
        StateFileNotFoundError,
        ["folder", "does not exist"],
    ),
    (
        "a-folder-params",
        "params",
        lambda w: w.folder,
        StateFileAccessError,
        ["a folder, not a file", "params.pt"],
    ),
    ("a-folder-optim", "optim", lambda w: w.folder, StateFileAccessError, ["a folder, not a file"]),
    (
        "svi-file-as-params",
        "params",
        lambda w: w.svi_file,
        StateFileContentError,
        ["an SVI state file, not a param store file", "svi.load(path)"],
    ),
    (
        "params-file-as-svi",
        "svi",
        lambda w: w.params_file,
        StateFileContentError,
        ["a param store file, not an SVI state file", "get_param_store()"],
    ),
    (
        "optim-file-as-svi",
        "svi",
        lambda w: w.optim_file,
        StateFileContentError,
        ["an optimizer state file, not an SVI state file"],
    ),
    (
        "params-file-as-optim",
        "optim",
        lambda w: w.params_file,
        StateFileContentError,
        ["a param store file, not an optimizer state file"],
    ),
    (
        "state-dict-as-params",
        "params",
        lambda w: torch_saved({"w": torch.ones(2)}, w.folder / "m.pt"),
        StateFileContentError,
        ["dict of tensors", "'w'", "format marker", "get_param_store()[name]"],
    ),
    (
        "tensor-as-svi",
        "svi",
        lambda w: torch_saved(torch.ones(3), w.folder / "x.pt"),
        StateFileContentError,
        ["a single tensor of shape (3,)"],
    ),
    (
        "pyro-optim-state",
        "optim",
        lambda w: torch_saved(
            {"loc": torch.optim.SGD([torch.zeros(1)], lr=1).state_dict()}, w.folder / "o.pt"
        ),
        StateFileContentError,
        ["Pyro optimizer state", "'loc'"],
    ),
    (
        "pyro-param-store",
        "params",
        lambda w: torch_saved(pyro.get_param_store().get_state(), w.folder / "pyro.pt"),
        StateFileContentError,
        ["objects other than tensors", "Pyro param store", "weights_only=False"],
    ),
    (
        "newer-params-version",
        "params",
        lambda w: edited_state(
            w.params_file, w.folder / "v.pt", _set("format", "pplkernel-param-store-2")
        ),
        StateFileContentError,
        ["another version", "'pplkernel-param-store-2'", "'pplkernel-param-store-1'"],
    ),
    (
        "newer-svi-version",
        "svi",
        lambda w: edited_state(
            w.svi_file, w.folder / "v.pt", _set("format", "pplkernel-svi-state-v2")
        ),
        StateFileContentError,
        ["another version", "'pplkernel-svi-state-v2'"],
    ),
    (
        "svi-state-without-rng",
        "svi",
        lambda w: edited_state(w.svi_file, w.folder / "r.pt", _drop("rng")),
        StateFileContentError,
        ["lacks its 'rng' entry"],
    ),
    (
        "svi-state-bad-rng",
        "svi",
        lambda w: edited_state(w.svi_file, w.folder / "r.pt", _bad_numpy_rng),
        StateFileContentError,
        ["random generators' state ('rng') is malformed"],
    ),
    (
        "svi-state-bad-optim",
        "svi",
        lambda w: edited_state(
            w.svi_file, w.folder / "o.pt", lambda s: s["optim"].__setitem__("groups", 1)
        ),
        StateFileContentError,
        ["do not fit", "malformed optimizer state", "'groups'"],
    ),
    (
        "unknown-constraint",
        "params",
        lambda w: edited_state(
            w.params_file,
            w.folder / "c.pt",
            _set_param_entry("constraints", "scale", {"singleton": "nope"}),
        ),
        StateFileContentError,
        ["param 'scale'", "constraint", "'nope'", "register_constraint"],
    ),
    (
        "malformed-constraint",
        "params",
        lambda w: edited_state(
            w.params_file, w.folder / "c.pt", _set_param_entry("constraints", "scale", ["positive"])
        ),
        StateFileContentError,
        ["param 'scale'", "malformed constraint data"],
    ),
    (
        "integer-param",
        "params",
        lambda w: edited_state(
            w.params_file, w.folder / "i.pt", _set_param_entry("params", "loc", torch.arange(2))
        ),
        StateFileContentError,
        ["param 'loc'", "not a floating-point tensor"],
    ),
    (
        "params-without-constraints",
        "params",
        lambda w: edited_state(w.params_file, w.folder / "n.pt", _drop("constraints")),
        StateFileContentError,
        ["'constraints'"],
    ),
    (
        "optim-state-other-shapes",
        "optim",
        lambda w: edited_state(w.optim_file, w.folder / "s.pt", _other_shape_optim),
        StateFileContentError,
        ["does not fit", "has shape (3,)", "(2,)"],
    ),
]


@pytest.mark.parametrize(
    "loader, make, error, fragments",
    [case[1:] for case in LOAD_CASES],
    ids=[case[0] for case in LOAD_CASES],
)
def test_a_file_that_cannot_be_loaded_is_named_and_changes_nothing(
    world: World, loader: str, make: Callable, error: type, fragments: list[str]
):
    path = make(world)
    before = snapshot(world)
    with pytest.raises(error) as info:
        LOADERS[loader](world, path)
    assert_names_path(info.value, path)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert_unchanged(before, world)
    # The builtin a user would catch.
    builtin = OSError if issubclass(error, StateFileAccessError) else ValueError
    assert isinstance(info.value, builtin)


def test_a_file_cut_anywhere_is_reported_as_cut_short(world: World, tmp_path: Path):
    raw = world.params_file.read_bytes()
    path = tmp_path / "cut.pt"
    before = snapshot(world)
    for cut in range(0, len(raw), 23):
        path.write_bytes(raw[:cut])
        with pytest.raises(StateFileContentError, match=r"empty|cut short|damaged") as info:
            pyro.get_param_store().load(path)
        assert_names_path(info.value, path)
    assert_unchanged(before, world)


def test_a_bit_flipped_anywhere_is_reported_or_harmless(world: World, tmp_path: Path):
    """torch reads some damaged archives as wrong numbers; every flip must either be reported or
    leave the loaded values right (a flip in a field nobody reads)."""
    raw = world.params_file.read_bytes()
    path = tmp_path / "flipped.pt"
    before = snapshot(world)
    reported = harmless = 0
    for at in range(0, len(raw), 11):
        damaged = bytearray(raw)
        damaged[at] ^= 0x10
        path.write_bytes(bytes(damaged))
        try:
            pyro.get_param_store().load(path)
        except StateFileContentError as err:
            assert_names_path(err, path)
            kinds = ("damaged", "cut short", "not a file torch.save writes")  # the last: byte 0
            assert any(kind in str(err) for kind in kinds), str(err)
            reported += 1
        else:
            harmless += 1
        values = {n: v.detach() for n, v in pyro.get_param_store().items()}
        assert same(values, before["values"]), at
    assert reported > 50 and harmless > 10


def test_pickled_code_is_refused_and_never_runs(world: World, tmp_path: Path):
    marker = tmp_path / "code-ran"
    path = world.folder / "evil.pt"
    torch.save({"format": "pplkernel-svi-state-v1", "step": RunsCode(marker)}, path)
    before = snapshot(world)
    with pytest.raises(StateFileContentError, match="objects other than tensors") as info:
        world.svi.load(path)
    assert "os.system" in str(info.value) or "posix.system" in str(info.value)
    assert_names_path(info.value, path)
    assert not marker.exists()
    assert_unchanged(before, world)


def test_the_advice_for_a_pyro_param_store_works(world: World):
    path = world.folder / "pyro.pt"
    torch.save(pyro.get_param_store().get_state(), path)
    expected = {name: value.detach().clone() for name, value in pyro.get_param_store().items()}
    with pytest.raises(StateFileContentError, match="weights_only=False"):
        pyro.get_param_store().load(path)
    pyro.clear_param_store()
    pyro.get_param_store().set_state(torch.load(path, weights_only=False))  # trusted: we wrote it
    pyro.get_param_store().save(path)
    pyro.clear_param_store()
    pyro.get_param_store().load(path)
    for name, value in pyro.get_param_store().items():
        assert torch.equal(value.detach(), expected[name]), name


def test_a_bad_map_location_is_not_reported_as_a_damaged_file(world: World):
    with pytest.raises(RuntimeError) as info:
        pyro.get_param_store().load(world.params_file, map_location="no_such_device")
    assert not isinstance(info.value, StateFileError)


def test_a_param_of_another_shape_loads_with_a_warning_naming_it(world: World):
    other = world.folder / "other.pt"
    store = pyro.get_param_store()
    loc = store.get_state()["params"]["loc"]
    edited_state(world.params_file, other, _set_param_entry("params", "loc", torch.ones(3)))
    with pytest.warns(
        UserWarning, match=r"replaces param 'loc' of shape \(2,\) with one of shape \(3,\)"
    ):
        store.load(other)
    assert store["loc"].shape == (3,)  # loading replaces, as in Pyro
    assert loc.shape == (2,)


def test_an_svi_with_a_store_of_its_own_loads_into_that_store(world: World):
    own = ParamStoreDict()
    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO(), param_store=own)
    own["loc"] = torch.zeros(3)  # not the shape the file holds
    global_before = snapshot(world)
    with pytest.warns(UserWarning, match=r"replaces param 'loc' of shape \(3,\) with one of shape"):
        svi.load(world.svi_file)
    assert own["loc"].shape == (2,) and svi.step_count == world.svi.step_count
    assert_unchanged(global_before, world)


def test_a_misfit_state_changes_nothing_even_as_an_exact_restore(world: World):
    optim = world.svi.optim
    optim.set_state({"format": "pplkernel-optim-1", "groups": [], "state": {"later": {}}})
    before = snapshot(world)  # the optimizer state includes the one waiting for 'later'
    misfit = optim.get_state()
    misfit["state"]["loc"]["exp_avg"] = torch.zeros(5)
    with pytest.raises(OptimError, match=r"'loc' does not fit it: its 'exp_avg' has shape \(5,\)"):
        optim.set_state(misfit, exact=True)
    assert_unchanged(before, world)


def test_a_waiting_optimizer_state_of_another_shape_is_dropped_with_a_warning(world: World):
    saved = world.svi.optim.get_state()  # made for a 'loc' of shape (2,)
    pyro.clear_param_store()
    loc = pyro.param("loc", torch.zeros(3)).unconstrained()
    waiting = Adam({"lr": 0.1})
    waiting.set_state(saved)  # 'loc' has not been stepped: its state waits for it
    loc.grad = torch.ones(3)
    with pytest.warns(UserWarning, match=r"'loc' is dropped: its 'exp_avg' has shape \(2,\)"):
        waiting([loc])
    # A fresh Adam state: the first step moves every entry by the learning rate.
    assert torch.allclose(loc.detach(), torch.full((3,), -0.1))
    assert waiting.get_state()["state"]["loc"]["exp_avg"].shape == (3,)


# -- saves that fail ---------------------------------------------------------------------------


class _FullDisk:
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, file: Any, room: int):
        self._file, self._room = file, room

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if size > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= size
        return self._file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._file.close()


def full_disk(room: int) -> Callable[[pytest.MonkeyPatch], None]:
    def install(monkeypatch: pytest.MonkeyPatch) -> None:
        real = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullDisk(real(fd, *a, **k), room))

    return install


def failing_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)


def refused_create(code: int) -> Callable[[pytest.MonkeyPatch], None]:
    """The folder refuses new files, as a read-only folder or file system does (for root too)."""

    def install(monkeypatch: pytest.MonkeyPatch) -> None:
        real = os.open

        def guarded(path, flags, *args, **kwargs):
            if os.fspath(path).endswith(".tmp"):
                raise OSError(code, os.strerror(code), os.fspath(path))
            return real(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", guarded)

    return install


def refused_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    def replace(source, target):
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), source, target)

    monkeypatch.setattr(os, "replace", replace)


def no_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    pass


SAVERS: dict[str, Callable[[World, Path], None]] = {
    "params": lambda w, path: pyro.get_param_store().save(path),
    "svi": lambda w, path: w.svi.save(path),
    "optim": lambda w, path: w.svi.optim.save(path),
}

# (id, saver, fault, where (relative to the world's folder), exception type, errno, fragments)
SAVE_CASES = [
    (
        "disk-full-mid-write-params",
        "params",
        full_disk(100),
        "params.pt",
        StateFileAccessError,
        errno.ENOSPC,
        ["the disk is full", "already there is unchanged"],
    ),
    (
        "disk-full-mid-write-svi",
        "svi",
        full_disk(2000),
        "svi.pt",
        StateFileAccessError,
        errno.ENOSPC,
        ["the disk is full"],
    ),
    (
        "disk-full-at-once-optim",
        "optim",
        full_disk(0),
        "optim.pt",
        StateFileAccessError,
        errno.ENOSPC,
        ["the disk is full"],
    ),
    (
        "disk-full-new-file",
        "params",
        full_disk(100),
        "new.pt",
        StateFileAccessError,
        errno.ENOSPC,
        ["the disk is full", "Nothing was written"],
    ),
    (
        "sync-fails",
        "svi",
        failing_fsync,
        "svi.pt",
        StateFileAccessError,
        errno.EIO,
        ["writing the file failed", "input/output error"],
    ),
    (
        "read-only-folder-params",
        "params",
        refused_create(errno.EACCES),
        "params.pt",
        StateFileAccessError,
        errno.EACCES,
        ["is not writable", "permission denied"],
    ),
    (
        "read-only-file-system-optim",
        "optim",
        refused_create(errno.EROFS),
        "optim.pt",
        StateFileAccessError,
        errno.EROFS,
        ["is not writable", "read-only file system"],
    ),
    (
        "missing-folder",
        "params",
        no_fault,
        "nowhere/params.pt",
        StateFileNotFoundError,
        errno.ENOENT,
        ["folder", "does not exist", "os.makedirs"],
    ),
    (
        "target-is-a-folder",
        "svi",
        no_fault,
        ".",
        StateFileAccessError,
        errno.EISDIR,
        ["it is a folder", "state.pt"],
    ),
    (
        "old-file-cannot-be-replaced",
        "optim",
        refused_replace,
        "optim.pt",
        StateFileAccessError,
        errno.EPERM,
        ["could not take the place of the old one"],
    ),
]


@pytest.mark.parametrize(
    "saver, fault, where, error, code, fragments",
    [case[1:] for case in SAVE_CASES],
    ids=[case[0] for case in SAVE_CASES],
)
def test_a_save_that_fails_names_the_file_and_keeps_the_old_one(
    world: World, monkeypatch: pytest.MonkeyPatch, saver, fault, where, error, code, fragments
):
    path = world.folder / where if where != "." else world.folder
    before = snapshot(world)
    fault(monkeypatch)
    with pytest.raises(error) as info:
        SAVERS[saver](world, path)
    monkeypatch.undo()
    assert_names_path(info.value, path)
    assert info.value.errno == code and info.value.filename == str(path)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert_unchanged(before, world)  # same files, same bytes: no partial copy left behind
    # The old files still load.
    world.svi.load(world.svi_file)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_a_really_read_only_folder(world: World):
    before = snapshot(world)
    world.folder.chmod(0o555)
    try:
        with pytest.raises(StateFileAccessError) as info:
            world.svi.save(world.svi_file)
    finally:
        world.folder.chmod(0o755)
    assert info.value.errno == errno.EACCES
    assert_names_path(info.value, world.svi_file)
    assert "is not writable" in str(info.value)
    assert_unchanged(before, world)
