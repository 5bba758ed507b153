"""Pyro's import path for ``TraceTMC_ELBO`` (``from pyro.infer.tracetmc_elbo import
TraceTMC_ELBO``); the estimator itself lives in :mod:`engine.infer.enum.tmc`, beside the
enumeration it reuses.

>>> from engine.infer.tracetmc_elbo import TraceTMC_ELBO
>>> import engine.infer.enum.tmc
>>> TraceTMC_ELBO is engine.infer.enum.tmc.TraceTMC_ELBO
True
"""

from engine.infer.enum.tmc import TraceTMC_ELBO

__all__ = ["TraceTMC_ELBO"]
