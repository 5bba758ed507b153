"""``WeighedPredictive``: posterior predictive draws from a guide, each with its importance weight,
and ``MHResampler``, which turns such weighed draws into equally weighed ones.

A guide fitted by SVI is only an approximation of the posterior. Each of its draws ``z`` can be
weighed by ``p(x_obs, z) / q(z)`` (the conditioned model, ``model_guide``, over the guide): the
weighed draws then estimate expectations under the exact posterior predictive, however rough the
guide. ``MHResampler`` runs an independence Metropolis-Hastings chain per draw, with fresh
weighed draws as proposals: after a few calls its draws follow the weighed distribution with
equal weights, so plain means and quantiles apply.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def model(y=None):
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
...     return pyro.sample("y", dist.Normal(z, 1.0), obs=y)
>>> def guide(y=None):
...     pyro.sample("z", dist.Normal(0.0, 1.0))  # the prior, a poor guide
>>> weighed = WeighedPredictive(model, guide=guide, num_samples=500, parallel=True)
>>> result = weighed(model_guide=lambda: model(torch.tensor(2.0)))
>>> result.samples["y"].shape, result.log_weights.shape
(torch.Size([500]), torch.Size([500]))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from engine.errors import ArgumentError
from engine.infer.abstract_infer import LogWeights
from engine.infer.predictive import _PLATE_NAME, Predictive, _predict
from engine.infer.util import sum_except_plate
from engine.poutine.trace_struct import Trace


@dataclass
class WeighedPredictiveResults(LogWeights):
    """Weighed predictive draws: ``samples`` (``{site: tensor}``, draws along the first dim),
    ``log_weights`` (``model_log_prob - guide_log_prob``, one per draw) and its two parts.
    ``get_ESS()``, ``get_normalized_weights()`` and ``get_log_normalizer()`` read the weights.

    >>> results = WeighedPredictiveResults({}, torch.zeros(4), torch.zeros(4), torch.zeros(4))
    >>> float(results.get_ESS())
    4.0
    """

    samples: dict[str, torch.Tensor]
    log_weights: torch.Tensor
    guide_log_prob: torch.Tensor
    model_log_prob: torch.Tensor

    def _stacked_log_weights(self) -> torch.Tensor:
        return self.log_weights


class WeighedPredictive(Predictive):
    """``Predictive`` with a guide whose draws come back with importance weights.

    Takes ``Predictive``'s arguments (a ``guide`` is required). Calling it with the model's
    arguments and, optionally, ``model_guide=`` (the conditioned model the guide was fitted to;
    by default ``model`` itself) returns :class:`WeighedPredictiveResults`: the usual
    predictive draws of ``model`` and, per draw ``z`` of the guide, the log weight
    ``log p(z, observations of model_guide) - log q(z)``. Latents of ``model_guide`` that the
    guide leaves out are drawn from their prior and leave the weight alone. The weights are
    computed in one vectorised run: the guide and ``model_guide`` must declare every batch dim
    with a plate.

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     pyro.sample("z", dist.Normal(0.0, 1.0))
    >>> exact = WeighedPredictive(model, guide=model, num_samples=3)()
    >>> exact.log_weights  # the guide is the model's own prior: all weights are 1
    tensor([0., 0., 0.])
    """

    def __init__(self, model: Callable, *args: Any, **kwargs: Any):
        super().__init__(model, *args, **kwargs)
        if self.guide is None:
            raise ArgumentError(
                "WeighedPredictive weighs the draws of a guide: pass guide=... (the weights "
                "compare the model with the guide the draws come from)."
            )

    def forward(  # type: ignore[override]
        self, *args: Any, model_guide: Callable | None = None, **kwargs: Any
    ) -> WeighedPredictiveResults:
        """Weighed predictive draws for the model's ``*args, **kwargs``."""
        model_guide = self.model if model_guide is None else model_guide
        guide_draws, return_sites = self._posterior_draws(args, kwargs)
        samples = _predict(
            self.model,
            guide_draws,
            self.num_samples,
            return_sites,
            self._runs,
            args,
            kwargs,
            check_keys=False,
        )
        with torch.no_grad():
            guide_log_prob = self._log_density(self.guide, guide_draws, args, kwargs)
            model_log_prob = self._log_density(model_guide, guide_draws, args, kwargs)
        return WeighedPredictiveResults(
            samples=samples,
            log_weights=model_log_prob - guide_log_prob,
            guide_log_prob=guide_log_prob,
            model_log_prob=model_log_prob,
        )

    def _log_density(
        self, fn: Callable, draws: dict[str, torch.Tensor], args: tuple, kwargs: dict
    ) -> torch.Tensor:
        """Per draw, ``fn``'s log density at the guide's draws and its own observations."""
        conditioned = Predictive(fn, posterior_samples=draws, num_samples=self.num_samples)
        vectorized: Trace = conditioned.get_vectorized_trace(*args, **kwargs)
        total = torch.zeros(self.num_samples)
        for _, site in vectorized.sample_sites():
            # Conditioned and observed sites are scored; a latent fn drew itself (from its
            # prior, given the rest) cancels from the weight.
            if not site["is_observed"] or site["infer"].get("_deterministic", False):
                continue
            if "log_prob" not in site:
                vectorized.compute_log_prob(lambda name, s, target=site: s is target)
            term = sum_except_plate(site["log_prob"], site, _PLATE_NAME)
            total = total.to(term) + term
        return total


