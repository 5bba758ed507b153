"""End to end, in a real browser: a real ``jupyter lab`` (and Notebook 7) on 127.0.0.1 with the
installed "Python 3 (pplkernel)" kernel and the installed labextension; headless Chromium runs
every cell of notebooks/magics_tour.ipynb (and of small notebooks written here), and the
assertions read the DOM the widgets and the extension's renderers render.

In JupyterLab and Notebook 7 the extension renders the trace inspector (it ranks ahead of the
widget view) with the widget view's classes and data attributes, so the tour's checks read
either; the widget view itself is checked by displaying it alone.

Needs Chromium at /usr/bin/chromium (``apt-get install chromium``; .ci/run installs it) and the
test extra (JupyterLab, Notebook, Playwright); skipped when Chromium is missing.
"""

from __future__ import annotations

import os
import pathlib

import pytest
from lab_server import Server, check_chart, run_all_cells, save_view, write_notebook

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium at /usr/bin/chromium"),
]


def _check_widgets(page, screenshots: pathlib.Path | None) -> None:
    # The inspector lists the sites with their shapes.
    obs = page.locator(".ppl-inspector tr[data-site='obs']").first
    obs.wait_for(timeout=60_000)
    assert "(8,)" in obs.inner_text() and "observed" in obs.inner_text()
    assert "()" in page.locator(".ppl-inspector tr[data-site='p']").first.inner_text()
    # The plate diagram draws plate 'flips' around 'obs', with 'p' outside it.
    diagram = page.locator(".ppl-inspector svg.ppl-plate-diagram").first
    assert diagram.locator("g.ppl-plate[data-plate='flips'] ~ g.ppl-node[data-site='obs']").count()
    assert diagram.locator("g.ppl-node[data-site='p']").count() == 1
    # The ELBO chart of run 'coin' holds all 250 steps.
    monitor = page.locator(".ppl-svi-monitor").filter(has_text="SVI run 'coin'").first
    monitor.wait_for()
    page.wait_for_function(
        "(el) => el.dataset.points === '250'", arg=monitor.element_handle(), timeout=60_000
    )
    assert monitor.locator("svg.ppl-elbo polyline").count() == 1
    assert "steps 1 to 250" in monitor.locator(".ppl-range").inner_text()
    # The ELBO chart and the parameter traces have drawn axes that bracket what they plot; the
    # coin's losses are positive, so the loss axis is on the (default) log scale.
    elbo = monitor.locator("svg.ppl-elbo")
    assert check_chart(elbo, x_range=(1, 250))["y"]["scale"] == "log"
    traces = monitor.locator(".ppl-param svg.ppl-trace")
    assert traces.count() >= 1
    for trace in traces.all():  # on the ELBO chart's step axis
        check_chart(trace, x_range=(1, 250))
    if screenshots is not None:  # the SVI monitor with its posterior panel, before the clicks
        monitor.locator(".ppl-posterior .ppl-marginal[data-site='p']").wait_for()
        save_view(monitor, screenshots, "svi_monitor")
    # The smoothing control changes the trait (and so the curve) from the browser.
    monitor.locator("input[data-control='smoothing']").fill("0.5")
    # The MCMC monitor shows one row per chain.
    mcmc = page.locator(".ppl-mcmc-monitor").first
    page.wait_for_function("(el) => el.dataset.status === 'done'", arg=mcmc.element_handle())
    assert mcmc.locator("tr.ppl-chain").count() == 2
    # The log-density plot and the trace of 'p' have drawn axes over all 500 iterations (200
    # warm-up and 300 draws) that bracket what they plot.
    assert mcmc.locator("svg.ppl-lp").count() == 1 and mcmc.locator("svg.ppl-trace").count() == 1
    for plot in mcmc.locator("svg.ppl-lp, svg.ppl-trace").all():
        check_chart(plot, x_range=(1, 500))
    if screenshots is not None:  # the whole tour
        screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshots / "tour.png"), full_page=True)
    # Unticking the log scale redraws the loss axis linear, still around the curve.
    monitor.locator("input[data-control='log']").uncheck()
    page.wait_for_function(
        "(svg) => svg.querySelector(\"g[data-axis='y']\").dataset.scale === 'linear'",
        arg=elbo.element_handle(),
    )
    check_chart(elbo, x_range=(1, 250))
    # Step adds a point; Run starts a run that Pause stops.
    handle = monitor.element_handle()
    monitor.locator("button[data-action='step']").click()
    page.wait_for_function("(el) => el.dataset.points === '251'", arg=handle, timeout=60_000)
    monitor.locator("button[data-action='run']").click()
    page.wait_for_function("(el) => el.dataset.status === 'running'", arg=handle, timeout=60_000)
    page.wait_for_function("(el) => Number(el.dataset.points) > 300", arg=handle, timeout=60_000)
    monitor.locator("button[data-action='pause']").click()
    page.wait_for_function("(el) => el.dataset.status === 'paused'", arg=handle, timeout=60_000)
    paused_at = int(handle.get_attribute("data-points"))
    page.wait_for_timeout(500)
    assert int(handle.get_attribute("data-points")) == paused_at


