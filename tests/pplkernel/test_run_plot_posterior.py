"""``run.plot_posterior()`` on a run started by ``%svi``, and its live panel, in a shell."""

import math

import pytest

from tests.cells import COIN, MIXTURE, run_cell


def test_plot_posterior_of_an_svi_run(shell):
    run_cell(shell, COIN)
    svi_run = run_cell(shell, "%svi coin --steps 600 --lr 0.05")
    shell.user_ns["svi_run"] = svi_run
    figure = run_cell(shell, "svi_run.plot_posterior()")
    (ax,) = figure.axes
    assert ax.get_title() == "p" and "coin" in figure._suptitle.get_text()
    # What a notebook's display shows: a PNG (the figure has no pyplot manager to show it again).
    png = shell.display_formatter.formatters["image/png"](figure)
    assert png[:4] == b"\x89PNG" and figure.canvas.manager is None
    # 6 heads in 8 flips from Beta(2, 2): the exact posterior Beta(8, 4) has mode 0.7 and sd
    # 0.13. The KDE's mode of 1000 draws has an sd of about 0.18 sd (0.145 at 2000 draws, 0.21
    # at 300: see test_posterior_marginals), 4 of them 0.7 sd, and the AutoNormal guide (a
    # logistic-normal) sits about 0.1 sd off the Beta's mode: 0.8 sd.
    line = ax.lines[0]
    peak = line.get_xdata()[line.get_ydata().argmax()]
    assert peak == pytest.approx(0.7, abs=0.8 * math.sqrt(8 * 4 / (12**2 * 13)))
    # The monitor shown by %svi holds the curves of the last step, in its trait and its HTML.
    assert svi_run.monitor.posterior["step"] == 600
    assert "data-site='p'" in svi_run.monitor.to_html()


def test_an_enumerated_site_shows_its_prior_and_a_delta_guide_its_point(shell):
    import torch

    shell.user_ns["data"] = torch.tensor([-2.0, -1.5, -1.8, 2.0, 2.5, 2.2])
    run_cell(shell, MIXTURE)
    svi_run = run_cell(shell, "%svi mixture --elbo enum --guide auto_delta --steps 20")
    panels = svi_run.monitor.posterior["panels"]
    names = [panel["name"] for panel in panels]
    assert names == ["weights[0]", "weights[1]", "locs[0]", "locs[1]"] + [
        f"z[{i}]" for i in range(4)
    ]
    assert svi_run.monitor.posterior["not_shown"] == ["z: 2 more elements"]  # 4 of 6 shown
    assert all(panel["point"] is not None for panel in panels[:4])  # AutoDelta: points
    for z in panels[4:]:  # enumerated, so no guide draws: the prior's bars only
        assert z["kind"] == "discrete" and z["guide"] is None and z["note"].startswith("prior")
    figure = svi_run.plot_posterior(num_samples=200)
    assert [ax.get_title() for ax in figure.axes] == names
    bars = figure.axes[4].patches
    assert [bar.get_x() for bar in bars] == [-0.5, 0.5]  # one bar per value, centred on it
