"""The notebooks in notebooks/ run top to bottom under nbclient with the installed "Python 3
(pplkernel)" kernel, and the widget state saved with them holds the final results."""

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from notebook_runs import execute, widget_states


def test_the_kernelspec_is_installed_by_pip():
    spec = KernelSpecManager().get_kernel_spec("pplkernel")
    assert spec.display_name == "Python 3 (pplkernel)"
    assert spec.argv[1:3] == ["-m", "pplkernel.kernel_launcher"]


@pytest.mark.slow
def test_magics_tour_runs_and_saves_the_final_elbo():
    notebook = execute("magics_tour.ipynb", solutions=False)
    outputs = {
        index: "".join(output.get("text", "") for output in cell.get("outputs", []))
        for index, cell in enumerate(notebook.cells)
    }
    count, last_loss = next(text for text in outputs.values() if text.startswith("250 ")).split()
    states = widget_states(notebook)
    # The SVI monitor of run 'coin' saved all 250 steps, ending on the loss the run reports.
    monitor = next(s for s in states if s.get("title") == "SVI run 'coin'")
    assert len(monitor["losses"]) == int(count) == 250
    assert monitor["losses"][-1] == pytest.approx(float(last_loss))
    assert monitor["steps"][-1] == 250
    # ... and the posterior panel of its last step: the guide's and the prior's curves of 'p'.
    assert monitor["posterior"]["step"] == 250
    (p,) = monitor["posterior"]["panels"]
    assert p["name"] == "p" and len(p["guide"]) == len(p["prior"]) == len(p["x"])
    # The inspector lists the model's sites with their shapes; the MCMC monitor every chain.
    inspector = next(s for s in states if s.get("title") == "model coin")
    assert {row["site"]: row["value"] for row in inspector["sites"]} == {"p": "()", "obs": "(8,)"}
    mcmc = next(s for s in states if s.get("title") == "MCMC coin")
    assert mcmc["status"] == "done" and len(mcmc["chains"]) == 2
    assert all(chain["draws"] == 300 for chain in mcmc["chains"])
    posterior = next(text for text in outputs.values() if text.startswith("posterior mean"))
    assert abs(float(posterior.split()[2]) - 8 / 12) < 0.05
