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

from engine.runtime import Message, Messenger, handler_stack, is_subsample_site

SitePredicate = Callable[[Message], bool]


def _site_kind(msg: Message) -> str:
    # Pyro's block tells observed sample sites apart as the pseudo-type "observe".
    return "observe" if msg["type"] == "sample" and msg["is_observed"] else msg["type"]


class _HidePredicate:
    """Which sites a ``block`` built from name and type lists hides. A class rather than a closure
    so that a blocked model pickles."""

    def __init__(
        self,
        hide_all: bool,
        expose_all: bool,
        hide: Iterable[str] | None,
        expose: Iterable[str] | None,
        hide_types: Iterable[str] | None,
        expose_types: Iterable[str] | None,
    ) -> None:
        self.hidden_names, self.hidden_kinds = frozenset(hide or ()), frozenset(hide_types or ())
        self.shown_names, self.shown_kinds = frozenset(expose or ()), frozenset(expose_types or ())
        hides_some = bool(self.hidden_names or self.hidden_kinds)
        shows_some = bool(self.shown_names or self.shown_kinds)
        # With only a hide list, everything else is shown; with an expose list, everything else
        # is hidden; with neither, hide_all / expose_all decide.
        self.default_hidden = shows_some or (not hides_some and hide_all and not expose_all)

    def __call__(self, msg: Message) -> bool:
        kind = _site_kind(msg)
        if msg["name"] in self.hidden_names or kind in self.hidden_kinds:
            return True
        if msg["name"] in self.shown_names or kind in self.shown_kinds:
            return False
        return self.default_hidden


class _NotExposed:
    """Hide what ``expose_fn`` does not expose (picklable when ``expose_fn`` is)."""

    def __init__(self, expose_fn: SitePredicate) -> None:
        self.expose_fn = expose_fn

    def __call__(self, msg: Message) -> bool:
        return not self.expose_fn(msg)


class BlockMessenger(Messenger):
    """Stop the selected messages here, so handlers further out never see them.

    Selection: ``hide_fn`` or ``expose_fn`` when given; else a site named in ``hide`` (or of a
    type in ``hide_types``) is hidden, one named in ``expose`` (``expose_types``) is shown, and
    the rest are shown when only hide lists are given, hidden when expose lists are given, and
    otherwise hidden unless ``hide_all=False`` or ``expose_all=True``. Types are ``"sample"``,
    ``"param"``, ..., and ``"observe"`` for observed sample sites.

    >>> import engine, engine.distributions as dist
    >>> with engine.poutine.trace() as tracer:
    ...     with BlockMessenger(hide=["x"]):
    ...         _ = engine.sample("x", dist.Normal(0.0, 1.0))
    ...         _ = engine.sample("y", dist.Normal(0.0, 1.0))
    >>> list(tracer.trace.nodes)  # the outer trace never sees x
    ['y']
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
            self.hide_fn = _NotExposed(expose_fn)
        else:
            self.hide_fn = _HidePredicate(
                hide_all, expose_all, hide, expose, hide_types, expose_types
            )

    def _process_message(self, msg: Message) -> None:
        if self.hide_fn(msg):
            msg["stop"] = True


class NonlocalExit(Exception):
    """Raised by ``escape`` to leave a run at a site; ``site`` holds that site's message.

    >>> NonlocalExit({"name": "z"}).site["name"]
    'z'
    """

    def __init__(self, site: Message):
        super().__init__(f"escaped at site {site['name']!r}")
        self.site = site

    def reset_stack(self) -> None:
        """Let the handlers still active where the exit is caught drop per-run state before the
        model is run again (Pyro's ``reset_stack``, which ``poutine.queue`` calls): each one's
        ``_reset()``, innermost first, up to a ``block`` that hides the escaped site.

        The handlers the exit passed through were already exited on the way out (their
        ``__exit__`` restores the stack), so this reaches only those the catching code runs
        inside: a ``trace`` around the retried calls forgets the sites of the aborted run
        (``TraceMessenger._reset``), and a user's ``Messenger`` subclass may define ``_reset``.
        """
        for handler in reversed(handler_stack()):
            reset = getattr(handler, "_reset", None)
            if callable(reset):
                reset()
            if isinstance(handler, BlockMessenger) and handler.hide_fn(self.site):
                break


class EscapeMessenger(Messenger):
    """At the first sample site where ``escape_fn(msg)`` holds, abort the run with
    :class:`NonlocalExit` (plates' mini-batch sites are never escaped).

    >>> import engine, engine.distributions as dist
    >>> try:
    ...     with EscapeMessenger(lambda msg: msg["name"] == "y"):
    ...         _ = engine.sample("x", dist.Normal(0.0, 1.0))
    ...         _ = engine.sample("y", dist.Normal(0.0, 1.0))
    ... except NonlocalExit as exit:
    ...     print("stopped at", exit.site["name"])
    stopped at y
    """

    def __init__(self, escape_fn: SitePredicate):
        self.escape_fn = escape_fn

    def _process_sample(self, msg: Message) -> None:
        if not is_subsample_site(msg) and self.escape_fn(msg):
            msg["done"] = True
            msg["stop"] = True
            msg["continuation"] = _raise_nonlocal_exit


def _raise_nonlocal_exit(msg: Message) -> None:
    raise NonlocalExit(msg)
