"""The ground floor of the engine: messages, the handler stack and ``apply_stack``.

A primitive (``sample``, ``param``, ...) describes itself as a *message*, a plain dict, and
hands it to :func:`apply_stack`. Every active handler (a :class:`Messenger`) may look at the
message and change it on the way in, innermost handler first, until one of them sets
``msg["stop"]``. Then the default behaviour runs (draw from ``msg["fn"]`` unless a value is
already there), and the handlers that saw the message post-process it in reverse order. A
handler that needs to act after everyone else may leave a ``msg["continuation"]``.

The stack is per thread, so an inference loop in a background thread never sees the handlers of the
cell the user is running. Each message type has its own filtered view of the stack, cached until a
handler is pushed or popped, so a handler that ignores a message type costs nothing for it.

>>> import torch
>>> class Double(Messenger):
...     def _postprocess_sample(self, msg):
...         msg["value"] = 2 * msg["value"]
>>> msg = new_message("sample", "x", lambda: torch.tensor(1.0))
>>> with Double():
...     apply_stack(msg)["value"]
tensor(2.)
"""

from __future__ import annotations

import functools
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

Message = dict[str, Any]


ARBITRARY_SIZE = -1
"""The size a plate made without one records (Pyro's and torch's "any size" convention)."""


class CondIndepStackFrame(NamedTuple):
    """One plate a site sits in: its name, batch dim (``None`` when sequential), size, iteration
    counter (sequential plates) and full size before subsampling."""

    name: str
    dim: int | None
    size: int
    counter: int = 0
    full_size: int | None = None

    @property
    def vectorized(self) -> bool:
        return self.dim is not None


def new_message(
    type: str,
    name: str | None,
    fn: Callable | None,
    args: tuple = (),
    kwargs: dict | None = None,
    value: Any = None,
    is_observed: bool = False,
    infer: dict | None = None,
) -> Message:
    """Build a message with every key a handler may read.

    >>> new_message("param", "w", None)["scale"]
    1.0
    """
    return {
        "type": type,
        "name": name,
        "fn": fn,
        "args": args,
        "kwargs": {} if kwargs is None else kwargs,
        "value": value,
        "is_observed": is_observed,
        "infer": {} if infer is None else infer,
        "scale": 1.0,
        "mask": None,
        "cond_indep_stack": (),
        "done": False,
        "stop": False,
        "continuation": None,
    }


class _StackState(threading.local):
    def __init__(self) -> None:
        self.stack: list[Messenger] = []
        self.by_type: dict[str, list[Messenger]] = {}


_STATE = _StackState()


def handler_stack() -> list[Messenger]:
    """The active handlers of this thread, outermost first (read it, do not mutate it)."""
    return _STATE.stack


def handlers_active() -> bool:
    """Whether any handler is active in this thread: primitives take a fast path when not."""
    return bool(_STATE.stack)


def _handlers_for(msg_type: str) -> list[Messenger]:
    state = _STATE
    view = state.by_type.get(msg_type)
    if view is None:
        view = [h for h in state.stack if h._handles(msg_type)]
        state.by_type[msg_type] = view
    return view


@contextmanager
def handlers_suspended(predicate: Callable[[Messenger], bool]) -> Iterator[list[Messenger]]:
    """Take the active handlers for which ``predicate`` holds off the stack for the block (they
    see no message there) and put them back where they were after it; yields them.

    >>> class Tag(Messenger):
    ...     pass
    >>> with Tag() as outer:
    ...     with handlers_suspended(lambda h: h is outer) as suspended:
    ...         inside = list(handler_stack())
    ...     after = list(handler_stack())
    >>> suspended == [outer], inside, after == [outer]
    (True, [], True)
    """
    stack = _STATE.stack
    suspended = [(index, h) for index, h in enumerate(stack) if predicate(h)]
    for index, _ in reversed(suspended):
        del stack[index]
    _STATE.by_type.clear()
    try:
        yield [h for _, h in suspended]
    finally:
        for index, handler in suspended:
            stack.insert(index, handler)
        _STATE.by_type.clear()


def is_subsample_site(msg: Message) -> bool:
    """Whether a message only carries a plate's mini-batch indices (it has no density).

    >>> is_subsample_site(new_message("sample", "data", None, infer={"is_subsample": True}))
    True
    """
    return msg["type"] == "sample" and msg["infer"].get("is_subsample", False)