XSS_SITE = "<img src=x onerror=alert(1)>"


def _write_escaping_notebook(root: pathlib.Path) -> None:
    cell = f"%%model xss()\nppl.sample({XSS_SITE!r}, dist.Normal(0.0, 1.0))"
    write_notebook(root / "escaping.ipynb", [cell])


def test_a_site_named_like_markup_renders_as_text(browser, tmp_path):
    server = Server("lab", tmp_path)
    try:
        _write_escaping_notebook(server.root)
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(server.url("lab/tree/escaping.ipynb"))
        run_all_cells(page)
        row = page.locator(".ppl-inspector tr[data-kind='sample']").first
        row.wait_for(timeout=60_000)
        assert XSS_SITE in row.inner_text()
        # The plate diagram, drawn in Python and parsed as XML, shows the name as text too.
        diagram = page.locator(".ppl-inspector svg.ppl-plate-diagram").first
        assert diagram.locator(f"g.ppl-node[data-site='{XSS_SITE}']").count() == 1
        assert XSS_SITE in diagram.text_content()
        assert page.locator(".ppl-inspector img").count() == 0
        page.wait_for_timeout(300)
        assert dialogs == []
        page.close()
    finally:
        server.stop()


NEGATIVE_LOSS = """\
from engine.infer import SVI, Trace_ELBO
from engine.optim import Adam
from widgets import SviMonitor

def sharp():  # an observation density above 1: the ELBO loss goes below zero
    loc = ppl.param("loc", torch.tensor(0.03))
    ppl.sample("obs", dist.Normal(loc, 0.01), obs=torch.tensor(0.0))

monitor = SviMonitor(SVI(sharp, lambda: None, Adam({"lr": 0.002}), Trace_ELBO()), title="sharp")
display(monitor)
monitor.step(150)
"""


