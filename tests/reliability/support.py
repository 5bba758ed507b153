"""What the reliability catalogue's tests share: a cell that must fail, and the check that a
param store is, tensor for tensor, what it was (the coin model and running a cell live in
tests/cells.py)."""

import torch

import engine


def failing_cell(shell, cell, capsys) -> str:
    """Run a cell that must fail; return what it showed (stdout and stderr)."""
    result = shell.run_cell(cell)
    assert result.error_in_exec is not None or result.error_before_exec is not None, cell
    shown = capsys.readouterr()
    return shown.out + shown.err


def values_of(store=None) -> dict[str, torch.Tensor]:
    """Copies of every unconstrained value in a param store (the global one by default)."""
    store = engine.get_param_store() if store is None else store
    return {name: leaf.detach().clone() for name, leaf in store.named_parameters()}


def assert_same_values(before: dict[str, torch.Tensor], store=None) -> None:
    """The store holds exactly the params of ``before``, each bit for bit equal (NaNs too)."""
    after = values_of(store)
    assert list(after) == list(before)
    for name, value in before.items():
        assert after[name].dtype == value.dtype and after[name].shape == value.shape, name
        as_bytes = after[name].reshape(-1).view(torch.uint8)
        assert torch.equal(as_bytes, value.reshape(-1).view(torch.uint8)), name
