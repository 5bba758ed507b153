"""``reparam``: rewrite chosen sample sites as auxiliary sites plus a deterministic function.

A *reparameterizer* (see :mod:`engine.infer.reparam`) takes one sample site and draws one or more
auxiliary sites of its own in its place, then hands back what the original site becomes: a new
``fn`` (typically a masked ``Delta`` at the computed value), the ``value`` and ``is_observed``.
The handler asks ``config`` which reparameterizer (if any) a site gets: ``config`` is a dict
``{site name: reparameterizer}`` or a function ``site -> reparameterizer or None``.

Inference never notices: the auxiliary sites are ordinary latent sites (sampled by MCMC, guided by
SVI), and the rewritten site becomes a ``deterministic`` one whose value every trace records.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> from engine.infer.reparam import LocScaleReparam
>>> def model():
...     return engine.sample("x", dist.Normal(3.0, 2.0))
>>> model = poutine.reparam(model, config={"x": LocScaleReparam(centered=0.0)})
>>> tr = poutine.trace(model).get_trace()
>>> tr.stochastic_nodes, tr.observation_nodes  # x is deterministic now: a masked observed Delta
(['x_decentered'], ['x'])
>>> tr.nodes["x"]["infer"]["_deterministic"]
True
>>> bool(tr.nodes["x"]["value"] == 3.0 + 2.0 * tr.nodes["x_decentered"]["value"])
True
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.distributions import biject_to

from engine.errors import PPLError, ReparamError
from engine.runtime import (
    Message,
    Messenger,
    handler_stack,
    is_subsample_site,
    require_callable,
    wraps,
)

ReparamConfig = dict[str, Any] | Callable[[Message], Any]

# How deep auxiliary sites may be rewritten in turn before a config is judged to never stop.
_MAX_NESTING = 16


class ReparamMessenger(Messenger):
    """Apply the reparameterizer ``config`` names to each sample site it covers.

    The config is asked about auxiliary sites too (``x_base`` of a ``TransformReparam`` may get
    its own reparameterizer); a config that would rewrite its own auxiliary sites without end is
    an error.

    Some reparameterizers read the arguments of the model they rewrite (``reparam.args_kwargs``):
    they need the handler used as a wrapper (``poutine.reparam(model, config)``), not as a
    ``with`` block.

    >>> import engine, engine.distributions as dist
    >>> from engine.infer.reparam import LocScaleReparam
    >>> with ReparamMessenger(lambda site: LocScaleReparam(0.0) if site["name"] == "x" else None):
    ...     x = engine.sample("x", dist.Normal(0.0, 1.0))
    >>> x.shape
    torch.Size([])
    """

    def __init__(self, config: ReparamConfig):
        if not (isinstance(config, dict) or callable(config)):
            raise ReparamError(
                "poutine.reparam(config=...) takes a dict {site name: reparameterizer} or a "
                f"function site -> reparameterizer or None; got a {type(config).__name__}."
            )
        self.config = config
        self._args_kwargs: tuple[tuple, dict] | None = None
        # The sites being rewritten right now, outermost first (an auxiliary site may be
        # rewritten in turn while its parent's reparameterizer runs).
        self._applying: list[str] = []

    def __call__(self, fn: Callable) -> Callable:
        require_callable(self, fn)

        @wraps(fn)
        def run_reparameterized(*args: Any, **kwargs: Any) -> Any:
            # The arguments travel to the reparameterizers through a side channel.
            self._args_kwargs = args, kwargs
            try:
                with self:
                    return fn(*args, **kwargs)
            finally:
                self._args_kwargs = None

        run_reparameterized.messenger = self
        return run_reparameterized

    def _reparam_for(self, msg: Message) -> Any:
        if isinstance(self.config, dict):
            return self.config.get(msg["name"])
        return self.config(msg)

    def _process_sample(self, msg: Message) -> None:
        if is_subsample_site(msg) or msg["infer"].get("_deterministic", False):
            return
        reparam = self._reparam_for(msg)
        if reparam is None:
            return
        if len(self._applying) >= _MAX_NESTING:
            raise ReparamError(
                f"Site '{self._applying[0]}': poutine.reparam's config keeps rewriting the "
                f"auxiliary sites its own reparameterizers draw ({_MAX_NESTING} deep, now at "
                f"'{msg['name']}'). Have the config answer None for auxiliary sites (their names "
                "end in _decentered, _base, ...)."
            )
        if isinstance(reparam, type) or not hasattr(reparam, "apply"):
            raise ReparamError(
                f"Site '{msg['name']}': poutine.reparam's config gave a "
                f"{type(reparam).__name__}, which is not a reparameterizer (it has no apply()). "
                "Give an instance such as LocScaleReparam(), not the class or a function."
            )
        self._initialize_early(msg)
        initial = msg["value"]
        reparam.args_kwargs = self._args_kwargs
        self._applying.append(msg["name"])
        try:
            new = reparam.apply(
                {
                    "name": msg["name"],
                    "fn": msg["fn"],
                    "value": msg["value"],
                    "is_observed": msg["is_observed"],
                }
            )
        finally:
            reparam.args_kwargs = None
            self._applying.pop()
        value = new["value"]
        if value is not None:
            _validate(msg, value, observed_data=msg["is_observed"] and value is msg["value"])
            if initial is not None and value is not initial:
                _check_initial_value_kept(msg, reparam, initial, value)
        if new["is_observed"] and not msg["is_observed"]:
            # A latent site turned into a function of auxiliary latents: it is a deterministic
            # site now, recorded by every trace but never data (nor scored: its fn is masked).
            msg["infer"] = {**msg["infer"], "_deterministic": True}
        msg["fn"] = new["fn"]
        msg["value"] = value
        msg["is_observed"] = new["is_observed"]

    def _initialize_early(self, msg: Message) -> None:
        """Let the init handlers outside this one set the original site first, so that the
        reparameterizer can carry the initial value over to its auxiliary sites."""
        if msg["value"] is not None or msg["is_observed"]:
            return
        placeable = _has_bijection(msg["fn"])
        stack = handler_stack()
        for handler in reversed(stack[: stack.index(self)]):
            if getattr(handler, "initializes_sites", False):
                try:
                    handler._process_message(msg)
                except (PPLError, NotImplementedError):
                    if placeable:
                        raise
                    # A strategy that needs a bijection (an autoguide's) cannot start a site on
                    # a sphere: its reparameterizer's auxiliary sites will be started instead.
                if msg["value"] is not None:
                    return


def _has_bijection(fn: Any) -> bool:
    support = getattr(fn, "support", None)
    if support is None:
        return False
    try:
        biject_to(support)
    except NotImplementedError:
        return False
    return True


def _validate(msg: Message, value: torch.Tensor, observed_data: bool) -> None:
    """Check ``value`` against the site's distribution. The user's observed data may be smaller
    than one draw (a scalar observed for every element of a vector event, as when the site is
    scored without a reparameterizer), so it is checked as broadcast up to the draw's shape; a
    value the reparameterizer made must have that shape."""
    fn = msg["fn"]
    if not getattr(fn, "_validate_args", False) or not isinstance(value, torch.Tensor):
        return
    # Data that does not broadcast is left as it is, for _validate_sample to name the mismatch.
    with contextlib.suppress(RuntimeError):
        if observed_data:
            draw_shape = fn.batch_shape + fn.event_shape
            value = value.expand(torch.broadcast_shapes(value.shape, draw_shape))
    fn._validate_sample(value)


def _check_initial_value_kept(
    msg: Message, reparam: Any, initial: torch.Tensor, value: torch.Tensor
) -> None:
    if not torch._C._get_tracing_state() and value.shape != initial.shape:
        raise ReparamError(
            f"Site '{msg['name']}': {type(reparam).__name__} turned the initial value of shape "
            f"{tuple(initial.shape)} into one of shape {tuple(value.shape)}; a reparameterizer "
            "must keep the site's shape."
        )
    if getattr(initial, "_custom_init", False):
        warnings.warn(
            f"At sample site '{msg['name']}', {type(reparam).__name__} does not commute with "
            "initialization: it drew a new value instead of keeping the one given, so the site "
            "is falling back to default initialization.",
            RuntimeWarning,
            stacklevel=2,
        )
