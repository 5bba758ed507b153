"""``run.plot_posterior()`` on a run started by ``%svi``, and its live panel, in a shell."""

import math

import pytest

COIN = """\
%%model coin(flips)
p = ppl.sample("p", dist.Beta(2.0, 2.0))
with ppl.plate("flips", len(flips)):
    ppl.sample("obs", dist.Bernoulli(p), obs=flips)
"""


def run(shell, cell):
    result = shell.run_cell(cell)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_plot_posterior_of_an_svi_run(shell):
    run(shell, COIN)
    svi_run = run(shell, "%svi coin --steps 600 --lr 0.05")
    shell.user_ns["svi_run"] = svi_run
    figure = run(shell, "svi_run.plot_posterior()")
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
