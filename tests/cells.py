"""What the kernel-level tests share: the coin model and a two-component mixture with an
enumerated assignment as ``%%model`` cells, and running a cell in the test shell (the ``shell``
fixture of tests/conftest.py) the way a user would."""

COIN = """\
%%model coin(flips)
p = ppl.sample("p", dist.Beta(2.0, 2.0))
with ppl.plate("flips", len(flips)):
    ppl.sample("obs", dist.Bernoulli(p), obs=flips)
"""

MIXTURE = """\
%%model mixture(data)
weights = ppl.sample("weights", dist.Dirichlet(torch.ones(2)))
with ppl.plate("components", 2):
    locs = ppl.sample("locs", dist.Normal(0.0, 5.0))
with ppl.plate("data", len(data)):
    z = ppl.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
    ppl.sample("x", dist.Normal(locs[z], 1.0), obs=data)
"""


def run_cell(shell, cell):
    """Run a cell; return its result, raising the error it showed (if any)."""
    result = shell.run_cell(cell)
    error = result.error_in_exec or result.error_before_exec
    if error is not None:
        raise error
    return result.result
