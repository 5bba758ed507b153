"""The reparameterizer protocol: what ``poutine.reparam`` asks of the objects in its config.

A reparameterizer's :meth:`Reparam.apply` receives a small message ``{"name", "fn", "value",
"is_observed"}`` describing one sample site, draws whatever auxiliary sites it needs with
``engine.sample``, and returns ``{"fn", "value", "is_observed"}``: what the original site becomes.
``value`` is not None when the site is observed or already has an initial value; a reparameterizer
then computes its auxiliary sites' values from it (so initialization carries over), and otherwise
draws them and computes the site's value.

The older protocol, a ``__call__(name, fn, obs) -> (new_fn, value)``, still works: the default
``apply`` calls it, with a ``DeprecationWarning``.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> class Shift(Reparam):  # x ~ Normal(m, 1) written as m + (x - m), x - m ~ Normal(0, 1)
...     def apply(self, msg):
...         loc = msg["fn"].loc
...         start = None if msg["value"] is None else msg["value"] - loc
...         standard = dist.Normal(torch.zeros_like(loc), 1.0)
...         noise = auxiliary_sample(msg["name"] + "_noise", standard, start, msg["is_observed"])
...         return deterministic_result(loc + noise, event_dim=0)
>>> def model():
...     return engine.sample("x", dist.Normal(5.0, 1.0))
>>> tr = poutine.trace(poutine.reparam(model, config={"x": Shift()})).get_trace()
>>> bool(tr.nodes["x"]["value"] == 5.0 + tr.nodes["x_noise"]["value"])
True
"""

from __future__ import annotations

import warnings
from typing import Any, TypedDict

import torch

import engine
from engine.distributions import Delta
from engine.distributions.torch_distribution import _WRAPPERS, TorchDistributionMixin
from engine.errors import ReparamError


class ReparamMessage(TypedDict):
    """What a reparameterizer is told about a site."""

    name: str
    fn: Any
    value: torch.Tensor | None
    is_observed: bool


class ReparamResult(TypedDict):
    """What the site becomes."""

    fn: Any
    value: torch.Tensor | None
    is_observed: bool


