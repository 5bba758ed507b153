"""An engine error raised by code of a plain notebook cell names the cell as IPython's own
tracebacks do (``line 3 of cell In[7]``), not the temporary file the kernel compiled the cell
into; lines of ``%%model`` cells keep their own wording."""

import re

from cells import run_cell

BROKEN = """\
def broken():
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(3, 1))


engine.poutine.trace(broken).get_trace()
"""


def test_an_error_in_a_plain_cell_names_the_cell_and_its_line(shell):
    run_cell(shell, "import engine")
    result = shell.run_cell(BROKEN)
    message = str(result.error_in_exec)
    assert message.startswith("Observed site 'y' (plate 'data' (size 3, dim -1))")
    assert f"Raised at line 3 of cell In[{result.execution_count}]." in message
    assert not re.search(r"line \d+ of /", message)


def test_a_model_cell_keeps_its_own_wording(shell):
    result = shell.run_cell(
        '%%model shaped()\nwith ppl.plate("data", 3):\n'
        '    ppl.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(3, 1))\n'
    )
    assert "Raised at %%model shaped, line 2 of the cell." in str(result.error_in_exec)
