"""Pyro's import path for the handler base class: ``from pyro.poutine.messenger import Messenger``.

>>> from engine.poutine.messenger import Messenger
>>> Messenger.__module__
'engine.runtime'
"""

from engine.runtime import Messenger

__all__ = ["Messenger"]
