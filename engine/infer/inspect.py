"""Which sites of a model depend on which, found by running the model once (Pyro's
``get_model_relations``); the model graph draws these edges.

How: each sampled (or observed) value is tagged with its site's name, and a torch function mode
follows the tags through every torch operation the model runs: an operation's results carry the
union of its inputs' tags. When a site's distribution is built, the tags on its parameters are the
sites it depends on. A value is tagged afresh at its own site, so only direct parents count
(``a -> b -> c`` gives the edges ``a -> b`` and ``b -> c``, not ``a -> c``), and a value the model
computes from sites and records with ``deterministic`` is a node of its own.

Why a torch function mode rather than autograd or a tensor subclass:

- Autograd only sees differentiable paths. A discrete value used as an index (``locs[z]``), a
  comparison or a cast leaves no gradient path, so mixture models would lose their edges; the
  mode sees every operation whatever the dtype.
- A tensor subclass would hand the model tensors of another type (``type(x) is torch.Tensor``
  fails, and the subclass leaks into the trace and into modules). The mode keeps the model's
  tensors plain: the tags live in a side table keyed by tensor identity, held weakly so the run's
  intermediate tensors are freed as usual. The mode also sees writes into plain tensors
  (``buffer[i] = z``), which a subclass only sees when the buffer is already one.

What it cannot see: values that leave torch (``z.item()``, ``float(z)``, ``z.tolist()``) and
Python control flow (``if z > 0:``) carry no tags, as in Pyro. A buffer is tagged as a whole: a
site that reads one element of a buffer other sites were written into depends, here, on all of
them. Writes through a view (``v = buf[0:1]; v += z``) do not reach the tensor viewed.

>>> import torch, engine, engine.distributions as dist
>>> def model():
...     mu = engine.sample("mu", dist.Normal(0.0, 1.0))
...     sigma = engine.sample("sigma", dist.HalfNormal(1.0))
...     engine.sample("x", dist.Normal(mu, sigma), obs=torch.tensor(0.5))
>>> get_model_relations(model)["sample_sample"]
{'mu': [], 'sigma': [], 'x': ['mu', 'sigma']}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from engine.distributions import Delta, ExpandedDistribution, MaskedDistribution
from engine.distributions.validation import validation_enabled
from engine.params import get_param_store
from engine.poutine.handlers import trace
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, Messenger, is_subsample_site

# A tag names the site a value came from: ("sample", name) or ("param", name).
Tag = tuple[str, str]
_NO_TAGS: frozenset[Tag] = frozenset()


_IN_PLACE_OPERATORS = frozenset(
    f"__i{op}__"
    for op in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "pow", "and", "or")
) | {"__ixor__", "__ilshift__", "__irshift__", "__setitem__"}


def _is_in_place(func: Callable) -> bool:
    """Whether ``func`` writes into its first argument (``add_``, ``x += y``, ``x[i] = y``)."""
    name = getattr(func, "__name__", "")
    if name in _IN_PLACE_OPERATORS:
        return True
    return name.endswith("_") and not name.endswith("__")


class _TagFlow(TorchFunctionMode):
    """A torch function mode that carries tags from the inputs of each operation to its
    outputs (and, for in-place operations, into the tensor written)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def tag(self, value: Any, tag: Tag) -> Any:
        """A new alias of ``value`` (a view of the same data) carrying exactly ``tag``; the
        model's own tensors (its data, its computed values) keep their tags."""
        if not isinstance(value, torch.Tensor):
            return value
        alias = value.view_as(value)
        self.tags[alias] = frozenset({tag})
        return alias

    def tags_of(self, obj: Any) -> frozenset[Tag]:
        """The tags of every tensor in ``obj`` (tensors, lists, tuples and dicts of them)."""
        if isinstance(obj, torch.Tensor):
            return self.tags.get(obj, _NO_TAGS)
        if isinstance(obj, list | tuple):
            return frozenset().union(*(self.tags_of(item) for item in obj))
        if isinstance(obj, dict):
            return frozenset().union(*(self.tags_of(item) for item in obj.values()))
        return _NO_TAGS

    def tags_of_distribution(self, fn: Any) -> frozenset[Tag]:
        """The tags of every tensor a distribution holds: its parameters, and those of the
        distributions and transforms it wraps (``Independent``, masks, ``expand``, flows)."""
        found: set[Tag] = set()
        seen: set[int] = set()
        pending = [fn]
        while pending:
            obj = pending.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, torch.Tensor):
                found |= self.tags.get(obj, _NO_TAGS)
            elif isinstance(obj, list | tuple):
                pending.extend(obj)
            elif isinstance(obj, dict):
                pending.extend(obj.values())
            elif isinstance(
                obj, torch.distributions.Distribution | torch.distributions.transforms.Transform
            ):
                pending.extend(vars(obj).values())
        return frozenset(found)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)  # the mode is off inside its own handler
        out = kwargs.get("out")
        inputs_only = {key: value for key, value in kwargs.items() if key != "out"}
        tags = self.tags_of(args) | self.tags_of(inputs_only)
        if out is not None:  # ``out=`` is overwritten: it carries the inputs' tags only
            for written in out if isinstance(out, list | tuple) else (out,):
                if isinstance(written, torch.Tensor):
                    self.tags[written] = tags
        if not tags:
            return result
        in_place = _is_in_place(func)
        if in_place and args and isinstance(args[0], torch.Tensor):
            self.tags[args[0]] = self.tags.get(args[0], _NO_TAGS) | tags
        inputs = {id(item) for item in args if isinstance(item, torch.Tensor)}
        for output in result if isinstance(result, list | tuple) else (result,):
            # An operation that hands back one of its inputs unchanged (``x.float()`` on a
            # float tensor) must not pass the other inputs' tags into it.
            if isinstance(output, torch.Tensor) and (in_place or id(output) not in inputs):
                self.tags[output] = self.tags.get(output, _NO_TAGS) | tags
        return result


