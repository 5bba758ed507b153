"""Pyro's import path for ``infer_discrete`` and ``TraceEnumSample_ELBO`` (``from
pyro.infer.discrete import infer_discrete, TraceEnumSample_ELBO``); they live in
:mod:`engine.infer.enum.discrete` and :mod:`engine.infer.enum.elbo`.

>>> from engine.infer.discrete import infer_discrete
>>> import engine.infer.enum.discrete
>>> infer_discrete is engine.infer.enum.discrete.infer_discrete
True
"""

from engine.infer.enum.discrete import infer_discrete
from engine.infer.enum.elbo import TraceEnumSample_ELBO

__all__ = ["TraceEnumSample_ELBO", "infer_discrete"]
