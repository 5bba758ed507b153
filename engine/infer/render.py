"""Pyro's ``render_model``: a picture of a model's sites, plates and dependencies.

``render_model(model, model_args, model_kwargs)`` runs the model once (without moving the random
streams and without gradients), takes the dependencies from
:func:`engine.infer.inspect.get_model_relations` and draws them as Pyro does: latent sites as
white ellipses, observed sites filled grey, deterministic sites dashed, params (with
``render_params=True``) as bare names, each plate a box labelled with its name, and with
``render_distributions=True`` each site's distribution (and each param's constraint).

What it returns, and why:

- With the ``graphviz`` Python package installed it returns what Pyro returns, a
  ``graphviz.Digraph`` (a subclass, :class:`~engine.infer.render_graphviz.ModelDigraph`), so
  ``graph.format = "pdf"``, ``graph.render(...)``, ``graph.unflatten(...)`` and ``graph.source``
  work as in Pyro's tutorial.
- Without the package it returns a :class:`ModelDiagram`, the engine's own drawing of the same
  graph (an SVG, shown by any Jupyter frontend through ``_repr_svg_``/``_repr_html_``).
- A ``graphviz.Digraph`` shows itself by running Graphviz's ``dot`` program. When ``dot`` is
  missing (the package installed, the program not) or fails, a notebook would show a traceback
  instead of a picture; the subclass catches that and shows the :class:`ModelDiagram` with a
  one-line note saying why.

The drawing is :mod:`engine.infer.plate_diagram`'s, the one the widgets' model graph uses: the
plate diagram is drawn in one place. It lives in the engine, not in ``widgets/``, because the
engine never imports the widgets (imports go ``pplkernel -> widgets -> engine``) and a plain
``import engine as pyro`` notebook must get a picture without pplkernel's widgets.

``filename=`` writes the file through Graphviz as Pyro does (the suffix names the format); that
needs both the package and ``dot``, and without them :class:`~engine.errors.RenderError` names
the file and what is missing.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def model(data):
...     m = pyro.sample("m", dist.Normal(0.0, 1.0))
...     sd = pyro.sample("sd", dist.LogNormal(m, 1.0))
...     with pyro.plate("N", len(data)):
...         pyro.sample("obs", dist.Normal(m, sd), obs=data)
>>> spec = model_graph_spec(model, model_args=(torch.ones(10),))
>>> spec.edges, spec.nodes["obs"]["observed"], spec.nodes["obs"]["plates"]
([('m', 'sd'), ('m', 'obs'), ('sd', 'obs')], True, ('N',))
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.errors import RenderError
from engine.infer.inspect import get_model_relations
from engine.infer.plate_diagram import escape, layout, plate_colour, to_svg
from engine.rng import preserved_rng_state

# What Pyro writes for a param's constraint when the store has none recorded.
_REAL = "Real()"


@dataclass
class GraphSpec:
    """What a picture of a model shows, merged over one or more runs.

    ``nodes``: name -> ``{"kind": "sample" | "deterministic" | "param", "observed": True | False
    | None (observed in some runs only), "distribution": str | None, "constraint": str | None,
    "plates": tuple of plate names}``, in the order the model reached them; ``edges``:
    ``(parent, child)`` pairs; ``plates``: plate names in order of first use; ``constraints``:
    every param of the runs with its constraint (Pyro's legend lists them all when params are
    shown); ``show_params``: whether params are drawn (``render_params``).
    """

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    plates: list[str] = field(default_factory=list)
    constraints: dict[str, str] = field(default_factory=dict)
    show_params: bool = False

    def add_run(self, relations: dict[str, Any], render_params: bool) -> None:
        """Merge one run's :func:`get_model_relations` into the spec: a site observed in one
        run and latent in another becomes ``observed=None``, shown half shaded."""
        for plate in relations["plate_sample"]:
            if plate not in self.plates:
                self.plates.append(plate)
        for name, distribution in relations["sample_dist"].items():
            deterministic = distribution == "Deterministic"
            observed = True if deterministic else name in relations["observed"]
            plates = tuple(
                plate for plate, names in relations["plate_sample"].items() if name in names
            )
            self._add_node(
                name,
                kind="deterministic" if deterministic else "sample",
                observed=observed,
                distribution=distribution,
                constraint=None,
                plates=plates,
            )
            for parent in relations["sample_sample"][name]:
                self._add_edge(parent, name)
        for name, constraint in relations["param_constraint"].items():
            self.constraints.setdefault(name, _REAL if constraint is None else str(constraint))
        if not render_params:
            return
        self.show_params = True
        for name, params in relations["sample_param"].items():
            for param in params:
                self._add_node(
                    param,
                    kind="param",
                    observed=False,
                    distribution=None,
                    constraint=self.constraints.get(param, _REAL),
                    plates=(),
                )
                self._add_edge(param, name)

    def _add_node(self, name: str, **node: Any) -> None:
        known = self.nodes.get(name)
        if known is None:
            self.nodes[name] = node
        elif known["observed"] != node["observed"]:
            known["observed"] = None

    def _add_edge(self, parent: str, child: str) -> None:
        if (parent, child) not in self.edges:
            self.edges.append((parent, child))

    def plate_paths(self) -> dict[str, tuple[str, ...]]:
        """Each node's plates ordered outermost first, for drawing plates as nested boxes.

        A plate with more sites goes outside one with fewer (ties: the one used first). Boxes
        are then a tree over these paths; where two plates overlap without nesting, the smaller
        one is drawn in pieces, one inside and one outside the bigger, each labelled with its
        name, so every box still holds exactly sites of its plate.

        >>> spec = GraphSpec(plates=["i", "j"])
        >>> for name, plates in [("x", ("i",)), ("y", ("i", "j")), ("z", ("j",))]:
        ...     spec.nodes[name] = {"plates": plates}
        >>> spec.plate_paths()["y"], spec.plate_paths()["z"]
        (('i', 'j'), ('j',))
        """
        members = {plate: 0 for plate in self.plates}
        for node in self.nodes.values():
            for plate in node["plates"]:
                members[plate] += 1
        rank = {plate: (-count, i) for i, (plate, count) in enumerate(members.items())}
        return {
            name: tuple(sorted(node["plates"], key=rank.__getitem__))
            for name, node in self.nodes.items()
        }


def model_graph_spec(
    model: Callable,
    model_args: tuple | list[tuple] | None = None,
    model_kwargs: dict | list[dict] | None = None,
    render_params: bool = False,
    render_deterministic: bool = False,
) -> GraphSpec:
    """Run ``model`` once per argument set and merge what :func:`render_model` draws. A list of
    ``model_args`` tuples and/or of ``model_kwargs`` dicts runs the model once per entry (Pyro's
    semisupervised form: a site observed in some runs only is drawn half shaded).

    The runs draw random numbers without moving the generators' streams (a picture must not
    change later results) and build no autograd graph.

    >>> import engine as pyro, engine.distributions as dist
    >>> def model(y=None):
    ...     pyro.sample("y", dist.Normal(0.0, 1.0), obs=y)
    >>> runs = [{}, {"y": torch.zeros(())}]
    >>> model_graph_spec(model, model_kwargs=runs).nodes["y"]["observed"] is None
    True
    """
    spec = GraphSpec()
    with preserved_rng_state(), torch.no_grad():
        for args, kwargs in _argument_sets(model_args, model_kwargs):
            relations = get_model_relations(
                model, args, kwargs, include_deterministic=render_deterministic
            )
            spec.add_run(relations, render_params)
    return spec


def _argument_sets(
    model_args: tuple | list[tuple] | None, model_kwargs: dict | list[dict] | None
) -> list[tuple[tuple, dict]]:
    if not isinstance(model_args, list) and not isinstance(model_kwargs, list):
        return [(_checked_args(model_args), _checked_kwargs(model_kwargs))]
    if not isinstance(model_args, list):
        model_args = [model_args] * len(model_kwargs)
    if not isinstance(model_kwargs, list):
        model_kwargs = [model_kwargs] * len(model_args)
    if len(model_args) != len(model_kwargs):
        raise ValueError(
            f"render_model: model_args lists {len(model_args)} runs but model_kwargs lists "
            f"{len(model_kwargs)}; give one entry per run in each list (or one list only)."
        )
    return [
        (_checked_args(args), _checked_kwargs(kwargs))
        for args, kwargs in zip(model_args, model_kwargs, strict=True)
    ]


def _checked_args(args: Any) -> tuple:
    if args is None:
        return ()
    if not isinstance(args, tuple):
        raise TypeError(
            f"render_model: model_args must be a tuple of the model's positional arguments "
            f"(or a list of such tuples), got {type(args).__name__}; write model_args=(data,) "
            "for a single argument."
        )
    return args


def _checked_kwargs(kwargs: Any) -> dict:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise TypeError(
            "render_model: model_kwargs must be a dict of the model's keyword arguments (or a "
            f"list of such dicts), got {type(kwargs).__name__}."
        )
    return kwargs


class ModelDiagram:
    """The engine's own drawing of a :class:`GraphSpec`: an SVG plate diagram that Jupyter
    shows through ``_repr_svg_`` and ``_repr_html_`` (the latter with ``note``, when there is
    one, above the picture).

    >>> spec = GraphSpec(plates=["N"])
    >>> spec.nodes["x"] = {"kind": "sample", "observed": True, "distribution": "Normal",
    ...                    "constraint": None, "plates": ("N",)}
    >>> diagram = ModelDiagram(spec)
    >>> diagram
    ModelDiagram(1 site, 0 edges, 1 plate)
    >>> 'data-site="x"' in diagram._repr_svg_()
    True
    """

    def __init__(
        self, spec: GraphSpec, render_distributions: bool = False, note: str | None = None
    ):
        self.spec = spec
        self.render_distributions = render_distributions
        self.note = note

    def with_note(self, note: str) -> ModelDiagram:
        """The same diagram, shown with ``note`` above it."""
        noted = copy.copy(self)
        noted.note = note
        return noted

    def _captions(self) -> dict[str, str]:
        if not self.render_distributions:
            return {}
        captions = {}
        for name, node in self.spec.nodes.items():
            if node["kind"] == "param":
                captions[name] = f"∈ {node['constraint']}"
            else:
                captions[name] = f"~ {node['distribution']}"
        return captions

    def to_svg(self) -> str:
        """The diagram as an SVG string (every name escaped)."""
        spec = self.spec
        paths = spec.plate_paths()
        # Params first: they feed the sites, so their edges run forwards along the rows.
        order = sorted(spec.nodes, key=lambda name: spec.nodes[name]["kind"] != "param")
        shape = layout(
            [(name, paths[name]) for name in order],
            {plate: plate for plate in spec.plates},
            spec.edges,
            self._captions(),
        )
        kinds = {name: node["kind"] for name, node in spec.nodes.items()}
        return to_svg(
            shape,
            observed={name: node["observed"] for name, node in spec.nodes.items()},
            colours={plate: plate_colour(i) for i, plate in enumerate(spec.plates)},
            captions=self._captions(),
            css_class="ppl-render-model",
            dashed={name for name, kind in kinds.items() if kind == "deterministic"},
            plain={name for name, kind in kinds.items() if kind == "param"},
        )

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def _repr_html_(self) -> str:
        note = f"<div class='ppl-render-note'>{escape(self.note)}</div>" if self.note else ""
        return f"<div class='ppl-render-model'>{note}{self.to_svg()}</div>"

    def __repr__(self) -> str:
        def count(items: Iterable, word: str) -> str:
            n = len(list(items))
            return f"{n} {word}" + ("" if n == 1 else "s")

        sites = [n for n, node in self.spec.nodes.items() if node["kind"] != "param"]
        params = [n for n, node in self.spec.nodes.items() if node["kind"] == "param"]
        parts = [count(sites, "site"), count(self.spec.edges, "edge")]
        parts.append(count(self.spec.plates, "plate"))
        if params:
            parts.append(count(params, "param"))
        return f"ModelDiagram({', '.join(parts)})"


def render_model(
    model: Callable,
    model_args: tuple | list[tuple] | None = None,
    model_kwargs: dict | list[dict] | None = None,
    filename: str | None = None,
    render_distributions: bool = False,
    render_params: bool = False,
    render_deterministic: bool = False,
) -> Any:
    """Draw ``model``'s sites, plates and dependencies (Pyro's ``pyro.render_model``).

    Returns a ``graphviz.Digraph`` when the ``graphviz`` package is installed, else a
    :class:`ModelDiagram` (see the module docstring for why, and for what happens when Graphviz's
    ``dot`` program is missing). ``model_args``/``model_kwargs`` may be lists to draw several
    runs in one picture. ``filename="model.pdf"`` also writes the picture to that file, the
    suffix naming the format; ``render_distributions`` annotates each site's distribution and
    each param's constraint, ``render_params`` draws the params the sites depend on, and
    ``render_deterministic`` draws ``deterministic`` sites (dashed).

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     pyro.sample("x", dist.Normal(0.0, 1.0))
    >>> graph = render_model(model)
    >>> "x" in (graph.source if hasattr(graph, "source") else graph.to_svg())
    True
    """
    spec = model_graph_spec(model, model_args, model_kwargs, render_params, render_deterministic)
    diagram = ModelDiagram(spec, render_distributions)
    try:
        import graphviz  # noqa: F401  (only whether it imports)
    except ImportError:
        if filename is not None:
            raise RenderError(
                f"render_model could not write {str(filename)!r}: writing a file needs the "
                "`graphviz` Python package (pip install graphviz) and Graphviz's `dot` "
                "program, and the package is not installed. Without filename= the model is "
                "drawn in the notebook by the engine itself."
            ) from None
        return diagram
    from engine.infer.render_graphviz import to_digraph, write_file

    graph = to_digraph(spec, diagram)
    if filename is not None:
        write_file(graph, filename)
    return graph


__all__ = ["GraphSpec", "ModelDiagram", "model_graph_spec", "render_model"]
