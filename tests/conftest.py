"""Shared fixtures: every test starts with an empty param store, fixed seeds and validation on;
``shell`` is an IPython shell with the extension loaded, as a notebook has it."""

import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell

import engine


@pytest.fixture(autouse=True)
def fresh_engine_state():
    engine.clear_param_store()
    engine.set_rng_seed(0)
    engine.enable_validation(True)
    yield
    engine.clear_param_store()
    engine.enable_validation(True)


@pytest.fixture
def shell():
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "pplkernel")
    shell.user_ns["flips"] = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    displayed = []
    shell.display_pub.publish = lambda data, metadata=None, **kwargs: displayed.append(data)
    shell.displayed = displayed
    yield shell
    InteractiveShell.clear_instance()


def pytest_sessionfinish(session, exitstatus):
    # The in-process IPython shells of the kernel tests run a full garbage collection in their
    # exit hook; after the whole suite that walk over every object left took minutes (cause not
    # yet found, 2026-12-07). Nothing left needs collecting once the tests are done: freeze the
    # heap so the exit is immediate.
    import gc

    gc.freeze()
