"""Pyro's import path ``pyro.poutine.escape_messenger``: :class:`EscapeMessenger`, the handler
behind ``poutine.escape`` (the code lives in :mod:`engine.poutine.block_messenger`).

At the first sample site where ``escape_fn(msg)`` holds, the run stops with
:class:`~engine.poutine.runtime.NonlocalExit`, which carries that site.

>>> import engine as pyro, engine.distributions as dist
>>> from engine.poutine.escape_messenger import EscapeMessenger
>>> from engine.poutine.runtime import NonlocalExit
>>> try:
...     with EscapeMessenger(lambda msg: msg["name"] == "b"):
...         a = pyro.sample("a", dist.Normal(0.0, 1.0))
...         b = pyro.sample("b", dist.Bernoulli(0.5))
... except NonlocalExit as exit:
...     exit.site["name"]
'b'
"""

from engine.poutine.block_messenger import EscapeMessenger

__all__ = ["EscapeMessenger"]