class _RelationsMessenger(Messenger):
    """Tags every sample and param value with its site and, at each sample site, records the
    sites its distribution's parameters came from."""

    def __init__(self) -> None:
        self.flow = _TagFlow()
        self.parents: dict[str, frozenset[Tag]] = {}

    def __enter__(self) -> _RelationsMessenger:
        self.flow.__enter__()
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        try:
            super().__exit__(exc_type, exc_value, traceback)
        finally:
            self.flow.__exit__(exc_type, exc_value, traceback)

    def _postprocess_sample(self, msg: Message) -> None:
        if is_subsample_site(msg):
            return  # mini-batch indices: part of the plate, not a random variable
        self.parents[msg["name"]] = self.flow.tags_of_distribution(msg["fn"])
        msg["value"] = self.flow.tag(msg["value"], ("sample", msg["name"]))

    def _postprocess_param(self, msg: Message) -> None:
        msg["value"] = self.flow.tag(msg["value"], ("param", msg["name"]))


def trace_relations(
    model: Callable, model_args: tuple = (), model_kwargs: dict | None = None
) -> tuple[Trace, dict[str, Any]]:
    """Run ``model`` once; return its trace and :func:`get_model_relations`'s dict.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("z", dist.Normal(0.0, 1.0))
    >>> tr, relations = trace_relations(model)
    >>> list(tr.stochastic_nodes), relations["sample_dist"]
    (['z'], {'z': 'Normal'})
    """
    tracker = _RelationsMessenger()
    with tracker:
        model_trace = trace(model).get_trace(*model_args, **(model_kwargs or {}))
    sites = [
        (name, site)
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample" and not is_subsample_site(site)
    ]
    # Parents are listed in the order the model reached them, params included (as Pyro does).
    order = {name: i for i, name in enumerate(model_trace.nodes)}

    def named(tags: frozenset[Tag], kind: str) -> list[str]:
        names = [name for tag_kind, name in tags if tag_kind == kind]
        return sorted(names, key=lambda name: (order.get(name, len(order)), name))

    plate_sample: dict[str, list[str]] = {}
    for name, site in sites:
        for frame in site["cond_indep_stack"]:
            plate_sample.setdefault(frame.name, []).append(name)
    constraints = get_param_store().get_state()["constraints"]
    params = [name for name, site in model_trace.nodes.items() if site["type"] == "param"]
    relations = {
        "sample_sample": {name: named(tracker.parents[name], "sample") for name, _ in sites},
        "sample_param": {name: named(tracker.parents[name], "param") for name, _ in sites},
        "sample_dist": {name: _distribution_name(site) for name, site in sites},
        "param_constraint": {name: constraints.get(name) for name in params},
        "plate_sample": plate_sample,
        "observed": [
            name
            for name, site in sites
            if site["is_observed"] and not site["infer"].get("_deterministic", False)
        ],
    }
    return model_trace, relations


def _distribution_name(site: Message) -> str:
    if site["infer"].get("_deterministic", False):
        return "Deterministic"
    fn = site["fn"]
    # .to_event(), .mask() and .expand() wrap the distribution; a HalfNormal (a transformed
    # Normal) stays a HalfNormal.
    while isinstance(
        fn, torch.distributions.Independent | MaskedDistribution | ExpandedDistribution
    ):
        fn = fn.base_dist
    return type(fn).__name__


def get_model_relations(
    model: Callable,
    model_args: tuple | None = None,
    model_kwargs: dict | None = None,
    include_deterministic: bool = False,
) -> dict[str, Any]:
    """How the sites of ``model`` relate, from one run: ``sample_sample`` (each sample site:
    the sample sites its distribution depends on), ``sample_param`` (the params it depends on),
    ``sample_dist`` (its distribution's class name), ``param_constraint`` (each param's
    constraint), ``plate_sample`` (each plate: its sites) and ``observed`` (the observed sites).
    With ``include_deterministic=True``, ``deterministic`` sites count as sample sites (never
    observed) that depend on what their value was computed from; without, as in Pyro, they are
    left out and a site computed from one depends on that one's parents.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     z = engine.sample("z", dist.Categorical(torch.ones(3)))
    ...     engine.sample("x", dist.Normal(torch.tensor([-1.0, 0.0, 1.0])[z], 1.0))
    >>> get_model_relations(model)["sample_sample"]["x"]  # an index is a dependency too
    ['z']
    """
    model_trace, relations = trace_relations(model, model_args or (), model_kwargs)
    if include_deterministic:
        return relations
    deterministic = {
        name
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample" and site["infer"].get("_deterministic", False)
    }
    parents = relations["sample_sample"]
    kept = [name for name in parents if name not in deterministic]
    relations["sample_sample"] = {
        name: _through(parents, parents[name], deterministic) for name in kept
    }
    for key in ("sample_param", "sample_dist"):
        relations[key] = {name: relations[key][name] for name in kept}
    relations["plate_sample"] = {
        plate: [name for name in names if name not in deterministic]
        for plate, names in relations["plate_sample"].items()
    }
    return relations


