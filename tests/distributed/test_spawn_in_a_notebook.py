"""A local process group driven from a notebook: a function defined in a cell (which a fresh
interpreter cannot import) runs in every process, in a real kernel executed by nbclient."""

from __future__ import annotations

from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook


def test_a_function_defined_in_a_cell_runs_in_a_local_group_and_a_failure_is_named(tmp_path):
    notebook = new_notebook(
        cells=[
            new_code_cell(
                "import torch, torch.distributed as dist\n"
                "from engine.infer.distributed import spawn, DistributedError\n"
                "def ranked_sum(offset):\n"
                "    value = torch.tensor([dist.get_rank() + offset])\n"
                "    dist.all_reduce(value)\n"
                "    return value.item()\n"
                "def failing(offset):\n"
                "    if dist.get_rank() == 1:\n"
                "        raise ValueError('no data on this rank')\n"
                "    dist.barrier()\n"
            ),
            new_code_cell("print(spawn(ranked_sum, 2, 1.0, timeout_s=60))"),
            new_code_cell(
                "try:\n"
                "    spawn(failing, 2, 0.0, timeout_s=60)\n"
                "except DistributedError as error:\n"
                "    print(str(error).splitlines()[0])\n"
            ),
            new_code_cell("print(spawn(ranked_sum, 2, 2.0, timeout_s=60))  # the kernel goes on"),
        ]
    )
    NotebookClient(
        notebook,
        kernel_name="pplkernel",
        timeout=180,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    printed = [cell.outputs[0]["text"].strip() for cell in notebook.cells[1:]]
    # Ranks 0 and 1 add their rank to the offset; the all-reduce sums both.
    assert printed[0] == "[3.0, 3.0]"
    assert printed[1] == "rank 1 failed: ValueError: no data on this rank"
    assert printed[2] == "[5.0, 5.0]"
