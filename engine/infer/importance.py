"""``Importance``: importance sampling of a model's posterior, with the guide (or the prior) as the
proposal; its mean weight estimates the evidence. ``vectorized_importance_weights`` draws many
weights in one vectorised run, and ``psis_diagnostic`` reads from them how far a guide can be
trusted (PSIS's Pareto k-hat).

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
from engine.infer.elbo import PARTICLE_PLATE
from engine.infer.guide_then_model import guide_and_model_traces
from engine.infer.model_guide_checks import check_guide_latents
from engine.infer.pareto_tail import pareto_k_of_log_weights
from engine.infer.util import guess_max_plate_nesting, sum_except_plate, vectorize
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


def vectorized_importance_weights(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_samples: int = 1,
    max_plate_nesting: int | None = None,
    normalized: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, Trace, Trace]:
    """``num_samples`` log importance weights ``log p(x, z) - log q(z)``, drawn in one run of the
    guide and the model under a vectorising plate left of their own plates, with the model and
    guide traces that made them: ``(log_weights, model_trace, guide_trace)``.

    ``max_plate_nesting`` (how many plates the model nests) is read off one run when not given.
    ``normalized=True`` subtracts their logsumexp, so the weights sum to one.

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     pyro.sample("z", dist.Normal(0.0, 1.0))
    >>> log_w, _, _ = vectorized_importance_weights(model, model, num_samples=4)
    >>> log_w  # the guide is the prior: every weight is 1
    tensor([0., 0., 0., 0.])
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    if max_plate_nesting is None:
        max_plate_nesting = guess_max_plate_nesting(model, guide, args, kwargs)
    log_weights, model_trace, guide_trace = particle_log_weights(
        model, guide, args, kwargs, num_samples, max_plate_nesting, "vectorized_importance_weights"
    )
    if normalized:
        log_weights = log_weights - torch.logsumexp(log_weights, dim=0)
    return log_weights, model_trace, guide_trace


def particle_log_weights(
    model: Callable,
    guide: Callable,
    args: tuple,
    kwargs: dict[str, Any],
    num_particles: int,
    max_plate_nesting: int,
    algorithm: str,
) -> tuple[torch.Tensor, Trace, Trace]:
    """The core of :func:`vectorized_importance_weights`, shared with the algorithms that weight
    particles (``SMCFilter``): run ``guide`` and then ``model`` once each, under a plate of
    ``num_particles`` at dim ``-1 - max_plate_nesting``, and return ``(log_weights, model_trace,
    guide_trace)`` with one log weight ``log p - log q`` per particle. ``algorithm`` names the
    caller in the error a guide that samples a site the model does not have gets.

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
    ...     pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(0.5))
    >>> def prior():
    ...     pyro.sample("z", dist.Normal(0.0, 1.0))
    >>> log_w, model_trace, _ = particle_log_weights(model, prior, (), {}, 3, 0, "doc")
    >>> z = model_trace.nodes["z"]["value"]
    >>> torch.allclose(log_w, dist.Normal(z, 1.0).log_prob(torch.tensor(0.5)))  # the likelihood
    True
    """
    guide_trace, model_trace = guide_and_model_traces(
        vectorize(model, num_particles, max_plate_nesting, PARTICLE_PLATE),
        vectorize(guide, num_particles, max_plate_nesting, PARTICLE_PLATE),
        args,
        kwargs,
    )
    check_guide_latents(guide_trace, model_trace, algorithm)
    guided = set(guide_trace.stochastic_nodes)
    log_weights = torch.zeros(num_particles)
    for trace_, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        trace_.compute_log_prob()
        for name, site in trace_.sample_sites():
            # A latent the model drew itself came from its own prior: p/q is 1 there.
            if trace_ is model_trace and not (site["is_observed"] or name in guided):
                continue
            term = sum_except_plate(site["log_prob"], site, PARTICLE_PLATE)
            log_weights = log_weights.to(term) + sign * term
    return log_weights, model_trace, guide_trace


def psis_diagnostic(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_particles: int = 1000,
    max_simultaneous_particles: int | None = None,
    max_plate_nesting: int = 7,
    **kwargs: Any,
) -> float:
    """PSIS's Pareto k-hat of the guide's importance weights (Vehtari et al.): how heavy their
    right tail is. Below 0.5 the guide covers the posterior well, up to 0.7 it is usable, above
    0.7 the guide is too narrow somewhere and its estimates are not to be trusted.

    ``num_particles`` weights are drawn, ``max_simultaneous_particles`` at a time (it must
    divide ``num_particles``); ``args``/``kwargs`` go to the model and the guide.

    >>> import torch, engine as pyro, engine.distributions as dist
    >>> def model():
    ...     pyro.sample("z", dist.Normal(0.0, 1.0))
    >>> def narrow_guide():
    ...     pyro.sample("z", dist.Normal(0.0, 0.5))
    >>> _ = torch.manual_seed(0)
    >>> k = psis_diagnostic(model, narrow_guide, num_particles=20000)
    >>> 0.6 < k < 0.9  # a guide half as wide as the posterior: k near 1 - 0.5 ** 2 = 0.75
    True
    """
    batch = num_particles if max_simultaneous_particles is None else max_simultaneous_particles
    if batch < 1 or num_particles % batch != 0:
        raise ValueError(
            f"psis_diagnostic: num_particles={num_particles} must be a multiple of "
            f"max_simultaneous_particles={batch} (draws are made that many at a time)."
        )
    with torch.no_grad():
        log_weights = torch.cat(
            [
                vectorized_importance_weights(
                    model,
                    guide,
                    *args,
                    num_samples=batch,
                    max_plate_nesting=max_plate_nesting,
                    **kwargs,
                )[0]
                for _ in range(num_particles // batch)
            ]
        )
    return pareto_k_of_log_weights(log_weights)
