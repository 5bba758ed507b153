"""Enumeration of discrete sites, the inference half: everything that turns sites marked
``infer={"enumerate": ...}`` into exact sums. Read the modules in this order:

- :mod:`~engine.infer.enum.config`: ``config_enumerate`` marks a model's or guide's discrete
  latent sites for enumeration (it only writes ``infer["enumerate"]``; the rest reads the mark).
- :mod:`~engine.infer.enum.sum_product`: labelled factors (a tensor whose dims are named by plates
  and enumerated sites) and variable elimination over plated factor graphs (``contract``).
- :mod:`~engine.infer.enum.factors`: from an enumerated trace to those factors, one per site, each
  dim named; a dim that is neither a plate nor an enumerated site is an error naming the site.
- :mod:`~engine.infer.enum.sequential`: sequential enumeration, the guide run once per
  combination of the values of its sites marked ``"sequential"``.
- :mod:`~engine.infer.enum.guide_expectation`: costs in expectation over the guide's enumerated
  sites, one forward pass in the guide's order (so a ``markov`` guide costs what its model does).
- :mod:`~engine.infer.enum.discrete`: ``infer_discrete``, posterior draws (or the MAP) of a
  model's enumerated sites by forward filtering and backward sampling.
- :mod:`~engine.infer.enum.marginals`: each enumerated site's posterior marginal, by
  differentiating the sum-product's ``log Z``.
- :mod:`~engine.infer.enum.elbo`: ``TraceEnum_ELBO``, the ELBO with the model's enumerated sites
  summed out and the guide's taken in exact expectation, with ``compute_marginals`` and
  ``sample_posterior``; and ``TraceEnumSample_ELBO``, which keeps its last guide draw for
  ``sample_saved``.

The handler half stays in :mod:`engine.poutine`: ``EnumMessenger`` (``poutine.enum``, which gives
each enumerated site a tensor dim of its own), ``MarkovMessenger`` (``markov``, whose windows let
enumeration recycle dims) and the dim allocator (:mod:`engine.poutine.dim_allocator`). Handlers
live with handlers, poutine must not import infer, and the dim allocator serves plates as well.

``engine.infer.traceenum_elbo`` and ``engine.infer.discrete`` are Pyro's import paths for
``TraceEnum_ELBO``, ``infer_discrete`` and ``TraceEnumSample_ELBO``; they re-export from here.

>>> import engine, engine.distributions as dist
>>> from engine.infer.enum import config_enumerate
>>> @config_enumerate(default="sequential")
... def guide():
...     engine.sample("z", dist.Bernoulli(0.5))
>>> engine.poutine.trace(guide).get_trace().nodes["z"]["infer"]["enumerate"]
'sequential'
"""

from engine.infer.enum.config import config_enumerate
from engine.infer.enum.discrete import infer_discrete
from engine.infer.enum.elbo import TraceEnum_ELBO, TraceEnumSample_ELBO

__all__ = ["TraceEnumSample_ELBO", "TraceEnum_ELBO", "config_enumerate", "infer_discrete"]
