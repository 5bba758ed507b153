"""``engine.infer``: inference algorithms (SVI, ELBOs, autoguides, Predictive, importance).

>>> from engine.infer import SVI, Trace_ELBO
>>> Trace_ELBO().num_particles
1
"""

from engine.infer.elbo import ELBO
from engine.infer.model_guide_checks import ModelGuideMismatchError
from engine.infer.progress import Progress, ProgressEvent
from engine.infer.svi import SVI, NonFiniteError
from engine.infer.trace_elbo import Trace_ELBO
from engine.infer.tracegraph_elbo import TraceGraph_ELBO
from engine.infer.tracemeanfield_elbo import TraceMeanField_ELBO

__all__ = [
    "ELBO",
    "SVI",
    "ModelGuideMismatchError",
    "NonFiniteError",
    "Progress",
    "ProgressEvent",
    "TraceGraph_ELBO",
    "TraceMeanField_ELBO",
    "Trace_ELBO",
]
