"""Pyro's import path for ``infer_discrete`` (``from pyro.infer.discrete import
infer_discrete``); it lives in :mod:`engine.infer.enum.discrete`.

>>> from engine.infer.discrete import infer_discrete
>>> import engine.infer.enum.discrete
>>> infer_discrete is engine.infer.enum.discrete.infer_discrete
True
"""

from engine.infer.enum.discrete import infer_discrete

__all__ = ["infer_discrete"]
