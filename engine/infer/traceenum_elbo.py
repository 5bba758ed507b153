"""Pyro's import path for ``TraceEnum_ELBO`` (``from pyro.infer.traceenum_elbo import
TraceEnum_ELBO``); the ELBO itself lives in :mod:`engine.infer.enum.elbo`.

>>> from engine.infer.traceenum_elbo import TraceEnum_ELBO
>>> import engine.infer.enum.elbo
>>> TraceEnum_ELBO is engine.infer.enum.elbo.TraceEnum_ELBO
True
"""

from engine.infer.enum.elbo import TraceEnum_ELBO

__all__ = ["TraceEnum_ELBO"]
