"""The notebooks in notebooks/ run top to bottom under nbclient with the installed "Python 3
(pplkernel)" kernel, and the widget state saved with them holds the final results."""

import pathlib

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="pplkernel",
        timeout=600,
        store_widget_state=True,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return notebook


def widget_states(notebook: nbformat.NotebookNode) -> list[dict]:
    saved = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    return [model["state"] for model in saved["state"].values()]


def test_the_kernelspec_is_installed_by_pip():
    spec = KernelSpecManager().get_kernel_spec("pplkernel")
    assert spec.display_name == "Python 3 (pplkernel)"
    assert spec.argv[1:3] == ["-m", "pplkernel.kernel_launcher"]


@pytest.mark.slow
def test_magics_tour_runs_and_saves_the_final_elbo():
    notebook = execute("magics_tour.ipynb")
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


@pytest.mark.slow
def test_eight_schools_notebook_recovers_the_reference_posterior():
    notebook = execute("eight_schools.ipynb")
    printed = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    line = next(text for text in printed.splitlines() if text.startswith("mu "))
    _, mu, _, tau = line.split()
    # Reference: mu 4.41 (sd 3.31), tau 3.60 (sd 3.20); 4000 draws with an ESS near 2,500 give
    # a Monte Carlo error near 3.3 / 50 = 0.07 on mu and 0.07 on tau: 4 of those, plus the
    # reference's own 0.03.
    assert abs(float(mu) - 4.41) < 0.3 and abs(float(tau) - 3.60) < 0.3
    states = widget_states(notebook)
    monitor = next(s for s in states if s.get("title") == "MCMC eight_schools")
    assert monitor["status"] == "done" and len(monitor["chains"]) == 4
    # The marginals are saved with the notebook: every chain's density and rank counts of all
    # its draws, per latent element.
    elements = monitor["marginals"]["elements"]
    assert [e["label"] for e in elements][:2] == ["mu", "tau"]
    draws = monitor["marginals"]["draws"]
    assert all(sum(counts) == draws for e in elements for counts in e["ranks"])
    assert all(len(e["density"]) == 4 for e in elements)


@pytest.mark.slow
def test_mixtures_notebook_fits_the_components_and_matches_the_forward_algorithm():
    notebook = execute("mixtures.ipynb")
    printed = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    lines = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.strip()}
    # 300 points with weights (0.5, 0.3, 0.2) and unit noise: a component mean's standard
    # error is 1 / sqrt(300 w); allow 4 of them around the true means.
    for fitted, true, weight in zip(lines["locs"], (-4.0, 0.0, 4.0), (0.5, 0.3, 0.2), strict=True):
        assert abs(float(fitted) - true) < 4 / (300 * weight) ** 0.5
    assert float(lines["agreement"][0]) > 0.9
    enumerated, forward = float(lines["enumerated"][0]), float(lines["enumerated"][2])
    assert enumerated == pytest.approx(forward, abs=2e-3)
    inspector = next(s for s in widget_states(notebook) if s.get("title") == "model gmm")
    enum_column = {row["site"]: row["enum"] for row in inspector["sites"]}
    assert enum_column["assignment"] == "*assignment@-2" and enum_column["x"] == "assignment@-2"
