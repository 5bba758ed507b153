"""What the kernel-level tests share: the coin model as a ``%%model`` cell, and running a cell
in the test shell (the ``shell`` fixture of tests/conftest.py) the way a user would."""

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