class MHResampler(torch.nn.Module):
    """Equally weighed draws from weighed ones, by independence Metropolis-Hastings.

    ``sampler`` is called with the arguments given to this object and returns
    :class:`WeighedPredictiveResults` (a :class:`WeighedPredictive`). The first call returns its
    draws as they are (distributed as the guide's); each later call proposes fresh weighed draws
    and, draw by draw, accepts the proposal with probability ``min(1, w' / w)``. Call after call
    the draws approach the weighed (posterior predictive) distribution; ``transition_count``
    counts the accepted proposals. ``source_samples_slice`` and ``stored_samples_slice`` pick
    draws of each proposal and of each result to keep in ``source_samples`` and
    ``stored_samples`` (none by default).

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     pyro.sample("z", dist.Normal(0.0, 1.0))
    >>> resampler = MHResampler(WeighedPredictive(model, guide=model, num_samples=5))
    >>> _ = resampler()
    >>> _ = resampler()  # equal weights: every proposal is accepted
    >>> int(resampler.transition_count)
    5
    """

    def __init__(
        self,
        sampler: Callable[..., WeighedPredictiveResults],
        source_samples_slice: slice = slice(0),
        stored_samples_slice: slice = slice(0),
    ):
        super().__init__()
        self.sampler = sampler
        self.samples: WeighedPredictiveResults | None = None
        self.transition_count = torch.tensor(0, dtype=torch.long)
        self.source_samples: list[WeighedPredictiveResults] = []
        self.stored_samples: list[WeighedPredictiveResults] = []
        self.source_samples_slice = source_samples_slice
        self.stored_samples_slice = stored_samples_slice

    def forward(self, *args: Any, **kwargs: Any) -> WeighedPredictiveResults:
        """One Metropolis-Hastings step for every draw; returns the current draws."""
        proposal = self.sampler(*args, **kwargs)
        self.source_samples.append(_sliced(proposal, self.source_samples_slice))
        if self.samples is None:
            self.samples = proposal
        else:
            current = self.samples
            log_ratio = proposal.log_weights - current.log_weights
            accept = torch.rand_like(log_ratio).log() < log_ratio
            self.transition_count = self.transition_count + accept.sum()
            self.samples = WeighedPredictiveResults(
                samples={
                    name: _where(accept, value, current.samples[name])
                    for name, value in proposal.samples.items()
                },
                log_weights=torch.where(accept, proposal.log_weights, current.log_weights),
                guide_log_prob=torch.where(accept, proposal.guide_log_prob, current.guide_log_prob),
                model_log_prob=torch.where(accept, proposal.model_log_prob, current.model_log_prob),
            )
        self.stored_samples.append(_sliced(self.samples, self.stored_samples_slice))
        return self.samples


def _where(accept: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` where the draw's proposal was accepted, else ``old`` (draws on the first dim)."""
    return torch.where(accept.reshape(accept.shape + (1,) * (new.dim() - 1)), new, old)


def _sliced(results: WeighedPredictiveResults, which: slice) -> WeighedPredictiveResults:
    return WeighedPredictiveResults(
        samples={name: value[which] for name, value in results.samples.items()},
        log_weights=results.log_weights[which],
        guide_log_prob=results.guide_log_prob[which],
        model_log_prob=results.model_log_prob[which],
    )
