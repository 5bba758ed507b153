"""``pyro.render_model`` as Pyro's model-rendering tutorial uses it: a ``graphviz.Digraph`` when the
``graphviz`` package is installed, the engine's own drawing when it is not, and a picture (never a
traceback) in a notebook when Graphviz's ``dot`` program is missing. ``filename=`` writes the file
through Graphviz, and says clearly what is missing when it cannot."""

import re
import shutil
import sys

import pytest
import torch
import torch.nn.functional as F
from IPython.core.formatters import DisplayFormatter

import engine as pyro
import engine.distributions as dist
import engine.distributions.constraints as constraints
from engine.errors import RenderError
from engine.infer.render import ModelDiagram

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")


def model(data):
    m = pyro.sample("m", dist.Normal(0, 1))
    sd = pyro.sample("sd", dist.LogNormal(m, 1))
    with pyro.plate("N", len(data)):
        pyro.sample("obs", dist.Normal(m, sd), obs=data)


def param_model(data):
    sigma = pyro.param("sigma", torch.tensor([1.0]), constraint=constraints.positive)
    mu = pyro.param("mu", torch.tensor([0.0]))
    x = pyro.sample("x", dist.Normal(mu, sigma))
    y = pyro.sample("y", dist.LogNormal(x, 1))
    with pyro.plate("N", len(data)):
        pyro.sample("z", dist.Normal(x, y), obs=data)


def model_deterministic(data):
    sigma = pyro.param("sigma", torch.tensor([1.0]), constraint=constraints.positive)
    mu = pyro.param("mu", torch.tensor([0.0]))
    x = pyro.sample("x", dist.Normal(mu, sigma))
    log_y = pyro.sample("y", dist.Normal(x, 1))
    y = pyro.deterministic("y_deterministic", log_y.exp())
    with pyro.plate("N", len(data)):
        eps_z_loc = pyro.sample("eps_z_loc", dist.Normal(0, 1))
        z_loc = pyro.deterministic("z_loc", eps_z_loc + x, event_dim=0)
        pyro.sample("z", dist.Normal(z_loc, y), obs=data)


def crossed_model():
    plate1 = pyro.plate("plate1", 2, dim=-2)
    plate2 = pyro.plate("plate2", 3, dim=-1)
    with plate1:
        x = pyro.sample("x", dist.Normal(0, 1))
    with plate1, plate2:
        y = pyro.sample("y", dist.Normal(x, 1))
    with plate2:
        pyro.sample("z", dist.Normal(y.sum(-2, True), 1), obs=torch.zeros(3))


def semisupervised_model(x, y=None):
    with pyro.plate("N", 2):
        z = pyro.sample("z", dist.Normal(0, 1))
        y = pyro.sample("y", dist.Normal(0, 1), obs=y)
        pyro.sample("x", dist.Normal(y + z, 1), obs=x)


def mace(positions, annotations):
    num_annotators = int(torch.max(positions)) + 1
    num_classes = int(torch.max(annotations)) + 1
    num_items, num_positions = annotations.shape
    with pyro.plate("annotator", num_annotators):
        epsilon = pyro.sample("ε", dist.Dirichlet(torch.full((num_classes,), 10.0)))
        theta = pyro.sample("θ", dist.Beta(0.5, 0.5))
    with pyro.plate("item", num_items, dim=-2):
        c = pyro.sample("c", dist.Categorical(logits=torch.zeros(num_classes)))
        with pyro.plate("position", num_positions):
            s = pyro.sample("s", dist.Bernoulli(1 - theta[positions]))
            probs = torch.where(
                s[..., None] == 0, F.one_hot(c, num_classes).float(), epsilon[positions]
            )
            pyro.sample("y", dist.Categorical(probs), obs=annotations)


SEMI_RUNS = [{"x": torch.zeros(2)}, {"x": torch.zeros(2), "y": torch.zeros(2)}]


# --- with the graphviz package: what Pyro returns ------------------------------------------------


@pytest.fixture
def graphviz():
    return pytest.importorskip("graphviz")


def unquote(word):
    return word[1:-1] if word.startswith('"') else word


