"""MCMC: Hamiltonian samplers (HMC, NUTS) with every chain batched in one process, their
warm-up adaptation, and the diagnostics of their draws.

>>> from engine.infer.mcmc import MCMC, NUTS
>>> NUTS.__mro__[1].__name__
'HMC'
"""

# Pyro's submodules, reachable as attributes as in Pyro (``pyro.infer.mcmc.util.summary``).
from engine.errors import MCMCError
from engine.infer.mcmc import api as api
from engine.infer.mcmc import mcmc_kernel as mcmc_kernel
from engine.infer.mcmc import util as util
from engine.infer.mcmc.block_mass_matrix import ArrowheadMassMatrix, BlockMassMatrix
from engine.infer.mcmc.hmc import HMC
from engine.infer.mcmc.mcmc import MCMC
from engine.infer.mcmc.mcmc_kernel import MCMCKernel
from engine.infer.mcmc.nuts import NUTS
from engine.infer.mcmc.potential import Potential
from engine.infer.mcmc.rwkernel import RandomWalkKernel
from engine.infer.mcmc.streaming import StreamingMCMC

__all__ = [
    "HMC",
    "MCMC",
    "NUTS",
    "ArrowheadMassMatrix",
    "BlockMassMatrix",
    "MCMCError",
    "MCMCKernel",
    "Potential",
    "RandomWalkKernel",
    "StreamingMCMC",
]
