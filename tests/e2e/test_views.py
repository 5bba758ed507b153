"""The views the tour does not reach, each in a real browser against one shared ``jupyter lab``
(the ``lab`` fixture): the MCMC monitor's live per-chain marginals and rank plots, the ``%ppc``
figure and the ``%prior`` explorer's sliders. The checks read the DOM and its data attributes;
each test also saves a screenshot of its view (see the ``screenshots`` fixture: ``docs/`` when
``PPLKERNEL_SCREENSHOTS=docs``).
"""

from __future__ import annotations

import os
import re

import pytest
from lab_server import (
    check_chart,
    run_all_cells,
    run_cell,
    save_view,
    shutdown_kernels,
    write_notebook,
)

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium at /usr/bin/chromium"),
]

# Eight measurements on a unit scale (a scale near the sampler's starting box keeps warm-up short).
SCORES = "scores = torch.tensor([1.2, 0.4, 2.1, 1.7, 0.9, 1.5, 2.4, 1.1])"
SCORES_MODEL = """\
%%model scores_model(scores)
mu = ppl.sample("mu", dist.Normal(0.0, 2.0))
sigma = ppl.sample("sigma", dist.HalfNormal(2.0))
with ppl.plate("scores", len(scores)):
    ppl.sample("obs", dist.Normal(mu, sigma), obs=scores)
"""


@pytest.fixture
def open_notebook(browser, lab):
    """``open_notebook(name, cells)`` writes the notebook, opens it in the shared JupyterLab and
    runs every cell (none with ``run_all=False``: the test runs them one by one, ``run_cell``);
    the page is closed and its kernel ended after the test. ``page.dialogs`` collects any alert
    a view raised (there must be none)."""
    pages = []

    def open_(name: str, cells: list[str], run_all: bool = True):
        write_notebook(lab.root / f"{name}.ipynb", cells)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        pages.append(page)
        # reset: a fresh workspace, without the tabs (and kernels) of the tests before
        page.goto(lab.url(f"lab/tree/{name}.ipynb") + "&reset")
        if run_all:
            run_all_cells(page)
        return page

    yield open_
    for page in pages:
        page.close()
    shutdown_kernels(lab)


# True while the MCMC monitor ``el`` samples and its marginals' heading names at least ``least``
# draws per chain (the marginals are there).
SAMPLING_WITH_MARGINALS = """([el, least]) => {
    const heading = [...el.querySelectorAll('div')].find((div) =>
        div.textContent.startsWith('marginal density per chain'));
    const match = heading && heading.textContent.match(/\\((\\d+) draws per chain\\)/);
    return el.dataset.status === 'running' && !!match && Number(match[1]) >= least;
}"""


def _draws_shown(monitor) -> int:
    """The draws per chain the monitor's marginals cover, from their heading."""
    heading = monitor.get_by_text("marginal density per chain and rank plot")
    return int(re.search(r"\((\d+) draws per chain\)", heading.inner_text()).group(1))


def test_the_mcmc_monitor_redraws_its_marginals_and_rank_plots_while_sampling(
    open_notebook, screenshots
):
    # Far more draws than the test waits for: it stops the run with the monitor's Stop button.
    run = "mcmc = %mcmc scores_model --samples 50000 --warmup 50 --chains 2"
    page = open_notebook("mcmc", [SCORES, SCORES_MODEL, run])
    monitor = page.locator(".ppl-mcmc-monitor").first
    handle = monitor.element_handle(timeout=60_000)
    # The marginals appear while the chains are still sampling, and are redrawn over more draws
    # (at least 100, which make a readable picture).
    page.wait_for_function(SAMPLING_WITH_MARGINALS, arg=[handle, 1], timeout=120_000)
    first = _draws_shown(monitor)
    assert monitor.locator(".ppl-marginal").count() == 2
    least = max(first + 1, 100)
    page.wait_for_function(SAMPLING_WITH_MARGINALS, arg=[handle, least], timeout=60_000)
    monitor.locator("button[data-action='stop']").click()
    page.wait_for_function("(el) => el.dataset.status === 'stopped'", arg=handle, timeout=60_000)
    draws = _draws_shown(monitor)
    assert first < draws < 50_000
    chains = monitor.locator("tr.ppl-chain")
    # A chain that met a divergence says so after its state (the draws are random).
    states = [row.locator("td").last.inner_text() for row in chains.all()]
    assert len(states) == 2 and all(re.fullmatch(r"stopped(, diverging)?", s) for s in states)
    # The running diagnostics over the draws so far are shown in the status line.
    assert re.search(r"stopped · R-hat \d\.\d{3} · ESS \d+", monitor.inner_text())
    # One box per latent site, each with a density per chain and a rank plot per chain, drawn
    # inside their axes; the rank axis spans the ranks 0 to chains * draws.
    boxes = monitor.locator(".ppl-marginal")
    assert [box.get_attribute("data-site") for box in boxes.all()] == ["mu", "sigma"]
    for box in boxes.all():
        density, ranks = box.locator("svg.ppl-density"), box.locator("svg.ppl-ranks")
        assert density.locator("polyline").count() == 2 and ranks.locator("polyline").count() == 2
        check_chart(density)
        check_chart(ranks, x_range=(0, 2 * draws))
    # The posterior of mu lies around the scores' mean, 1.41: its density's x axis covers it.
    mu_axis = check_chart(boxes.first.locator("svg.ppl-density"))["x"]["values"]
    assert mu_axis[0] < 1.41 < mu_axis[-1]
    save_view(monitor, screenshots, "mcmc_monitor")
    assert page.dialogs == []


