"""The example scripts, run as the README says: under torchrun, in real process groups."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def torchrun(processes: int, script: str, *args: str) -> str:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes)]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_the_svi_example_fits_saves_and_resumes_on_another_number_of_processes(tmp_path):
    checkpoint = str(tmp_path / "fit.pt")
    small = ["--rows", "20000", "--batch", "500"]
    first = torchrun(2, "distributed_svi.py", *small, "--steps", "200", "--checkpoint", checkpoint)
    assert "rows 20000 on 2 processes" in first
    resumed = torchrun(3, "distributed_svi.py", *small, "--steps", "100", "--resume", checkpoint)
    # The resumed run goes on from step 200 (its first report is step 201) on 3 processes.
    assert "step 201:" in resumed and "rows 20000 on 3 processes" in resumed
    # The data's noise sd is 0.5: the fit gets there within 300 steps of mini-batches.
    sigma = float(re.search(r"sigma ~ ([0-9.]+)", resumed).group(1))
    first_sigma = float(re.search(r"sigma ~ ([0-9.]+)", first).group(1))
    assert abs(sigma - 0.5) < abs(first_sigma - 0.5)


@pytest.mark.slow
def test_the_chains_example_prints_one_summary_of_all_chains():
    printed = torchrun(2, "distributed_chains.py")
    assert printed.count("tau") == 1  # rank 0 alone prints
    # Reference posterior (non-centred eight schools): mu 4.41, tau 3.60, known to about 0.03;
    # each mean within 4 of its Monte Carlo standard errors (sd / sqrt(bulk ESS)) of them.
    for name, reference in (("mu", 4.41), ("tau", 3.60)):
        row = re.search(rf"^\s+{name}\s+(.*)$", printed, re.MULTILINE).group(1).split()
        mean, sd, ess = float(row[0]), float(row[1]), float(row[5])
        assert abs(mean - reference) < 4 * sd / ess**0.5 + 0.03, (name, row)