def test_negative_losses_keep_the_loss_axis_linear(browser, tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    server = Server("lab", tmp_path)
    try:
        notebook = new_notebook(cells=[new_code_cell(NEGATIVE_LOSS)])
        notebook.metadata["kernelspec"] = {
            "name": "pplkernel",
            "display_name": "Python 3 (pplkernel)",
        }
        nbformat.write(notebook, server.root / "negative.ipynb")
        page = browser.new_page()
        page.goto(server.url("lab/tree/negative.ipynb"))
        run_all_cells(page)
        monitor = page.locator(".ppl-svi-monitor").first
        page.wait_for_function(
            "(el) => el.dataset.points === '150'", arg=monitor.element_handle(), timeout=60_000
        )
        assert monitor.locator("input[data-control='log']").is_checked()
        chart = check_chart(monitor.locator("svg.ppl-elbo"), x_range=(1, 150))
        assert chart["y"]["scale"] == "linear" and chart["y"]["values"][0] < 0
        assert "linear: some losses are not positive" in monitor.locator(".ppl-range").inner_text()
        page.close()
    finally:
        server.stop()


POSTERIOR_PANEL = """\
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import AutoNormal
from engine.optim import Adam
from widgets import SviMonitor

data = torch.tensor([0.5, 1.5, 1.0, 2.0])

def located(data):
    mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
    scale = ppl.sample("<b>", dist.HalfNormal(2.0))
    with ppl.plate("data", len(data)):
        ppl.sample("obs", dist.Normal(mu, scale), obs=data)

guide = AutoNormal(located)
monitor = SviMonitor(SVI(located, guide, Adam({"lr": 0.02}), Trace_ELBO()), (data,), title="post")
display(monitor)
monitor.step(200)
"""


def test_the_posterior_panel_draws_each_latent_site_and_moves_while_running(browser, tmp_path):
    server = Server("lab", tmp_path)
    try:
        write_notebook(server.root / "posterior.ipynb", [POSTERIOR_PANEL])
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(server.url("lab/tree/posterior.ipynb"))
        run_all_cells(page)
        monitor = page.locator(".ppl-svi-monitor").first
        panel = monitor.locator(".ppl-posterior")
        page.wait_for_function(
            "(el) => el.dataset.step === '200'", arg=panel.element_handle(), timeout=60_000
        )
        figures = panel.locator(".ppl-marginal")
        assert [f.get_attribute("data-site") for f in figures.all()] == ["mu", "<b>"]
        assert figures.nth(1).inner_text().startswith("<b>")  # the name as text, not markup
        for svg in panel.locator("svg.ppl-density").all():
            assert svg.locator("polygon[data-curve='prior']").count() == 1
            check_chart(svg)  # the guide's curve inside the drawn axes
        # Run: the curves are redrawn while the run goes on (about once a second).
        monitor.locator("button[data-action='run']").click()
        page.wait_for_function(
            "(el) => Number(el.dataset.step) > 200", arg=panel.element_handle(), timeout=60_000
        )
        monitor.locator("button[data-action='pause']").click()
        page.wait_for_function(
            "(el) => el.dataset.status === 'paused'", arg=monitor.element_handle()
        )
        assert dialogs == []
        page.close()
    finally:
        server.stop()


# Users and items cross (r sits in both plates); "alone" depends on nothing.
RATINGS_MODEL = """\
%%model ratings_model(ratings)
mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
ppl.sample("alone", dist.Normal(0.0, 1.0))
users = ppl.plate("users", ratings.shape[0], dim=-2)
items = ppl.plate("items", ratings.shape[1], dim=-1)
with users:
    u = ppl.sample("u", dist.Normal(mu, 1.0))
with items:
    v = ppl.sample("v", dist.Normal(0.0, 1.0))
with users, items:
    ppl.sample("r", dist.Normal(u * v, sigma), obs=ratings)
"""
XSS_GRAPH_MODEL = f"""\
%%model xss_graph()
a = ppl.sample({XSS_SITE!r}, dist.Normal(0.0, 1.0))
ppl.sample("b", dist.Normal(a, 1.0))
"""
ENUM_MODEL = """\
%%model enum_model(ratings)
w = ppl.sample("w", dist.Dirichlet(torch.ones(2)))
with ppl.plate("rows", ratings.shape[0]):
    z = ppl.sample("z", dist.Categorical(w), infer={"enumerate": "parallel"})
    ppl.sample("x", dist.Normal(z.float(), 1.0), obs=ratings[:, 0])
"""
# The inspector's widget view alone (the extension takes the full bundle in JupyterLab).
WIDGET_ONLY = """\
from IPython.display import display
from engine import poutine
from widgets import TraceInspector
inspector = TraceInspector.from_trace(
    poutine.trace(ratings_model).get_trace(ratings), title="widget view"
)
view = "application/vnd.jupyter.widget-view+json"
display({view: inspector._repr_mimebundle_()[0][view]}, raw=True)
"""


def _site_order(table) -> list[str]:
    return table.locator("tr.ppl-site").evaluate_all("(rows) => rows.map((r) => r.dataset.site)")


def _check_trace_renderer(page) -> None:
    trace = page.locator(".ppl-lab-trace").filter(has_text="model ratings_model").first
    trace.wait_for(timeout=60_000)
    assert trace.get_attribute("data-sites") == "6" and trace.get_attribute("data-plates") == "2"
    table = trace.locator("table.ppl-table")
    assert table.get_attribute("data-rows") == "6"
    r_row = table.locator("tr[data-site='r']")
    assert "(3, 4)" in r_row.inner_text() and "observed" in r_row.inner_text()
    assert r_row.get_attribute("data-plates") == "users, items"
    # Grouped by plates, in order of first use, the unplated sites first; rows tinted.
    groups = table.locator("tbody.ppl-group").evaluate_all("(b) => b.map((x) => x.dataset.group)")
    assert groups == ["", "users", "items", "users, items"]
    assert "rgba" in r_row.evaluate("(row) => row.style.background")
    assert trace.locator(".ppl-plate-legend li[data-plate]").count() == 2
    # Sorting by a header reorders the rows of each group; again reverses them.
    assert _site_order(table) == ["mu", "sigma", "alone", "u", "v", "r"]
    table.locator("th[data-column='site']").click()
    assert table.get_attribute("data-sort-order") == "ascending"
    assert _site_order(table) == ["alone", "mu", "sigma", "u", "v", "r"]
    table.locator("th[data-column='site']").click()
    assert _site_order(table) == ["sigma", "mu", "alone", "u", "v", "r"]
    # A plate group collapses and opens again.
    toggle = table.locator("tbody[data-group='users'] button.ppl-toggle")
    toggle.click()
    assert table.locator("tr[data-site='u']").is_hidden()
    assert table.locator("tr[data-site='r']").is_visible()
    toggle.click()
    assert table.locator("tr[data-site='u']").is_visible()
    assert trace.locator("svg.ppl-plate-diagram g.ppl-node").count() == 6


def _box(locator) -> dict:
    box = locator.bounding_box()
    return {"left": box["x"], "top": box["y"], "right": box["x"] + box["width"]} | {
        "bottom": box["y"] + box["height"]
    }


def trace_has_no_enum_column(page) -> bool:
    """A model with nothing enumerated shows no enum column."""
    trace = page.locator(".ppl-lab-trace").filter(has_text="model ratings_model").first
    return trace.locator("th[data-column='enum']").count() == 0


def _check_graph_renderer(page) -> None:
    graph = page.locator(".ppl-lab-graph").filter(has_text="graph of ratings_model").first
    graph.wait_for(timeout=60_000)
    assert graph.get_attribute("data-nodes") == "6" and graph.get_attribute("data-edges") == "4"
    svg = graph.locator("svg.ppl-graph")
    assert svg.locator("g.ppl-node").count() == 6
    edges = svg.locator("g.ppl-edge").evaluate_all(
        "(edges) => edges.map((e) => e.dataset.source + '->' + e.dataset.target)"
    )
    assert sorted(edges) == ["mu->u", "sigma->r", "u->r", "v->r"]
    assert svg.locator("g.ppl-node[data-site='r']").get_attribute("data-observed") == "true"
    assert svg.locator("g.ppl-node[data-site='mu']").get_attribute("data-observed") == "false"
    # The two plates overlap on r, and neither holds the other.
    users = _box(svg.locator("g.ppl-plate[data-plate='users'] rect"))
    items = _box(svg.locator("g.ppl-plate[data-plate='items'] rect"))
    r = _box(svg.locator("g.ppl-node[data-site='r'] circle"))
    for plate in (users, items):
        assert plate["left"] < r["left"] and r["right"] < plate["right"]
        assert plate["top"] < r["top"] and r["bottom"] < plate["bottom"]
    assert users["left"] < items["left"] and items["top"] < users["top"]
    # Plate labels are drawn in their plate's colour (no stylesheet rule overrides it).
    label = svg.locator("g.ppl-plate[data-plate='users'] text.ppl-plate-label")
    colour = label.get_attribute("fill")
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    assert label.evaluate("(el) => getComputedStyle(el).fill") == f"rgb({red}, {green}, {blue})"
    # Pointing at a site highlights its edges.
    svg.locator("g.ppl-node[data-site='r'] circle").hover()
    assert svg.locator("g.ppl-edge.ppl-highlight").count() == 3


def test_the_labextension_renders_the_trace_and_the_graph(browser, tmp_path, screenshots):
    server = Server("lab", tmp_path)
    try:
        cells = [
            "ratings = torch.zeros(3, 4)",
            RATINGS_MODEL,
            "%trace ratings_model --graph",
            XSS_GRAPH_MODEL,
            "%trace xss_graph --graph",
            ENUM_MODEL,
            WIDGET_ONLY,
        ]
        write_notebook(server.root / "labextension.ipynb", cells)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(server.url("lab/tree/labextension.ipynb"))
        run_all_cells(page)
        # The pictures first, before the checks sort the table and point at a site.
        trace = page.locator(".ppl-lab-trace").filter(has_text="model ratings_model").first
        trace.wait_for(timeout=60_000)
        save_view(trace, screenshots, "inspector")
        graph = page.locator(".ppl-lab-graph").filter(has_text="graph of ratings_model").first
        graph.wait_for(timeout=60_000)
        save_view(graph, screenshots, "model_graph")
        _check_trace_renderer(page)
        _check_graph_renderer(page)
        # A site named like markup is text in the graph and in the table.
        xss_graph = page.locator(".ppl-lab-graph").filter(has_text="graph of xss_graph").first
        node = xss_graph.locator("g.ppl-node").first
        assert node.get_attribute("data-site") == XSS_SITE
        assert XSS_SITE in node.text_content()
        assert xss_graph.get_attribute("data-edges") == "1"
        xss_trace = page.locator(".ppl-lab-trace").filter(has_text="model xss_graph").first
        assert XSS_SITE in xss_trace.locator("tr.ppl-site").first.inner_text()
        assert page.locator(".ppl-lab-output img").count() == 0
        # An enumerated model: the enum column appears, naming each site's enumeration dims.
        enum_trace = page.locator(".ppl-lab-trace").filter(has_text="model enum_model").first
        assert enum_trace.locator("th[data-column='enum']").count() == 1
        assert "*z@-2" in enum_trace.locator("tr[data-site='z']").inner_text()
        assert "z@-2" in enum_trace.locator("tr[data-site='x']").inner_text()
        assert trace_has_no_enum_column(page)
        # The inspector's widget view still renders on its own.
        widget = page.locator(".ppl-inspector:not(.ppl-lab-trace)").filter(has_text="widget view")
        widget.first.wait_for(timeout=60_000)
        assert widget.first.locator("tr[data-site]").count() == 6
        assert widget.first.locator("svg.ppl-plate-diagram g.ppl-node").count() == 6
        page.wait_for_timeout(300)
        assert dialogs == []
        page.close()
    finally:
        server.stop()


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_magics_tour_in_a_real_browser(browser, tmp_path, app, screenshots):
    server = Server(app, tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        path = "lab/tree/magics_tour.ipynb" if app == "lab" else "notebooks/magics_tour.ipynb"
        page.goto(server.url(path))
        run_all_cells(page)
        _check_widgets(page, screenshots if app == "lab" else None)
        page.close()
    finally:
        server.stop()
