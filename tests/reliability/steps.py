"""What the interruption and concurrency tests share: a record of the state each SVI step left
behind, the check that a run stands exactly where one whole step left it, a gauge of how many
threads are inside one SVI's step at once, and a gate that holds a model in mid-step."""

import threading

import torch

import engine
from engine.infer import SVI
from engine.params import ParamStoreDict, param_store_scope
from tests.reliability.support import assert_same_values, values_of


def assert_same_state(a, b, path: str = "state") -> None:
    """Two optimizer states (nested dicts, lists, tensors, numbers) are equal, bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            assert_same_state(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


class AfterEachStep:
    """The params, the optimizer state and the stepping thread as each step of ``svi`` left them
    (a progress listener: it runs once a step is committed). ``store`` is the svi's own param
    store, if it has one."""

    def __init__(self, svi: SVI, store: ParamStoreDict | None = None):
        self.svi, self.store = svi, store
        self.params, self.optim, self.threads = {}, {}, {}
        self.params[svi.step_count], self.optim[svi.step_count] = self._now()
        svi.progress.subscribe(self)

    def _now(self):
        with param_store_scope(engine.get_param_store() if self.store is None else self.store):
            return values_of(self.store), self.svi.optim.get_state()

    def __call__(self, event) -> None:
        self.params[event.step], self.optim[event.step] = self._now()
        self.threads[event.step] = threading.get_ident()

    def assert_whole(self, steps: int | None = None) -> None:
        """The svi stands exactly where its step ``steps`` (by default: its last) left it: its
        count, losses, params and optimizer, with no gradient left over."""
        svi = self.svi
        steps = svi.step_count if steps is None else steps
        assert svi.step_count == len(svi.losses) == steps
        params, optim = self._now()
        assert_same_values(self.params[steps], self.store)
        assert params.keys() == self.params[steps].keys()
        assert_same_state(optim, self.optim[steps])
        store = engine.get_param_store() if self.store is None else self.store
        assert all(leaf.grad is None for _, leaf in store.named_parameters())


class Gauge:
    """Wraps ``svi.step`` to count the threads inside it at once (``most`` must stay 1)."""

    def __init__(self, svi: SVI):
        self.inside = self.most = 0
        self._lock = threading.Lock()
        step = svi.step

        def gauged(*args, **kwargs):
            with self._lock:
                self.inside += 1
                self.most = max(self.most, self.inside)
            try:
                return step(*args, **kwargs)
            finally:
                with self._lock:
                    self.inside -= 1

        svi.step = gauged


class Gate:
    """Called in a model: once :meth:`close`\\ d, the next call (in whichever thread) waits in
    mid-step until :meth:`open`; ``entered`` tells when one is waiting."""

    def __init__(self) -> None:
        self._closed = False
        self.entered = threading.Event()
        self._opened = threading.Event()

    def close(self) -> None:
        self.entered.clear()
        self._opened.clear()
        self._closed = True

    def open(self) -> None:
        self._closed = False
        self._opened.set()

    def __call__(self) -> None:
        if self._closed:
            self._closed = False
            self.entered.set()
            assert self._opened.wait(30), "the gate was never opened"