def node_attrs(graph, name):
    """The attributes of node ``name`` in a Digraph's DOT source."""
    for line in graph.source.splitlines():
        head, _, attrs = line.strip().partition(" [")
        if attrs and unquote(head) == name:
            return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', attrs.rstrip("]")))
    raise AssertionError(f"no node {name!r} in\n{graph.source}")


def edges(graph):
    found = re.findall(r"^\s*(\S+) -> (\S+)$", graph.source, flags=re.MULTILINE)
    return [(unquote(parent), unquote(child)) for parent, child in found]


def cluster_of(graph, name):
    """The labels of the clusters around node ``name``, outermost first."""
    labels, stack = [], []
    for line in graph.source.splitlines():
        line = line.strip()
        if line.startswith("subgraph cluster_"):
            stack.append(None)
        elif line.startswith("label=") and stack and stack[-1] is None:
            stack[-1] = line.split()[0][len("label=") :]
        elif line == "}" and stack:
            stack.pop()
        elif " [" in line and unquote(line.partition(" [")[0]) == name:
            labels = list(stack)
    return labels


def test_the_tutorials_first_picture_is_a_digraph_with_pyros_styles(graphviz):
    graph = pyro.render_model(model, model_args=(torch.ones(10),))
    assert isinstance(graph, graphviz.Digraph)
    assert edges(graph) == [("m", "sd"), ("m", "obs"), ("sd", "obs")]
    assert node_attrs(graph, "obs")["fillcolor"] == "gray"  # observed: filled grey
    assert node_attrs(graph, "m")["fillcolor"] == "white"
    assert node_attrs(graph, "m")["shape"] == "ellipse"
    assert cluster_of(graph, "obs") == ["N"] and cluster_of(graph, "m") == []
    assert "subgraph cluster_N" in graph.source and "labeljust=r labelloc=b" in graph.source


def test_nested_plates_are_nested_clusters(graphviz):
    positions = torch.tensor([0, 0, 0, 1, 2, 3, 4])
    annotations = torch.randint(0, 4, (45, 7))
    graph = pyro.render_model(mace, model_args=(positions, annotations))
    assert cluster_of(graph, "y") == ["item", "position"]
    assert cluster_of(graph, "c") == ["item"]
    assert cluster_of(graph, "θ") == ["annotator"]
    assert set(edges(graph)) == {("θ", "s"), ("ε", "y"), ("c", "y"), ("s", "y")}


def test_params_and_their_constraints_are_shown_when_asked(graphviz):
    data = torch.ones(10)
    plain = pyro.render_model(param_model, model_args=(data,))
    assert "sigma" not in plain.source and "distribution_description_node" not in plain.source

    graph = pyro.render_model(
        param_model, model_args=(data,), render_params=True, render_distributions=True
    )
    assert node_attrs(graph, "sigma")["shape"] == "plain"
    assert ("sigma", "x") in edges(graph) and ("mu", "x") in edges(graph)
    legend = node_attrs(graph, "distribution_description_node")["label"]
    for line in ("x ~ Normal", "y ~ LogNormal", "z ~ Normal", "mu : Real()"):
        assert line + r"\l" in legend
    assert r"sigma : GreaterThan(lower_bound=0.0)\l" in legend


def test_deterministic_sites_are_dashed_and_only_drawn_when_asked(graphviz):
    data = torch.ones(10)
    hidden = pyro.render_model(model_deterministic, model_args=(data,))
    with pytest.raises(AssertionError, match="no node 'z_loc'"):
        node_attrs(hidden, "z_loc")
    # Without the deterministic nodes, z depends on what they were computed from.
    assert {("y", "z"), ("x", "z"), ("eps_z_loc", "z")} <= set(edges(hidden))

    graph = pyro.render_model(
        model_deterministic,
        model_args=(data,),
        render_params=True,
        render_distributions=True,
        render_deterministic=True,
    )
    assert node_attrs(graph, "z_loc")["style"] == '"filled,dashed"'
    assert node_attrs(graph, "y_deterministic")["style"] == '"filled,dashed"'
    assert node_attrs(graph, "x")["style"] == "filled"
    assert {("y", "y_deterministic"), ("z_loc", "z"), ("eps_z_loc", "z_loc")} <= set(edges(graph))
    assert cluster_of(graph, "z_loc") == ["N"]
    assert r"z_loc ~ Deterministic\l" in graph.source