# Two SVI monitors with a parameter trace each; every step goes to the browser in a message of
# its own (the rate is unbounded), and nothing is written into the traits until a sync.
TWO_MONITORS = """\
from engine.infer import SVI, Trace_ELBO
from engine.optim import Adam
from widgets import SviMonitor

def shift():
    m = ppl.param("m", torch.tensor(0.0))
    ppl.sample("x", dist.Normal(m, 1.0), obs=torch.tensor(2.0))

def monitor(title):
    svi = SVI(shift, lambda: None, Adam({"lr": 0.05}), Trace_ELBO())
    return SviMonitor(svi, title=title, max_rate=1e9, posterior=False)

shown, other = monitor("shown"), monitor("other")
display(shown)
display(other)
"""
# Steps through the SVI itself: the monitor sends each point but writes no trait.
STEP_SHOWN = """\
for _ in range(30):
    shown.svi.step()
print("no trait written:", shown.steps == [] and shown.num_steps == 0)
"""


def _points(page, title: str) -> list[str]:
    """data-points of every view of the SVI monitor titled ``title``, in page order."""
    views = page.locator(".ppl-svi-monitor").filter(has=page.locator("b", has_text=title))
    return [view.get_attribute("data-points") for view in views.all()]


def test_two_views_of_one_monitor_share_its_state_and_two_monitors_do_not(open_notebook):
    cells = [TWO_MONITORS, STEP_SHOWN, "display(shown)"]
    page = open_notebook("two_monitors", cells, run_all=False)
    run_cell(page, 0)
    page.locator(".ppl-svi-monitor").nth(1).wait_for(timeout=60_000)
    assert _points(page, "shown") == ["0"] and _points(page, "other") == ["0"]
    # The 30 points reach the widget shown in messages only; the other widget gets none.
    run_cell(page, 1)
    page.wait_for_function(
        "() => document.querySelector('.ppl-svi-monitor').dataset.points === '30'",
        timeout=60_000,
    )
    page.get_by_text("no trait written: True").wait_for()
    # A second view of the same widget, rendered after the messages (the traits still hold no
    # point), draws at once the state the first view shows: the widget's, not a view's own.
    run_cell(page, 2)
    page.locator(".ppl-svi-monitor").nth(2).wait_for(timeout=60_000)
    assert _points(page, "shown") == ["30", "30"]
    assert _points(page, "other") == ["0"]
    late = page.locator(".ppl-svi-monitor").nth(2)
    assert "· 30 steps" in late.locator(".ppl-status").inner_text()
    check_chart(late.locator("svg.ppl-elbo"), x_range=(1, 30))
    assert page.dialogs == []


LINE_DATA = """\
ppl.set_rng_seed(0)
x = torch.linspace(-2.0, 2.0, 20)
y = 0.5 + 1.5 * x + 0.4 * torch.randn(20)
"""
LINE_MODEL = """\
%%model line(x, y, slope_sd=1.0)
a = ppl.sample("a", dist.Normal(0.0, 1.0))
b = ppl.sample("b", dist.Normal(0.0, slope_sd))
sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
with ppl.plate("points", len(x)):
    ppl.sample("y", dist.Normal(a + b * x, sigma), obs=y)
"""


def _summary_numbers(text: str, stat: str) -> dict[str, float]:
    """From a predictive check's summary line for ``stat`` (mean or sd): the observed value
    (absent for the prior), the replicas' median and the p-value."""
    line = next(line for line in text.splitlines() if line.strip().startswith(f"{stat}:"))
    found = {
        "observed": re.search(r"observed (\S+),", line),
        "median": re.search(r"replicas (\S+) \[", line),
        "p": re.search(r"p = (\S+)", line),
    }
    return {key: float(match.group(1)) for key, match in found.items() if match}