def _through(parents: dict[str, list[str]], names: list[str], skipped: set[str]) -> list[str]:
    """``names`` with each skipped site replaced by its own parents, recursively (a site computed
    from a skipped one depends on what that one was computed from).

    >>> _through({"a": [], "d": ["a"], "b": ["d"]}, ["d"], {"d"})
    ['a']
    """
    found: list[str] = []
    for name in names:
        for parent in _through(parents, parents[name], skipped) if name in skipped else [name]:
            if parent not in found:
                found.append(parent)
    return found


def _is_point_mass(site: Message) -> bool:
    fn = site["fn"]
    while isinstance(
        fn, torch.distributions.Independent | MaskedDistribution | ExpandedDistribution
    ):
        fn = fn.base_dist
    return isinstance(fn, Delta)


def get_dependencies(
    model: Callable,
    model_args: tuple | None = None,
    model_kwargs: dict | None = None,
    include_deterministic: bool = False,
) -> dict[str, dict[str, dict[str, set[str]]]]:
    """Which sites of ``model`` depend on which, in the prior and in the posterior (Pyro's
    ``get_dependencies``), from one run of the model.

    ``prior_dependencies`` maps every sample site (latent or observed) to the latent sites its
    distribution depends on, itself included. ``posterior_dependencies`` maps every latent site
    to the later sites (latent or observed) it is coupled with once the data are seen: the sites
    that share a factor of the joint density with it (moralization). Each upstream site comes
    with the set of plates across which the coupling is complete: a plate both sites sit in but
    their shared factor does not (``a[0]`` then depends on ``a[1]``). In the prior these sets
    are empty, since one run cannot tell which element of a plated value another element was
    built from. ``deterministic`` sites and point-mass (``Delta``) sites are left out, and a
    site built from one depends on what that one was built from; with
    ``include_deterministic=True`` deterministic sites stay, as observed ones.

    >>> import torch, engine, engine.distributions as dist
    >>> def model():
    ...     with engine.plate("p", 3):
    ...         a = engine.sample("a", dist.Normal(0.0, 1.0))
    ...     engine.sample("b", dist.Normal(a.sum(), 1.0), obs=torch.tensor(0.0))
    >>> deps = get_dependencies(model)
    >>> deps["prior_dependencies"]
    {'a': {'a': set()}, 'b': {'b': set(), 'a': set()}}
    >>> deps["posterior_dependencies"]  # b couples all three elements of a
    {'a': {'a': {'p'}, 'b': set()}}
    """
    # Only the structure matters here: a degenerate argument (a zero scale) must not stop the run.
    with validation_enabled(False):
        model_trace, relations = trace_relations(model, model_args or (), model_kwargs)
    parents = relations["sample_sample"]
    sites = {name: model_trace.nodes[name] for name in parents}
    skipped = {
        name
        for name, site in sites.items()
        if (site["infer"].get("_deterministic", False) and not include_deterministic)
        or (_is_point_mass(site) and not site["infer"].get("_deterministic", False))
    }
    order = [name for name in parents if name not in skipped]
    position = {name: i for i, name in enumerate(order)}
    latent = {
        name
        for name in order
        if not sites[name]["is_observed"] and not sites[name]["infer"].get("_deterministic")
    }
    plates = {
        name: {f.name for f in sites[name]["cond_indep_stack"] if f.vectorized} for name in order
    }
    prior: dict[str, dict[str, set[str]]] = {}
    for name in order:
        upstream = [p for p in _through(parents, parents[name], skipped) if p in latent]
        prior[name] = {name: set()}
        prior[name].update({p: set() for p in upstream if p != name})
    posterior: dict[str, dict[str, set[str]]] = {name: {} for name in order if name in latent}
    for name, factor in prior.items():
        # The factor of ``name`` couples every pair of its sites; the earlier one keeps the edge.
        members = sorted(factor, key=position.__getitem__)
        for i, upstream in enumerate(members):
            if upstream not in latent:
                continue
            for downstream in members[i:]:
                crossed = (plates[upstream] & plates[downstream]) - plates[name]
                posterior[upstream].setdefault(downstream, set()).update(crossed)
    return {"prior_dependencies": prior, "posterior_dependencies": posterior}


__all__ = ["get_dependencies", "get_model_relations", "trace_relations"]
