"""``GuidePosterior``: the guide's draws, each replayed through the model, as a
:class:`~engine.infer.abstract_infer.TracePosterior`.

It is what Pyro's deprecated ``SVI(..., num_samples=N, num_steps=M).run(*args)`` returns
after its ``M`` optimisation steps: the fitted guide read as ``N`` equally weighted posterior
traces, ready for :class:`~engine.infer.EmpiricalMarginal` or
:meth:`~engine.infer.abstract_infer.TracePosterior.information_criterion`.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def model():
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
...     pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(0.5))
>>> def guide():
...     pyro.sample("z", dist.Normal(0.25, 0.7))
>>> posterior = GuidePosterior(model, guide, num_samples=5).run()
>>> len(posterior.exec_traces), posterior.exec_traces[0].observation_nodes
(5, ['x'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from engine.argument_checks import as_count
from engine.infer.abstract_infer import TracePosterior
from engine.infer.guide_then_model import guide_and_model_traces
from engine.poutine.trace_struct import Trace


class GuidePosterior(TracePosterior):
    """``num_samples`` traces of ``model`` replayed on draws of ``guide``, all of weight 1."""

    def __init__(self, model: Callable, guide: Callable, num_samples: int):
        super().__init__()
        self.model = model
        self.guide = guide
        self.num_samples = as_count(num_samples, "GuidePosterior: num_samples", minimum=0)

    def _traces(self, *args: Any, **kwargs: Any) -> Iterator[tuple[Trace, torch.Tensor]]:
        for _ in range(self.num_samples):
            _, model_trace = guide_and_model_traces(self.model, self.guide, args, kwargs)
            yield model_trace, torch.tensor(0.0)