def _file_browser(page, output, shown: bool) -> None:
    """Shows or hides JupyterLab's left area, and waits until ``output`` has its new width."""
    width = output.evaluate("(el) => el.getBoundingClientRect().width")
    page.evaluate(f"() => window.jupyterapp.shell.{'expandLeft' if shown else 'collapseLeft'}()")
    page.wait_for_function(
        f"([el, width]) => el.getBoundingClientRect().width {'<' if shown else '>'} width",
        arg=[output.element_handle(), width],
    )


def _image_loaded(image) -> bool:
    return image.evaluate("(img) => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0")


def test_ppc_draws_its_figure_and_the_prior_explorer_redraws_when_a_slider_moves(
    open_notebook, screenshots
):
    page = open_notebook(
        "predictive",
        [
            LINE_DATA,
            LINE_MODEL,
            "fit = %svi line --steps 500 --lr 0.05",
            "%ppc line",
            "%prior line --explore slope_sd=0.1:5",
        ],
    )
    # %ppc: the PNG (decoded by the browser) and the summary, from the SVI run's posterior,
    # as intervals against the covariate x.
    check = page.locator("figure.ppl-predictive-check").first
    check.wait_for(timeout=60_000)
    assert check.locator("img").get_attribute("alt") == "'line'"
    assert _image_loaded(check.locator("img"))
    summary = check.locator("pre").inner_text()
    assert summary.startswith(
        "posterior predictive check of 'line' from SVI run 'line' (500 steps): 500 replicas"
    )
    assert "y (intervals against x):" in summary
    # The fitted line reproduces the data's mean and sd: posterior predictive p-values of a
    # well-fitting model lie near 0.5 (they are conservative); 500 replicas give them a Monte
    # Carlo sd of at most 0.5 / sqrt(500) = 0.022, so 0.1 to 0.9 leaves room for both.
    for stat in ("mean", "sd"):
        assert 0.1 < _summary_numbers(summary, stat)["p"] < 0.9
    # Without the file browser the output area is wide enough for the summary's lines (the
    # explorer's image, below, would stretch to it: the file browser comes back first).
    output = page.locator(".jp-OutputArea-output:has(figure.ppl-predictive-check)")
    _file_browser(page, output, shown=False)
    save_view(output, screenshots, "ppc")
    _file_browser(page, output, shown=True)

    # %prior: a slider for slope_sd starting at its default, 1, over the prior predictive.
    explorer = page.locator(".widget-vbox").filter(has_text="prior predictive of line").first
    explorer.wait_for(timeout=60_000)
    slider = explorer.locator(".widget-slider").filter(has_text="slope_sd")
    handle = slider.locator(".noUi-handle")
    assert slider.locator(".widget-readout").inner_text() == "1.00"
    image = explorer.locator("img.widget-image")
    message = explorer.locator(".widget-html-content:has(pre)")  # its pre is replaced
    assert _image_loaded(image)
    before = message.inner_text()
    assert before.startswith("prior predictive check of 'line' at slope_sd = 1: 300 replicas")
    first_picture = image.get_attribute("src")
    # Drag the handle to 80% of the track (about 4) and let go: the kernel redraws the figure.
    slider.scroll_into_view_if_needed()
    track, knob = slider.locator(".noUi-base").bounding_box(), handle.bounding_box()
    page.mouse.move(knob["x"] + knob["width"] / 2, knob["y"] + knob["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + 0.8 * track["width"], knob["y"] + knob["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_function(
        "([pre, text]) => pre.textContent !== text",
        arg=[message.element_handle(), before],
        timeout=60_000,
    )
    # The picture is drawn at the value the slider shows (its readout has 3 digits).
    shown = float(slider.locator(".widget-readout").inner_text())
    assert 3.5 < shown < 4.5
    after = message.inner_text()
    drawn = re.match(r"prior predictive check of 'line' at slope_sd = (\S+): 300 replicas", after)
    assert drawn and abs(float(drawn.group(1)) - shown) <= 0.005
    page.wait_for_function(
        "([img, first]) => img.src !== first", arg=[image.element_handle(), first_picture]
    )
    assert image.get_attribute("src") != first_picture and _image_loaded(image)
    # A wider slope prior spreads the replicated lines: a replica's sd is about
    # sqrt(b^2 var(x) + sigma^2) with var(x) = 1.47 and b ~ Normal(0, slope_sd), so its median
    # is about 1.2 at slope_sd 1 and 3.4 at 4 (|b|'s median is 0.674 slope_sd): a ratio near 2.8.
    # The median of 300 replicas has a Monte Carlo sd of 1 / (2 f(median) sqrt(300)), about 7%
    # of it here, so the ratio's sd is about 10% and 1.8 lies more than 3 of them below 2.8.
    assert _summary_numbers(after, "sd")["median"] > 1.8 * _summary_numbers(before, "sd")["median"]
    save_view(explorer, screenshots, "prior_explorer")
    assert page.dialogs == []