class Reparam:
    """Base class of reparameterizers: subclasses define :meth:`apply`.

    ``args_kwargs`` holds the wrapped model's ``(args, kwargs)`` while ``apply`` runs, when
    ``poutine.reparam`` wraps the model (None under a ``with`` block).

    >>> class Identity(Reparam):
    ...     def apply(self, msg):
    ...         return {"fn": msg["fn"], "value": msg["value"], "is_observed": msg["is_observed"]}
    >>> import engine.distributions as dist
    >>> Identity().apply({"name": "x", "fn": dist.Normal(0.0, 1.0), "value": None,
    ...                   "is_observed": False})["is_observed"]
    False
    """

    args_kwargs: tuple[tuple, dict] | None = None

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Rewrite one site; the default calls the deprecated ``__call__(name, fn, obs)``."""
        if type(self).__call__ is Reparam.__call__:
            raise ReparamError(
                f"{type(self).__name__} defines neither apply(msg) nor the older "
                "__call__(name, fn, obs): a reparameterizer must define apply()."
            )
        warnings.warn(
            f"{type(self).__name__}.__call__(name, fn, obs) is the deprecated reparameterizer "
            "protocol; define apply(msg) returning {'fn', 'value', 'is_observed'} instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        new_fn, value = self(msg["name"], msg["fn"], msg["value"])
        # The old protocol only knew observations: a value it makes up from nothing observes.
        is_observed = msg["value"] is None and value is not None
        return {"fn": new_fn, "value": value, "is_observed": is_observed}

    def __call__(self, name: str, fn: Any, obs: torch.Tensor | None) -> tuple[Any, Any]:
        """The deprecated protocol: return ``(new_fn, value)``; subclasses define ``apply``."""
        raise NotImplementedError(f"{type(self).__name__} implements apply(), not __call__()")

    def _unwrap(self, fn: Any) -> tuple[Any, int]:
        """``fn`` without its ``Independent`` wrappers, and the event dim they gave it."""
        return unwrap_independent(fn)

    def _wrap(self, fn: Any, event_dim: int) -> Any:
        """``fn`` with batch dims moved into its event until its event dim is ``event_dim``."""
        return wrap_event(fn, event_dim)


def unwrap_independent(fn: Any) -> tuple[Any, int]:
    """Strip ``Independent`` wrappers: the base distribution and the original event dim.

    >>> import torch, engine.distributions as dist
    >>> base, event_dim = unwrap_independent(dist.Normal(torch.zeros(3), 1.0).to_event(1))
    >>> type(base).__name__, event_dim
    ('Normal', 1)
    """
    event_dim = len(fn.event_shape)
    while isinstance(fn, torch.distributions.Independent):
        fn = fn.base_dist
    return fn, event_dim


def wrap_event(fn: Any, event_dim: int) -> Any:
    """``fn.to_event(k)`` with the ``k`` that makes its event dim ``event_dim``.

    >>> import torch, engine.distributions as dist
    >>> wrap_event(dist.Normal(torch.zeros(2, 3), 1.0), 2).event_shape
    torch.Size([2, 3])
    """
    missing = event_dim - len(fn.event_shape)
    if missing < 0:
        raise ReparamError(
            f"cannot give a {type(fn).__name__} of event dim {len(fn.event_shape)} the smaller "
            f"event dim {event_dim}"
        )
    return fn.to_event(missing) if missing else fn


def with_pyro_methods(fn: Any) -> Any:
    """``fn`` as the engine's class when it is a plain torch distribution (torch builds the base of
    a ``LogNormal`` as a plain ``torch.distributions.Normal``), so that it can be drawn from at a
    site and expanded, masked and moved into the event like any other.

    >>> import engine.distributions as dist
    >>> base = dist.LogNormal(0.0, 1.0).base_dist
    >>> type(base).__module__, type(with_pyro_methods(base)).__module__
    ('torch.distributions.normal', 'engine.distributions.torch_wrappers')
    """
    wrapper = _WRAPPERS.get(type(fn))
    if wrapper is None or isinstance(fn, TorchDistributionMixin):
        return fn
    rewrapped = object.__new__(wrapper)
    rewrapped.__dict__.update(fn.__dict__)
    return rewrapped


def auxiliary_sample(
    name: str, fn: Any, value: torch.Tensor | None, is_observed: bool
) -> torch.Tensor:
    """Sample the auxiliary site ``name``: observed at ``value`` when the original site was
    observed, started at ``value`` when it only had an initial value, drawn otherwise.

    >>> import torch, engine.distributions as dist
    >>> with engine.poutine.trace() as tracer:
    ...     _ = auxiliary_sample("u", dist.Normal(0.0, 1.0), torch.tensor(0.5), False)
    >>> tracer.trace.nodes["u"]["is_observed"], float(tracer.trace.nodes["u"]["value"])
    (False, 0.5)
    """
    return engine.sample(name, fn, obs=value, infer={"is_observed": bool(is_observed)})


def deterministic_result(value: torch.Tensor, event_dim: int) -> ReparamResult:
    """The site as a deterministic one: a ``Delta`` at ``value`` that scores nothing (its density
    lives in the auxiliary sites).

    >>> import torch
    >>> result = deterministic_result(torch.ones(2), event_dim=1)
    >>> result["is_observed"], float(result["fn"].log_prob(torch.ones(2)))
    (True, 0.0)
    """
    masked = Delta(value, event_dim=event_dim).mask(False)
    return {"fn": masked, "value": value, "is_observed": True}


def require_family(name: str, fn: Any, family: type | tuple[type, ...], reparam: str) -> None:
    """Raise a :class:`ReparamError` naming the site unless ``fn`` is of ``family``.

    >>> import engine.distributions as dist
    >>> try:
    ...     require_family("x", dist.Gamma(1.0, 1.0), dist.Normal, "LocScaleReparam")
    ... except ReparamError as error:
    ...     print(error)
    Site 'x': LocScaleReparam rewrites Normal sites, but this one is a Gamma.
    """
    if not isinstance(fn, family):
        families = family if isinstance(family, tuple) else (family,)
        wanted = " or ".join(f.__name__ for f in families)
        raise ReparamError(
            f"Site '{name}': {reparam} rewrites {wanted} sites, but this one is a "
            f"{type(fn).__name__}."
        )


def refuse_observed(msg: ReparamMessage, reparam: str) -> None:
    """Raise when a reparameterizer that only rewrites latent sites meets an observed one."""
    if msg["is_observed"]:
        raise ReparamError(
            f"Site '{msg['name']}' is observed, and {reparam} only rewrites latent sites. Leave "
            "it out of poutine.reparam's config."
        )
