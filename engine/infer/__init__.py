"""``engine.infer``: inference algorithms (SVI, ELBOs, autoguides, MCMC, Predictive, importance,
CSIS; the Resampler lives in ``engine.infer.resampler``, as in Pyro).

>>> from engine.infer import SVI, Trace_ELBO
>>> Trace_ELBO().num_particles
1
"""

from engine.errors import EnumerationError, MCMCError, ModelGuideMismatchError, NonFiniteError
from engine.infer import autoguide
from engine.infer import resampler as resampler
from engine.infer.abstract_infer import TracePosterior
from engine.infer.autoguide.initialization import (
    init_to_feasible,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)
from engine.infer.csis import CSIS
from engine.infer.elbo import ELBO
from engine.infer.empirical_marginal import EmpiricalMarginal
from engine.infer.energy_distance import EnergyDistance
from engine.infer.enum.config import config_enumerate
from engine.infer.enum.discrete import infer_discrete
from engine.infer.enum.elbo import TraceEnum_ELBO, TraceEnumSample_ELBO
from engine.infer.importance import Importance
from engine.infer.jit_elbo import (
    JitTrace_ELBO,
    JitTraceEnum_ELBO,
    JitTraceGraph_ELBO,
    JitTraceMeanField_ELBO,
)
from engine.infer.mcmc import HMC, MCMC, NUTS, RandomWalkKernel
from engine.infer.predictive import Predictive
from engine.infer.progress import Progress, ProgressEvent
from engine.infer.renyi_elbo import RenyiELBO
from engine.infer.rws import ReweightedWakeSleep
from engine.infer.smcfilter import SMCFilter
from engine.infer.svgd import SVGD, IMQSteinKernel, RBFSteinKernel
from engine.infer.svi import SVI
from engine.infer.trace_elbo import Trace_ELBO
from engine.infer.trace_mmd import Trace_MMD
from engine.infer.trace_tail_adaptive_elbo import TraceTailAdaptive_ELBO
from engine.infer.tracegraph_elbo import TraceGraph_ELBO
from engine.infer.tracemeanfield_elbo import TraceMeanField_ELBO
from engine.infer.tracetmc_elbo import TraceTMC_ELBO
from engine.infer.weighed_predictive import MHResampler, WeighedPredictive

__all__ = [
    "CSIS",
    "ELBO",
    "HMC",
    "MCMC",
    "NUTS",
    "SVGD",
    "SVI",
    "EmpiricalMarginal",
    "EnergyDistance",
    "EnumerationError",
    "IMQSteinKernel",
    "Importance",
    "JitTraceEnum_ELBO",
    "JitTraceGraph_ELBO",
    "JitTraceMeanField_ELBO",
    "JitTrace_ELBO",
    "MCMCError",
    "MHResampler",
    "ModelGuideMismatchError",
    "NonFiniteError",
    "Predictive",
    "Progress",
    "ProgressEvent",
    "RBFSteinKernel",
    "RandomWalkKernel",
    "RenyiELBO",
    "ReweightedWakeSleep",
    "SMCFilter",
    "TraceEnumSample_ELBO",
    "TraceEnum_ELBO",
    "TraceGraph_ELBO",
    "TraceMeanField_ELBO",
    "TracePosterior",
    "TraceTMC_ELBO",
    "TraceTailAdaptive_ELBO",
    "Trace_ELBO",
    "Trace_MMD",
    "WeighedPredictive",
    "autoguide",
    "config_enumerate",
    "infer_discrete",
    "init_to_feasible",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
]