def default_process_message(msg: Message) -> None:
    """What happens when no handler supplied a value: run ``fn`` (a draw, for a sample site)."""
    if msg["done"] or msg["is_observed"] or msg["value"] is not None:
        msg["done"] = True
        return
    msg["value"] = msg["fn"](*msg["args"], **msg["kwargs"])
    msg["done"] = True


def apply_stack(msg: Message) -> Message:
    """Send ``msg`` through the active handlers and return it with its final ``value``."""
    msg_type = msg["type"]
    handlers = _handlers_for(msg_type)
    visited: list[Messenger] = []
    index = len(handlers) - 1
    while index >= 0:
        handler = handlers[index]
        visited.append(handler)
        handler._process_message(msg)
        if msg["stop"]:
            break
        index -= 1
        if msg["type"] != msg_type:
            # A handler changed the kind of site (``lift`` turns a param into a sample): the
            # handlers further out see it as its new kind.
            msg_type = msg["type"]
            outer = _STATE.stack[: _STATE.stack.index(handler)]
            handlers = [h for h in outer if h._handles(msg_type)]
            index = len(handlers) - 1
    default_process_message(msg)
    for handler in reversed(visited):
        handler._postprocess_message(msg)
    continuation = msg["continuation"]
    if continuation is not None:
        continuation(msg)
    return msg


def require_callable(handler: Any, fn: Any) -> None:
    """Refuse to wrap what cannot be called, e.g. ``poutine.mask(False)`` (the mask given where
    the function goes).

    >>> require_callable(object(), False)
    Traceback (most recent call last):
    ...
    engine.errors.ArgumentError: object wraps a function, but got a bool, which is not callable. \
A handler takes the function to wrap first: pass the handler's own arguments by keyword, e.g. \
poutine.mask(mask=False), or use it as a context manager.
    """
    if not callable(fn):
        from engine.errors import ArgumentError  # errors imports this module

        raise ArgumentError(
            f"{type(handler).__name__} wraps a function, but got a {type(fn).__name__}, which "
            "is not callable. A handler takes the function to wrap first: pass the handler's "
            "own arguments by keyword, e.g. poutine.mask(mask=False), or use it as a context "
            "manager."
        )


class Messenger:
    """Base class of every effect handler.

    Subclasses react to a message type by defining ``_process_<type>`` (on the way in) and/or
    ``_postprocess_<type>`` (on the way out), or handle every type by overriding
    ``_process_message`` / ``_postprocess_message``. Pyro's spellings ``_pyro_<type>`` and
    ``_pyro_post_<type>`` work too, so handlers from Pyro's tutorials run unchanged. A messenger
    is a context manager (``with Handler(): ...``) and wraps functions (``Handler()(fn)``).

    >>> class Count(Messenger):
    ...     n = 0
    ...     def _process_sample(self, msg):
    ...         self.n += 1
    """

    _process_by_type: dict[str, Callable] = {}
    _postprocess_by_type: dict[str, Callable] = {}
    _handles_every_type = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._process_by_type = _methods_with_prefix(cls, "_process_", "_pyro_")
        cls._postprocess_by_type = _methods_with_prefix(cls, "_postprocess_", "_pyro_post_")
        cls._handles_every_type = (
            cls._process_message is not Messenger._process_message
            or cls._postprocess_message is not Messenger._postprocess_message
        )

    @classmethod
    def _handles(cls, msg_type: str) -> bool:
        return (
            cls._handles_every_type
            or msg_type in cls._process_by_type
            or msg_type in cls._postprocess_by_type
        )

    def _process_message(self, msg: Message) -> None:
        method = self._process_by_type.get(msg["type"])
        if method is not None:
            method(self, msg)

    def _postprocess_message(self, msg: Message) -> None:
        method = self._postprocess_by_type.get(msg["type"])
        if method is not None:
            method(self, msg)

    def __enter__(self) -> Messenger:
        _STATE.stack.append(self)
        _STATE.by_type.clear()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        stack = _STATE.stack
        if not any(handler is self for handler in stack):
            if exc_type is None:
                raise RuntimeError(f"{type(self).__name__} exited but was not on the stack")
            return
        # Handlers entered inside this one and never exited (an exception, a generator left
        # suspended) are closed first, innermost first, so they release what they hold.
        while stack[-1] is not self:
            stack[-1].__exit__(exc_type, exc_value, traceback)
        stack.pop()
        _STATE.by_type.clear()

    def __call__(self, fn: Callable) -> Callable:
        """Wrap ``fn`` so that it runs under this handler (decorator use)."""
        require_callable(self, fn)
        return _bind(self, fn)


