"""What the reliability catalogue's tests share: the coin model, running cells, and the check
that a param store is, tensor for tensor, what it was."""

import torch

import engine

COIN = """\
%%model coin(flips)
p = ppl.sample("p", dist.Beta(2.0, 2.0))
with ppl.plate("flips", len(flips)):
    ppl.sample("obs", dist.Bernoulli(p), obs=flips)
"""


def run_cell(shell, cell):
    """Run a cell; return its result, raising the error it showed (if any)."""
    result = shell.run_cell(cell)
    error = result.error_in_exec or result.error_before_exec
    if error is not None:
        raise error
    return result.result


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
