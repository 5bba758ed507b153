"""``Rejector``: a distribution sampled by accept-reject on top of a proposal distribution.

Draws come from ``propose`` and are kept with probability ``exp(log_prob_accept(x))``; the law
of the kept draws has density ``propose.log_prob(x) + log_prob_accept(x) - log_scale``, where
``log_scale`` is the log of the overall acceptance rate. When the proposal is reparameterised,
the kept draws are still differentiable functions of the parameters, but their law also moves
through the acceptance step; ``score_parts`` supplies that extra score-function term,
``log_prob_accept(x) - log_scale``, so an ELBO's gradient stays unbiased (the accept-reject
reparameterisation of Naesseth et al., 2017).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from engine.distributions.score_parts import ScoreParts
from engine.distributions.torch_distribution import TorchDistribution


class Rejector(TorchDistribution):
    """Accept-reject sampling of ``propose`` with log acceptance probability ``log_prob_accept``.

    ``log_scale`` is the log acceptance rate (the normaliser); ``batch_shape``/``event_shape``
    default to the proposal's.

    >>> import engine.distributions as dist
    >>> rate, factor = torch.tensor(2.0), torch.tensor(0.5)
    >>> d = Rejector(  # Exponential(2) from an Exponential(1) proposal
    ...     dist.Exponential(rate * factor),
    ...     lambda x: -rate * (1 - factor) * x,
    ...     torch.log(factor),
    ... )
    >>> x = torch.tensor(0.7)
    >>> bool(torch.isclose(d.log_prob(x), dist.Exponential(rate).log_prob(x)))
    True
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self,
        propose: torch.distributions.Distribution,
        log_prob_accept: Callable[[torch.Tensor], torch.Tensor],
        log_scale: torch.Tensor,
        *,
        batch_shape: Sequence[int] | None = None,
        event_shape: Sequence[int] | None = None,
    ):
        self.propose = propose
        self.log_prob_accept = log_prob_accept
        self.log_scale = log_scale
        if batch_shape is None:
            batch_shape = propose.batch_shape
        if event_shape is None:
            event_shape = propose.event_shape
        super().__init__(batch_shape, event_shape)

    @property
    def support(self) -> torch.distributions.constraints.Constraint:
        return self.propose.support

    def _draw_proposal(self, sample_shape: torch.Size) -> torch.Tensor:
        if self.propose.has_rsample:
            return self.propose.rsample(sample_shape)
        return self.propose.sample(sample_shape)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        # Draw whole batches until every entry has one accepted value; entries keep the first
        # value they accept, so each is an independent draw from the accepted law.
        x = self._draw_proposal(sample_shape)
        done = self._accepts(x)
        while not bool(done.all()):
            proposal = self._draw_proposal(sample_shape)
            accept = ~done & self._accepts(proposal)
            x = torch.where(self._over_event(accept), proposal, x)
            done = done | accept
        return x

    def _accepts(self, x: torch.Tensor) -> torch.Tensor:
        log_accept = self.log_prob_accept(x)
        log_u = torch.rand(log_accept.shape, dtype=x.dtype, device=x.device).log()
        return log_u < log_accept

    def _over_event(self, mask: torch.Tensor) -> torch.Tensor:
        return mask.reshape(mask.shape + (1,) * len(self.event_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.propose.log_prob(value) + self.log_prob_accept(value) - self.log_scale

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        log_prob = self.log_prob(value)
        score_function = self.log_prob_accept(value) - self.log_scale
        return ScoreParts(log_prob=log_prob, score_function=score_function, entropy_term=log_prob)
