"""Fixtures for the reliability catalogue: an IPython shell with the extension loaded."""

import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell


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