def test_overlapping_plates_are_drawn_as_several_boxes(graphviz):
    graph = pyro.render_model(crossed_model)
    assert cluster_of(graph, "y") == ["plate1", "plate2"]
    assert cluster_of(graph, "z") == ["plate2"]  # a second box labelled plate2
    assert cluster_of(graph, "x") == ["plate1"]
    assert graph.source.count("label=plate2") == 2
    assert edges(graph) == [("x", "y"), ("y", "z")]


def test_semisupervised_runs_shade_a_sometimes_observed_site_half(graphviz):
    graph = pyro.render_model(semisupervised_model, model_kwargs=SEMI_RUNS)
    assert node_attrs(graph, "y")["fillcolor"] == '"gray:white"'
    assert node_attrs(graph, "x")["fillcolor"] == "gray"
    assert node_attrs(graph, "z")["fillcolor"] == "white"


@needs_dot
def test_the_digraph_shows_itself_as_graphviz_svg_when_dot_is_there(graphviz):
    graph = pyro.render_model(model, model_args=(torch.ones(3),))
    data, _ = DisplayFormatter().format(graph)
    assert "Generated by graph" in data["image/svg+xml"]  # dot's own output
    if shutil.which("unflatten"):
        assert isinstance(graph.unflatten(stagger=2), graphviz.Source)


@needs_dot
def test_filename_writes_the_file_in_the_suffixs_format(graphviz, tmp_path):
    target = tmp_path / "model.pdf"
    graph = pyro.render_model(model, model_args=(torch.ones(10),), filename=str(target))
    assert isinstance(graph, graphviz.Digraph)
    assert target.read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pdf"]  # the .gv source is gone
    svg = tmp_path / "sub" / "picture.svg"
    pyro.render_model(model, model_args=(torch.ones(10),), filename=svg)
    assert "<svg" in svg.read_text()


def test_a_file_name_must_name_a_format_graphviz_writes(graphviz, tmp_path):
    with pytest.raises(RenderError, match=r"'.*model'.*needs a suffix"):
        pyro.render_model(model, model_args=(torch.ones(2),), filename=str(tmp_path / "model"))
    with pytest.raises(ValueError, match=r"model\.docx.*'docx'"):
        pyro.render_model(model, model_args=(torch.ones(2),), filename="model.docx")


# --- the package installed, Graphviz's dot missing ----------------------------------------------


