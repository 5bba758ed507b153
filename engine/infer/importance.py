"""``Importance``: importance sampling of a model's posterior, with the guide (or the prior) as the
proposal; its mean weight estimates the evidence.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def model(y):
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
...     pyro.sample("y", dist.Normal(z, 1.0), obs=y)
>>> posterior = Importance(model, num_samples=200).run(torch.tensor(0.5))
>>> len(posterior.exec_traces), posterior.get_log_normalizer().shape
(200, torch.Size([]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from engine.infer.abstract_infer import TracePosterior
from engine.infer.model_guide_checks import check_guide_latents
from engine.poutine.handlers import replay, trace
from engine.poutine.trace_struct import Trace
from engine.runtime import Message


class Importance(TracePosterior):
    """Draw ``num_samples`` latent configurations from ``guide`` and weight each by
    ``p(data, z) / q(z)``.

    Without a guide the model proposes its own latents from the prior, and the weight is the
    likelihood of the observed sites. A guide may leave latent sites out: the model draws those
    from their prior given the rest, and their density cancels from the weight. ``run(*args,
    **kwargs)`` (the model's arguments) fills ``exec_traces`` (model traces) and ``log_weights``.

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     pyro.sample("z", dist.Normal(0.0, 1.0))
    >>> float(Importance(model, num_samples=5).run().get_ESS())
    5.0
    """

    def __init__(self, model: Callable, guide: Callable | None = None, num_samples: int = 10):
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        self.model = model
        self.guide = guide
        self.num_samples = num_samples

    def _traces(self, *args: Any, **kwargs: Any) -> Iterator[tuple[Trace, torch.Tensor]]:
        for _ in range(self.num_samples):
            yield self._weighted_trace(args, kwargs)

    def _weighted_trace(self, args: tuple, kwargs: dict) -> tuple[Trace, torch.Tensor]:
        if self.guide is None:
            model_trace = trace(self.model).get_trace(*args, **kwargs)
            guide_log_prob = 0.0
            guided: set[str] = set()
        else:
            guide_trace = trace(self.guide).get_trace(*args, **kwargs)
            model_trace = trace(replay(self.model, trace=guide_trace)).get_trace(*args, **kwargs)
            check_guide_latents(guide_trace, model_trace, type(self).__name__)
            guide_log_prob = guide_trace.log_prob_sum()
            guided = set(guide_trace.stochastic_nodes)

        def in_weight(name: str, site: Message) -> bool:
            # A latent the model drew itself was proposed from its own prior: p/q is 1 there.
            return site["is_observed"] or name in guided

        return model_trace, model_trace.log_prob_sum(in_weight) - guide_log_prob
