"""``TraceTailAdaptive_ELBO``: gradients of the tail-adaptive f-divergence of Wang, Liu and Liu
(NeurIPS 2018), with reparameterised guides.

Each step draws ``K = num_particles`` particles in one vectorised run, with log weights
``l_k = log p(x, z_k) - log q(z_k)``. Ranked from the smallest weight (rank 1) to the largest
(rank K), particle ``k`` gets the weight ``gamma_k = rank_k ** beta`` (``beta``,
``tail_adaptive_beta``, between -1 and 0), and the gradient is that of
``sum_k gamma_k l_k / sum_k gamma_k`` with the ``gamma`` held fixed: the heaviest importance
weights count least, which keeps the divergence's tails in check however heavy they are (the
f-divergence adapts to them) and makes the fit cover the posterior's mass.

The divergence itself is never estimated (the method only needs its gradient), so the loss
reported by ``loss``, ``loss_and_grads`` and SVI is the usual ELBO's, ``-mean_k l_k``, to watch
the fit by; Pyro raises ``NotImplementedError`` from ``loss`` and reports ``inf`` instead.

>>> import torch, engine, engine.distributions as dist
>>> def model():
...     engine.sample("z", dist.Normal(1.0, 1.0))
>>> def guide():
...     engine.sample("z", dist.Normal(engine.param("loc", torch.tensor(0.0)), 1.0))
>>> elbo = TraceTailAdaptive_ELBO(num_particles=64, vectorize_particles=True)
>>> loss = elbo.differentiable_loss(model, guide)
>>> loss.backward()
>>> engine.get_param_store()["loc"].grad < 0  # moving loc up, toward the model's 1.0, helps
tensor(True)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from engine.errors import ArgumentError, ReparamError, describe_site
from engine.infer.renyi_elbo import particle_log_weights
from engine.infer.trace_elbo import Trace_ELBO, is_reparameterized


class TraceTailAdaptive_ELBO(Trace_ELBO):
    """The tail-adaptive f-divergence's gradient estimator; see the module docstring.

    Give it ``num_particles > 1`` and ``vectorize_particles=True`` (it ranks the particles of
    one run against each other); every latent site of the guide must be reparameterised.
    ``tail_adaptive_beta`` is the ``beta`` of the weights, ``-1 <= beta < 0`` (default -1).

    >>> TraceTailAdaptive_ELBO(num_particles=8, vectorize_particles=True).tail_adaptive_beta
    -1.0
    """

    def __init__(
        self,
        num_particles: int = 2,
        max_plate_nesting: int | float = math.inf,
        vectorize_particles: bool = False,
        strict_enumeration_warning: bool = True,
        ignore_jit_warnings: bool = False,
        retain_graph: bool | None = None,
        tail_adaptive_beta: float = -1.0,
    ):
        if not -1.0 <= tail_adaptive_beta < 0.0:
            raise ArgumentError(
                f"TraceTailAdaptive_ELBO(tail_adaptive_beta={tail_adaptive_beta!r}): beta must "
                "lie in [-1, 0): particle k is weighted by its rank ** beta."
            )
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
            ignore_jit_warnings=ignore_jit_warnings,
            retain_graph=retain_graph,
        )
        self.tail_adaptive_beta = float(tail_adaptive_beta)

    def _elbo_and_surrogate(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.vectorize_particles:
            raise ArgumentError(
                "TraceTailAdaptive_ELBO ranks the particles of one vectorised run against each "
                "other: construct it with vectorize_particles=True (and num_particles > 1)."
            )
        if self.num_particles == 1:
            warnings.warn(
                "TraceTailAdaptive_ELBO with num_particles=1 has one particle to rank, so its "
                "gradient is Trace_ELBO's. Give it num_particles > 1 for the tail-adaptive one.",
                UserWarning,
                stacklevel=4,
            )
        log_weights = []
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            log_w, guide_sites = particle_log_weights(model_trace, guide_trace)
            for site in guide_sites:
                if not is_reparameterized(site):
                    raise ReparamError(
                        f"TraceTailAdaptive_ELBO: guide site {describe_site(site)} draws from "
                        f"a {type(site['fn']).__name__} without rsample; the estimator needs "
                        "every guide site reparameterised. Use a reparameterised distribution "
                        "there, or another ELBO (Trace_ELBO, RenyiELBO)."
                    )
            log_weights.append(log_w)
        log_w = torch.cat(log_weights)
        # Rank 1 for the smallest weight, K for the largest.
        ranks = torch.empty_like(log_w)
        ranks[log_w.detach().argsort()] = torch.arange(1, log_w.numel() + 1).to(ranks)
        gamma = ranks**self.tail_adaptive_beta
        surrogate = (gamma * log_w).sum() / gamma.sum()
        return log_w.mean(), surrogate
