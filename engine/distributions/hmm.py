"""Pyro's module path ``pyro.distributions.hmm``: the hidden Markov model distributions.

Each family lives in its own module (``discrete_hmm``, ``gaussian_hmm``, ``gamma_gaussian_hmm``,
``linear_hmm``, ``independent_hmm``, ``gaussian_mrf``, the shared base in ``hidden_markov``);
this module gathers them under the name Pyro users import from.

>>> from engine.distributions.hmm import DiscreteHMM, GaussianHMM
>>> import engine.distributions as dist
>>> DiscreteHMM is dist.DiscreteHMM and GaussianHMM is dist.GaussianHMM
True
"""

from engine.distributions.discrete_hmm import DiscreteHMM
from engine.distributions.gamma_gaussian_hmm import GammaGaussianHMM
from engine.distributions.gaussian_hmm import GaussianHMM
from engine.distributions.gaussian_mrf import GaussianMRF
from engine.distributions.hidden_markov import HiddenMarkovModel
from engine.distributions.independent_hmm import IndependentHMM
from engine.distributions.linear_hmm import LinearHMM

__all__ = [
    "DiscreteHMM",
    "GammaGaussianHMM",
    "GaussianHMM",
    "GaussianMRF",
    "HiddenMarkovModel",
    "IndependentHMM",
    "LinearHMM",
]
