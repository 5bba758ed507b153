"""What the magics' flags can name, each choice with the engine object it stands for.

``%svi``'s ``--guide``, ``--optim`` and ``--elbo`` and ``%mcmc``'s ``--kernel`` read their names
from these tables (:mod:`pplkernel.magic_args`), and the magics build the objects from them
(:mod:`pplkernel.magics`): a choice is added in one place.

>>> sorted(ELBOS) == ["enum", "meanfield", "trace", "tracegraph"]
True
>>> KERNELS["nuts"].__name__
'NUTS'
"""

from __future__ import annotations

from engine.infer import (
    HMC,
    NUTS,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceGraph_ELBO,
    TraceMeanField_ELBO,
)
from engine.infer import autoguide as autoguides
from engine.optim import SGD, Adam, ClippedAdam

AUTOGUIDES = {
    "auto_normal": autoguides.AutoNormal,
    "auto_delta": autoguides.AutoDelta,
    "auto_diag": autoguides.AutoDiagonalNormal,
    "auto_mvn": autoguides.AutoMultivariateNormal,
    "auto_lowrank": autoguides.AutoLowRankMultivariateNormal,
}
OPTIMIZERS = {"adam": Adam, "clipped_adam": ClippedAdam, "sgd": SGD}
ELBOS = {
    "trace": Trace_ELBO,
    "meanfield": TraceMeanField_ELBO,
    "tracegraph": TraceGraph_ELBO,
    "enum": TraceEnum_ELBO,
}
KERNELS = {"nuts": NUTS, "hmc": HMC}