@pytest.fixture
def no_dot(graphviz, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert shutil.which("dot") is None


def test_a_notebook_shows_the_engines_drawing_with_a_note_when_dot_is_missing(no_dot):
    graph = pyro.render_model(model, model_args=(torch.ones(10),))
    data, _ = DisplayFormatter().format(graph)  # what Jupyter does to show a value
    html = data["text/html"]
    assert "`dot` program was not found" in html and "install Graphviz" in html
    assert 'data-site="obs"' in html and 'data-plate="N"' in html
    assert 'data-source="m" data-target="obs"' in data["image/svg+xml"]
    assert data["text/plain"].startswith("<engine.infer.render_graphviz.ModelDigraph")
    copied = graph.copy()  # graphviz's own copy keeps the fallback
    assert "data-site" in copied._repr_mimebundle_()["text/html"]


def test_unflatten_without_graphvizs_program_still_gives_a_picture(no_dot):
    graph = pyro.render_model(model, model_args=(torch.ones(10),))
    with pytest.warns(RuntimeWarning, match="`unflatten` program was not found"):
        flat = graph.unflatten(stagger=2)
    assert "text/html" in DisplayFormatter().format(flat)[0]


def test_filename_without_dot_is_a_clear_error_naming_the_file(no_dot, tmp_path):
    target = tmp_path / "model.png"
    with pytest.raises(RenderError) as error:
        pyro.render_model(model, model_args=(torch.ones(10),), filename=str(target))
    assert str(target) in str(error.value) and "`dot` program" in str(error.value)
    assert isinstance(error.value, RuntimeError)  # as graphviz's ExecutableNotFound is
    assert not target.exists()


# --- without the graphviz package: the engine's own drawing -------------------------------------


@pytest.fixture
def no_graphviz(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # ``import graphviz`` now fails


def svg_node(svg, name):
    match = re.search(rf'<g class="ppl-node" data-site="{re.escape(name)}">(.*?)</g>', svg)
    assert match, f"no node {name!r}"
    return match.group(1)


def test_without_the_package_the_engine_draws_the_same_graph(no_graphviz):
    graph = pyro.render_model(model, model_args=(torch.ones(10),))
    assert isinstance(graph, ModelDiagram)
    assert repr(graph) == "ModelDiagram(3 sites, 3 edges, 1 plate)"
    data, _ = DisplayFormatter().format(graph)
    svg = data["image/svg+xml"]
    assert data["text/html"].count("<svg") == 1 and "ppl-render-note" not in data["text/html"]
    assert 'fill="#c8c8c8"' in svg_node(svg, "obs") and 'fill="#ffffff"' in svg_node(svg, "m")
    drawn = re.findall(r'data-source="([^"]+)" data-target="([^"]+)"', svg)
    assert drawn == [("m", "sd"), ("m", "obs"), ("sd", "obs")]
    box = re.search(r'<g class="ppl-plate" data-plate="N">.*?<text[^>]*>(.*?)</text>', svg)
    assert box and box.group(1) == "N"


def test_the_engines_drawing_follows_the_options(no_graphviz):
    data = torch.ones(10)
    svg = pyro.render_model(model_deterministic, model_args=(data,)).to_svg()
    assert re.findall(r'class="ppl-node" data-site="([^"]+)"', svg) == ["x", "y", "eps_z_loc", "z"]
    assert "~ Normal" not in svg

    svg = pyro.render_model(
        model_deterministic,
        model_args=(data,),
        render_params=True,
        render_distributions=True,
        render_deterministic=True,
    ).to_svg()
    assert "stroke-dasharray" in svg_node(svg, "z_loc")
    assert "stroke-dasharray" not in svg_node(svg, "x")
    assert "<circle" not in svg_node(svg, "sigma")  # a param: its name alone
    assert "∈ GreaterThan(lower_bound=0.0)" in svg_node(svg, "sigma")
    assert "~ Normal" in svg_node(svg, "x") and "~ Deterministic" in svg_node(svg, "z_loc")

    semi = pyro.render_model(semisupervised_model, model_kwargs=SEMI_RUNS).to_svg()
    assert "<path" in svg_node(semi, "y") and "<path" not in svg_node(semi, "x")  # half shaded

    crossed = pyro.render_model(crossed_model).to_svg()
    assert crossed.count('data-plate="plate2"') == 1  # this layout overlaps the two boxes


def test_names_are_escaped_in_the_engines_drawing(no_graphviz):
    def xss():
        with pyro.plate("<p>", 2):
            pyro.sample("<img src=x>", dist.Normal(0.0, 1.0))

    html = pyro.render_model(xss)._repr_html_()
    assert "<img" not in html and "<p>" not in html and "&lt;img src=x&gt;" in html


def test_filename_without_the_package_is_a_clear_error(no_graphviz, tmp_path):
    target = tmp_path / "model.pdf"
    with pytest.raises(RenderError, match="pip install graphviz") as error:
        pyro.render_model(model, model_args=(torch.ones(10),), filename=str(target))
    assert str(target) in str(error.value)


# --- both paths -----------------------------------------------------------------------------------


def test_rendering_does_not_move_the_random_streams():
    pyro.set_rng_seed(3)
    expected = torch.rand(3)
    pyro.set_rng_seed(3)
    pyro.render_model(model, model_args=(torch.ones(10),))
    assert torch.equal(torch.rand(3), expected)


def test_model_args_must_be_a_tuple():
    with pytest.raises(TypeError, match=r"model_args=\(data,\)"):
        pyro.render_model(model, model_args=torch.ones(10))
    with pytest.raises(ValueError, match="2 runs but model_kwargs lists 3"):
        pyro.render_model(model, model_args=[(torch.ones(1),)] * 2, model_kwargs=[{}] * 3)
