"""Init strategies: where an autoguide (or MCMC) starts each latent site.

An init strategy is a function ``init_loc_fn(site) -> value`` that reads the site's message
(``site["name"]``, ``site["fn"]``, ``site["value"]``) and returns a value inside the support of
``site["fn"]`` with the shape of one draw. Called with keyword arguments only, each strategy returns
itself with those settings bound, as in Pyro: ``init_to_median(num_samples=50)``.
:class:`InitMessenger` runs a model with every latent site set by a strategy.

>>> import torch, engine.distributions as dist
>>> site = {"name": "s", "fn": dist.HalfNormal(torch.ones(2)), "value": None}
>>> init_to_feasible(site)
tensor([1., 1.])
>>> init_to_value(values={"s": torch.tensor([0.5, 2.0])})(site)
tensor([0.5000, 2.0000])
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch.distributions.transforms import Transform

from engine.constraint_codec import describe_constraint
from engine.distributions import biject_to
from engine.errors import ShapeError, SupportError, fmt_shape
from engine.runtime import Message, Messenger, is_subsample_site

InitFn = Callable[[Message], torch.Tensor]

__all__ = [
    "InitMessenger",
    "init_to_feasible",
    "init_to_generated",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
]


def _draw_shape_and_like(site: Message) -> tuple[torch.Size, torch.Tensor]:
    """The shape of one draw, and a tensor whose dtype and device a value should have."""
    fn = site["fn"]
    shape = fn.shape()
    try:
        like = fn.sample().detach()
    except NotImplementedError:
        # No sampler (ImproperUniform): default dtype and device are all we can know.
        like = torch.zeros(shape)
    return shape, like


def _unconstrained(site: Message) -> tuple[Transform, torch.Size, torch.Tensor]:
    transform = biject_to(site["fn"].support)
    shape, like = _draw_shape_and_like(site)
    return transform, transform.inverse_shape(shape), like


def init_to_feasible(site: Message | None = None) -> torch.Tensor | InitFn:
    """The point of the support that unconstrained zero maps to (0 for a real site, 1 for a
    positive one, the centre of a simplex).

    >>> import engine.distributions as dist
    >>> init_to_feasible({"name": "p", "fn": dist.Beta(2.0, 5.0), "value": None})
    tensor(0.5000)
    """
    if site is None:
        return init_to_feasible
    transform, shape, like = _unconstrained(site)
    return transform(like.new_zeros(shape))


def init_to_uniform(site: Message | None = None, radius: float = 2.0) -> torch.Tensor | InitFn:
    """A random point whose unconstrained value is uniform on ``(-radius, radius)``.

    >>> import engine.distributions as dist
    >>> value = init_to_uniform(radius=0.5)({"name": "x", "fn": dist.Normal(0.0, 1.0)})
    >>> bool(-0.5 < value < 0.5)
    True
    """
    if site is None:
        return functools.partial(init_to_uniform, radius=radius)
    transform, shape, like = _unconstrained(site)
    unconstrained = (torch.rand(shape, dtype=like.dtype, device=like.device) * 2 - 1) * radius
    return transform(unconstrained)


def init_to_sample(site: Message | None = None) -> torch.Tensor | InitFn:
    """One draw from the site's prior.

    >>> import engine.distributions as dist
    >>> init_to_sample({"name": "x", "fn": dist.Normal(torch.zeros(3), 1.0)}).shape
    torch.Size([3])
    """
    if site is None:
        return init_to_sample
    return site["fn"].sample().detach()


def _inside_support(site: Message, value: torch.Tensor) -> bool:
    return bool(torch.isfinite(value).all()) and bool(site["fn"].support.check(value).all())


def init_to_median(
    site: Message | None = None,
    num_samples: int = 15,
    *,
    fallback: InitFn | None = init_to_feasible,
) -> torch.Tensor | InitFn:
    """The element-wise median of ``num_samples`` prior draws; ``fallback(site)`` when the prior
    cannot be sampled or the median leaves the support (a simplex, say).

    >>> import engine.distributions as dist
    >>> init_to_median({"name": "x", "fn": dist.Normal(3.0, 1e-6)}).round()
    tensor(3.)
    """
    if site is None:
        return functools.partial(init_to_median, num_samples=num_samples, fallback=fallback)
    try:
        samples = site["fn"].sample((num_samples,)).detach()
        value = samples.median(dim=0).values
        if _inside_support(site, value):
            return value
        reason = "the median of the draws lies outside the support"
    except NotImplementedError as error:
        reason = str(error)
    if fallback is None:
        raise ValueError(f"init_to_median cannot initialise site '{site['name']}': {reason}.")
    return fallback(site)


def init_to_mean(
    site: Message | None = None, *, fallback: InitFn | None = init_to_median
) -> torch.Tensor | InitFn:
    """The prior mean; ``fallback(site)`` when it is undefined, infinite or outside the support.

    >>> import engine.distributions as dist
    >>> init_to_mean({"name": "r", "fn": dist.Gamma(6.0, 2.0)})
    tensor(3.)
    """
    if site is None:
        return functools.partial(init_to_mean, fallback=fallback)
    fn = site["fn"]
    try:
        value = fn.mean.detach().expand(fn.shape()).clone()
        if _inside_support(site, value):
            return value
        reason = "its mean is infinite, undefined or outside the support"
    except NotImplementedError:
        reason = f"{type(fn).__name__} does not define a mean"
    if fallback is None:
        raise ValueError(f"init_to_mean cannot initialise site '{site['name']}': {reason}.")
    return fallback(site)


def init_to_value(
    site: Message | None = None,
    values: dict[str, Any] | None = None,
    *,
    fallback: InitFn | None = init_to_uniform,
) -> torch.Tensor | InitFn:
    """The value given in ``values`` for the site's name; ``fallback(site)`` for other sites
    (``fallback=None`` makes a missing site an error).

    >>> import engine.distributions as dist
    >>> init = init_to_value(values={"x": 1.5}, fallback=init_to_feasible)
    >>> prior = dist.Normal(0.0, 1.0)
    >>> init({"name": "x", "fn": prior}), init({"name": "y", "fn": prior})
    (tensor(1.5000), tensor(0.))
    """
    values = {} if values is None else values
    if site is None:
        return functools.partial(init_to_value, values=values, fallback=fallback)
    name = site["name"]
    if name in values:
        _, like = _draw_shape_and_like(site)
        value = torch.as_tensor(values[name], dtype=like.dtype, device=like.device).clone()
        # A value the user chose: poutine.reparam warns when a reparameterizer cannot keep it.
        value._custom_init = True
        return value
    if fallback is None:
        raise ValueError(
            f"init_to_value has no value for site '{name}' (it has values for "
            f"{sorted(values)}) and fallback=None. Add '{name}' to `values`, or give a fallback "
            "strategy such as init_to_median."
        )
    return fallback(site)


class _GeneratedInit:
    """The strategy behind :func:`init_to_generated`: asks ``generate`` for a fresh strategy at
    the start of every model execution.

    A strategy only ever sees sites, never "the model starts now"; a site name it has already
    answered for this execution can only mean the model is running again, so that is where a new
    strategy is generated.
    """

    def __init__(self, generate: Callable[[], InitFn]):
        self.generate = generate
        self._current: InitFn | None = None
        self._answered: set[str] = set()

    def __call__(self, site: Message) -> torch.Tensor:
        name = site["name"]
        if self._current is None or name in self._answered:
            self._current = self.generate()
            self._answered = set()
        self._answered.add(name)
        return self._current(site)


def init_to_generated(
    site: Message | None = None, generate: Callable[[], InitFn] = lambda: init_to_uniform
) -> torch.Tensor | InitFn:
    """Each model execution starts from the strategy that ``generate()`` returns then, e.g. an
    :func:`init_to_value` holding freshly drawn values (random restarts that stay consistent
    within one run of the model). ``generate`` is called once per execution.

    >>> import engine, engine.distributions as dist
    >>> draws = iter([1.0, 2.0])
    >>> init = init_to_generated(generate=lambda: init_to_value(values={"x": next(draws)}))
    >>> def model():
    ...     return engine.sample("x", dist.Normal(0.0, 1.0))
    >>> with InitMessenger(init):
    ...     first, second = model(), model()
    >>> first.item(), second.item()
    (1.0, 2.0)
    """
    strategy = _GeneratedInit(generate)
    return strategy if site is None else strategy(site)


def _strategy_name(init_fn: Callable) -> str:
    if isinstance(init_fn, functools.partial):
        return _strategy_name(init_fn.func)
    if hasattr(init_fn, "__wrapped__"):
        return _strategy_name(init_fn.__wrapped__)
    return getattr(init_fn, "__name__", type(init_fn).__name__)


class InitMessenger(Messenger):
    """Set every latent sample site to ``init_fn(site)`` instead of drawing it.

    The value is checked: it must have the shape of one draw and lie inside the support, and a
    bad one is an error naming the site and the strategy. Observed sites, sites that already have
    a value and plates' mini-batch sites are left alone.

    >>> import engine, engine.distributions as dist
    >>> with InitMessenger(init_to_feasible):
    ...     engine.sample("s", dist.LogNormal(0.0, 1.0))
    tensor(1.)
    """

    # poutine.reparam runs the init handlers outside it before it rewrites a site, so that the
    # initial value reaches the auxiliary sites.
    initializes_sites = True

    def __init__(self, init_fn: InitFn):
        self.init_fn = init_fn

    def _process_sample(self, msg: Message) -> None:
        if msg["value"] is not None or msg["is_observed"] or is_subsample_site(msg):
            return
        if msg["infer"].get("enumerate"):
            return
        with torch.no_grad():
            value = self.init_fn(msg)
        _check_init_value(msg, value, _strategy_name(self.init_fn))
        msg["value"] = value
        msg["done"] = True


def _check_init_value(msg: Message, value: Any, strategy: str) -> None:
    name, fn = msg["name"], msg["fn"]
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"init strategy {strategy} returned a {type(value).__name__} for site '{name}'; an "
            "init strategy must return a tensor."
        )
    if value.shape != fn.shape():
        raise ShapeError(
            f"init strategy {strategy} gave site '{name}' a value of shape "
            f"{fmt_shape(value.shape)}, but one draw of its {type(fn).__name__} has shape "
            f"{fmt_shape(fn.shape())} (batch {fmt_shape(fn.batch_shape)}, event "
            f"{fmt_shape(fn.event_shape)}, plates included). Give the init value that shape."
        )
    if not _inside_support(msg, value):
        raise SupportError(
            f"init strategy {strategy} gave site '{name}' a value outside the support of its "
            f"{type(fn).__name__} ({describe_constraint(fn.support)}), or a non-finite one. "
            "Give an init value strictly inside the support."
        )
