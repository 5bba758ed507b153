"""``PyroParam`` and ``PyroSample``: what a ``PyroModule`` attribute can be declared as.

Assigning one to an attribute of a :class:`~engine.nn.module.PyroModule` declares a learnable
parameter (``PyroParam``: an initial value, a constraint, an optional ``event_dim``) or a random
variable (``PyroSample``: a prior). Either may also decorate a method of a ``PyroModule``
subclass, which then computes the initial value or the prior from ``self`` on first use.

>>> import torch, engine.distributions as dist
>>> from torch.distributions import constraints
>>> scale = PyroParam(torch.ones(3), constraints.positive, event_dim=1)
>>> scale.constraint is constraints.positive, scale.event_dim
(True, 1)
>>> PyroSample(dist.Normal(0.0, 1.0)).prior
Normal(loc: 0.0, scale: 1.0)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.distributions import constraints
from torch.distributions.constraints import Constraint

from engine.errors import ModuleError

__all__ = ["PyroParam", "PyroSample", "is_distribution"]


def is_distribution(value: Any) -> bool:
    """Whether ``value`` is a distribution object (what ``sample`` draws from).

    >>> import engine.distributions as dist
    >>> is_distribution(dist.Normal(0.0, 1.0)), is_distribution(lambda self: None)
    (True, False)
    """
    return isinstance(value, torch.distributions.Distribution)


class PyroParam(NamedTuple):
    """A learnable attribute of a ``PyroModule``: ``init_value`` (a tensor, or a function of no
    arguments returning one), ``constraint`` (real by default) and ``event_dim`` (the rightmost
    dims that a subsampled plate leaves whole; None: all of them).

    The module keeps the unconstrained tensor as ``<name>_unconstrained`` (what ``parameters()``
    and ``state_dict()`` show); reading the attribute gives the constrained value. As a
    decorator, ``@PyroParam`` or ``@PyroParam(constraint=..., event_dim=...)`` turns a method
    computing the initial value from ``self`` into such an attribute.

    >>> import torch
    >>> from engine.nn import PyroModule
    >>> m = PyroModule()
    >>> m.rate = PyroParam(torch.tensor(2.0), constraints.positive)
    >>> round(m.rate.item(), 4), sorted(name for name, _ in m.named_parameters())
    (2.0, ['rate_unconstrained'])
    """

    init_value: torch.Tensor | Callable[[], torch.Tensor] | None = None
    constraint: Constraint = constraints.real
    event_dim: int | None = None

    def __get__(self, obj: Any, owner: type) -> Any:
        # Reached only when a PyroParam decorates a method, i.e. sits in a class body.
        if obj is None:
            return self
        name = self.init_value.__name__
        if name not in obj.__dict__["_pyro_params"]:
            init = functools.partial(self.init_value, obj)
            setattr(obj, name, PyroParam(init, self.constraint, self.event_dim))
        return obj.__getattr__(name)

    def __call__(self, init_value: Callable[[Any], torch.Tensor]) -> PyroParam:
        """``@PyroParam(constraint=..., event_dim=...)`` applied to the decorated method."""
        if self.init_value is not None:
            raise ModuleError(
                "PyroParam(...) already has an initial value, so it cannot decorate a method. "
                "Decorate with @PyroParam or @PyroParam(constraint=..., event_dim=...) only."
            )
        return PyroParam(init_value, self.constraint, self.event_dim)


def _required_positional(fn: Callable) -> int | None:
    """How many arguments ``fn`` must be given, or None when Python cannot tell (a builtin)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(
        1
        for p in signature.parameters.values()
        if p.kind in kinds and p.default is inspect.Parameter.empty
    )


def _check_prior(prior: Any) -> None:
    if is_distribution(prior):
        return
    if not callable(prior):
        raise ModuleError(
            f"PyroSample needs a prior: a distribution such as "
            f"dist.Normal(0., 1.).expand([3]).to_event(1), or a function of the module returning "
            f"one (lambda self: dist.Normal(self.loc, 1.)); got {type(prior).__name__} "
            f"{prior!r:.80}. To fix the attribute at a value, assign the tensor itself; to learn "
            "it, assign a PyroParam."
        )
    required = _required_positional(prior)
    if required is not None and required != 1:
        raise ModuleError(
            f"PyroSample's prior {getattr(prior, '__name__', prior)!r} is a function of "
            f"{required} required arguments, but a prior function takes exactly one, the module "
            "(lambda self: dist.Normal(self.loc, 1.)). Pass the distribution itself when it does "
            "not depend on the module."
        )


class PyroSample:
    """A random attribute of a ``PyroModule``: reading it inside a call of the module draws from
    ``prior`` at a sample site named by the attribute's path (``"linear.weight"``).

    ``prior`` is a distribution, or a function of the module returning a distribution (drawn) or
    a tensor (recorded as a deterministic site). The draw is cached until the outermost module
    call returns. Outside a call, each read draws from the prior with no site. As a decorator,
    ``@PyroSample`` turns a method returning the prior into such an attribute.

    >>> import engine.distributions as dist
    >>> from engine.nn import PyroModule
    >>> m = PyroModule()
    >>> m.z = PyroSample(dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    >>> m.z.shape
    torch.Size([2])
    """

    __slots__ = ("name", "prior")

    def __init__(self, prior: Any):
        _check_prior(prior)
        self.prior = prior
        self.name: str | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type) -> Any:
        # Reached only when a PyroSample decorates a method, i.e. sits in a class body. An
        # instance-level declaration of the same name (``obj.x = PyroSample(...)``) wins.
        if obj is None:
            return self
        declared = obj.__dict__["_pyro_samples"].get(self.name, self.prior)
        return obj._pyro_sample(self.name, declared)

    def __repr__(self) -> str:
        return f"PyroSample(prior={self.prior!r})"