_DISPATCH_ATTRIBUTES = {
    "_process_message",
    "_postprocess_message",
    "_process_by_type",
    "_postprocess_by_type",
}


def _methods_with_prefix(cls: type, prefix: str, pyro_prefix: str) -> dict[str, Callable]:
    methods = {}
    for attr in dir(cls):
        if attr in _DISPATCH_ATTRIBUTES or not callable(getattr(cls, attr)):
            continue
        for start in (pyro_prefix, prefix):
            site_type = attr[len(start) :]
            # _pyro_post_<type> is Pyro's postprocess spelling, not a process method for "post_".
            if attr.startswith(start) and not (start == "_pyro_" and site_type.startswith("post_")):
                methods[site_type] = getattr(cls, attr)
    return methods


def effectful(fn: Callable | None = None, type: str | None = None) -> Callable:
    """Make ``fn`` an effectful operation: when handlers are active, each call becomes a message of
    ``type`` (named by the ``name`` keyword, if given) that handlers may intercept.

    >>> @effectful(type="greeting")
    ... def greet(who, name=None):
    ...     return f"hello {who}"
    >>> class Shout(Messenger):
    ...     def _postprocess_greeting(self, msg):
    ...         msg["value"] = msg["value"].upper()
    >>> with Shout():
    ...     greet("world")
    'HELLO WORLD'
    """
    if fn is None:
        return functools.partial(effectful, type=type)

    @functools.wraps(fn)
    def effect(*args: Any, **kwargs: Any) -> Any:
        if not handlers_active():
            return fn(*args, **kwargs)
        msg = new_message(type, kwargs.pop("name", None), fn, args, kwargs)
        return apply_stack(msg)["value"]

    return effect


def wraps(fn: Callable) -> Callable[[Callable], Callable]:
    """``functools.wraps`` for handlers: name, docstring and ``__wrapped__`` always, and the
    wrapped object's ``__dict__`` only when it is a function (whose attributes describe it). An
    object's ``__dict__`` is its state (an autoguide's parameters, caches and sets of checked
    shapes): copying it into every wrapper costs time on every call and makes compiled code
    depend on each of those attributes.

    >>> class Guide:
    ...     def __init__(self):
    ...         self.cache = {}
    ...     def __call__(self):
    ...         return 1
    >>> guide = Guide()
    >>> @wraps(guide)
    ... def wrapper():
    ...     return guide()
    >>> wrapper.__wrapped__ is guide, "cache" in wrapper.__dict__
    (True, False)
    """
    if isinstance(fn, types.FunctionType | types.MethodType):
        return functools.wraps(fn)
    return functools.wraps(fn, updated=())


def _bind(messenger: Messenger, fn: Callable) -> Callable:
    return _RunUnderHandler(messenger, fn)


class _RunUnderHandler:
    """``fn`` run under ``messenger``: what a handler used as a wrapper returns.

    An object rather than a closure so that a wrapped model pickles (its handler by value, the
    function by reference), as models wrapped by Pyro's handlers do. It keeps ``fn``'s name,
    docstring and signature, and binds like a function when it decorates a method.

    >>> import pickle
    >>> wrapped = _RunUnderHandler(Messenger(), len)
    >>> pickle.loads(pickle.dumps(wrapped))([1, 2]), wrapped.__name__
    (2, 'len')
    """

    def __init__(self, messenger: Messenger, fn: Callable) -> None:
        wraps(fn)(self)
        self.messenger = messenger

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.messenger:
            return self.__wrapped__(*args, **kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> Callable:
        return self if instance is None else types.MethodType(self, instance)

    def __repr__(self) -> str:
        return f"<{type(self.messenger).__name__} handling {self.__wrapped__!r}>"
