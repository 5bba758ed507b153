"""``block`` hides sites from the handlers outside it; ``escape`` leaves a run at a chosen site.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     engine.sample("a", dist.Normal(0.0, 1.0))
...     engine.sample("b", dist.Normal(0.0, 1.0))
>>> list(poutine.trace(poutine.block(model, hide=["a"])).get_trace().stochastic_nodes)
['b']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.runtime import Message, Messenger

SitePredicate = Callable[[Message], bool]


def _hide_predicate(
    hide_all: bool,
    expose_all: bool,
    hide: Iterable[str] | None,
    expose: Iterable[str] | None,
    hide_types: Iterable[str] | None,
    expose_types: Iterable[str] | None,
) -> SitePredicate:
    if (hide is not None or hide_types is not None) and (
        expose is not None or expose_types is not None
    ):
        raise ValueError("block: give sites to hide or sites to expose, not both")
    if hide is not None or hide_types is not None:
        names, types = frozenset(hide or ()), frozenset(hide_types or ())
        return lambda msg: msg["name"] in names or msg["type"] in types
    if expose is not None or expose_types is not None:
        names, types = frozenset(expose or ()), frozenset(expose_types or ())
        return lambda msg: not (msg["name"] in names or msg["type"] in types)
    hidden = hide_all and not expose_all
    return lambda msg: hidden


class BlockMessenger(Messenger):
    """Stop the selected messages here, so handlers further out never see them.

    Selection, first match wins: ``hide_fn``, ``expose_fn``, the ``hide``/``hide_types`` lists,
    the ``expose``/``expose_types`` lists, else everything (``hide_all``) or nothing
    (``expose_all`` or ``hide_all=False``).

    >>> with BlockMessenger(hide=["x"]):
    ...     pass
    """

    def __init__(
        self,
        hide_fn: SitePredicate | None = None,
        expose_fn: SitePredicate | None = None,
        hide_all: bool = True,
        expose_all: bool = False,
        hide: Iterable[str] | None = None,
        expose: Iterable[str] | None = None,
        hide_types: Iterable[str] | None = None,
        expose_types: Iterable[str] | None = None,
    ):
        if hide_fn is not None:
            self.hide_fn = hide_fn
        elif expose_fn is not None:
            self.hide_fn = lambda msg: not expose_fn(msg)
        else:
            self.hide_fn = _hide_predicate(
                hide_all, expose_all, hide, expose, hide_types, expose_types
            )

    def _process_message(self, msg: Message) -> None:
        if self.hide_fn(msg):
            msg["stop"] = True


class NonlocalExit(Exception):
    """Raised by ``escape`` to leave a run at a site; ``site`` holds that site's message."""

    def __init__(self, site: Message):
        super().__init__(f"escaped at site {site['name']!r}")
        self.site = site


class EscapeMessenger(Messenger):
    """At the first site where ``escape_fn(msg)`` holds, abort the run with :class:`NonlocalExit`.

    >>> with EscapeMessenger(lambda msg: True):
    ...     pass
    """

    def __init__(self, escape_fn: SitePredicate):
        self.escape_fn = escape_fn

    def _process_message(self, msg: Message) -> None:
        if self.escape_fn(msg):
            msg["done"] = True
            msg["stop"] = True
            msg["continuation"] = _raise_nonlocal_exit


def _raise_nonlocal_exit(msg: Message) -> None:
    raise NonlocalExit(msg)
