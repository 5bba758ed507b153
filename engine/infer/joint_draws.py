"""Guides trained on the model's own data: joint draws ``(z, x) ~ p`` and the guide run on them.

Compiled importance sampling (:class:`~engine.infer.csis.CSIS`) and the sleep phase of
reweighted wake-sleep (:class:`~engine.infer.rws.ReweightedWakeSleep`) both fit a guide
``q(z | x)`` by ``-log q(z | x)`` averaged over draws of the model itself, latents and
observations together. The guide receives the drawn observations by site name as the keyword
argument ``observations={site name: value}``; this module holds that one protocol.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def model():
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
...     pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(0.0))
>>> def guide(observations=None):
...     pyro.sample("z", dist.Normal(observations["x"] / 2, 0.75))
>>> joint = sample_from_joint(model, (), {})
>>> guide_trace = guide_trace_on(guide, joint, (), {}, "CSIS")
>>> bool(guide_trace.nodes["z"]["value"] == joint.nodes["z"]["value"])  # replayed latents
True
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from engine.errors import ArgumentError, ObservationNameError, did_you_mean
from engine.infer.model_guide_checks import check_guide_latents, run_guide
from engine.poutine.handlers import replay, trace, uncondition
from engine.poutine.trace_struct import Trace

OBSERVATIONS = "observations"


def sample_from_joint(model: Callable, args: tuple, kwargs: dict[str, Any]) -> Trace:
    """One draw of the model's latents and observations together: a trace in which the sites
    the model observes hold drawn values, are marked observed again (they are the data the
    guide conditions on), and keep ``infer["was_observed"]``.

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
    ...     pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(100.0))
    >>> joint = sample_from_joint(model, (), {})
    >>> joint.observation_nodes, bool(joint.nodes["x"]["value"] < 50)
    (['x'], True)
    """
    with torch.no_grad():
        joint = trace(uncondition(model)).get_trace(*args, **kwargs)
    for site in joint.nodes.values():
        if site["type"] == "sample" and site["infer"].get("was_observed", False):
            site["is_observed"] = True
    return joint


def observations_of(joint: Trace, algorithm: str) -> dict[str, Any]:
    """The observed values of a joint draw by site name, as the guide receives them: a dict
    whose missing keys raise :class:`~engine.errors.ObservationNameError` naming the observed
    sites (and ``algorithm``, the one that passed them).

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
    >>> observations = observations_of(sample_from_joint(model, (), {}), "CSIS")
    >>> sorted(observations)
    ['x']
    >>> try:
    ...     observations["X"]
    ... except KeyError as error:
    ...     print(str(error)[:52])
    CSIS: the guide looked up observations['X'], but the
    """
    return _Observations(
        algorithm,
        (
            (name, site["value"])
            for name, site in joint.nodes.items()
            if site["type"] == "sample" and site["infer"].get("was_observed", False)
        ),
    )


def guide_trace_on(
    guide: Callable, joint: Trace, args: tuple, kwargs: dict[str, Any], algorithm: str
) -> Trace:
    """Run the guide given the observations of ``joint``, its latents replayed from ``joint``:
    the trace whose log density is the loss of that draw."""
    guide_kwargs = {**kwargs, OBSERVATIONS: observations_of(joint, algorithm)}
    # Replayed from the latents alone: a guide that samples an observed site then draws it,
    # and the check below names it as the mistake it is.
    latents = Trace()
    latents.nodes = {name: joint.nodes[name] for name in joint.stochastic_nodes}
    guide_trace = run_guide(trace(replay(guide, trace=latents)), args, guide_kwargs)
    check_guide_latents(guide_trace, joint, algorithm)
    return guide_trace


class _Observations(dict):
    """A plain dict of observed values, but a missing name says which names there are."""

    def __init__(self, algorithm: str, items: Any) -> None:
        super().__init__(items)
        self.algorithm = algorithm

    def __missing__(self, name: object) -> Any:
        if not self:
            listed = "observes no site, so there is nothing to look up"
        else:
            listed = f"observes {sorted(self)}"
        raise ObservationNameError(
            f"{self.algorithm}: the guide looked up observations[{name!r}], but the model "
            f"{listed}. The guide receives the value of each site the model observes (obs=...) "
            "under that site's name: use the model's site names, or observe the site in the "
            "model." + did_you_mean(str(name), self)
        )


def require_observations_keyword(guide: Callable, algorithm: str, alternative: str = "") -> None:
    """Refuse, before any training, a guide that cannot take ``observations=...``;
    ``alternative`` (a sentence) ends the message with another way out.

    >>> require_observations_keyword(lambda observations=None: None, "CSIS")  # accepted
    >>> def guide(data):
    ...     pass
    >>> try:
    ...     require_observations_keyword(guide, "CSIS")
    ... except ArgumentError as error:
    ...     print(str(error)[:68])
    CSIS: the guide guide(data) takes no keyword argument 'observations'
    """
    # A module's __call__ takes (*args, **kwargs) and hands them to forward: read forward.
    target = guide.forward if isinstance(guide, torch.nn.Module) else guide
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin or an odd callable: let the call decide
        return
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return
        if parameter.name == OBSERVATIONS and parameter.kind in kinds:
            return
    name = getattr(guide, "__name__", None) or type(guide).__name__
    where = "forward" if isinstance(guide, torch.nn.Module) else name
    raise ArgumentError(
        f"{algorithm}: the guide {name}{signature} takes no keyword argument 'observations'. "
        f"{algorithm} passes the values of the model's observed sites to the guide as "
        "observations={site name: value}, so that it proposes the latents given the data. "
        f"Fix: add the parameter to {where}, e.g. "
        f"def {where}(..., observations=None), and read the data from it."
        + (f" {alternative}" if alternative else "")
    )
