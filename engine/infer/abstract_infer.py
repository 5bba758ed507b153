"""``TracePosterior``: a posterior held as a bag of weighted execution traces of the model.

An algorithm subclasses it and yields ``(trace, log_weight)`` pairs from ``_traces``; ``run``
collects them, and the weights give the evidence estimate and the effective sample size.

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     pyro.sample("x", dist.Normal(0.0, 1.0))
>>> class Prior(TracePosterior):
...     def _traces(self):
...         for _ in range(4):
...             yield poutine.trace(model).get_trace(), torch.tensor(0.0)
>>> posterior = Prior().run()
>>> len(posterior.exec_traces), float(posterior.get_ESS())
(4, 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from engine.poutine.handlers import block
from engine.poutine.trace_struct import Trace


class LogWeights:
    """What a set of unnormalised log importance weights tells: the evidence, the normalised
    weights and the effective sample size. A subclass gives ``_stacked_log_weights()``."""

    def _stacked_log_weights(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement _stacked_log_weights")

    def get_log_normalizer(self) -> torch.Tensor:
        """The log of the mean weight: an estimate of the log evidence ``log p(data)``.

        >>> posterior = TracePosterior()
        >>> posterior.log_weights = [torch.tensor(0.0), torch.tensor(math.log(3.0))]
        >>> round(float(posterior.get_log_normalizer().exp()), 4)
        2.0
        """
        log_w = self._stacked_log_weights()
        return log_w.logsumexp(0) - math.log(log_w.numel())

    def get_normalized_weights(self, log_scale: bool = False) -> torch.Tensor:
        """The weights divided by their sum (their logs with ``log_scale=True``)."""
        log_w = self._stacked_log_weights()
        log_w = log_w - log_w.logsumexp(0)
        return log_w if log_scale else log_w.exp()

    def get_ESS(self) -> torch.Tensor:
        """The effective sample size ``1 / sum(w_i**2)`` of the normalised weights."""
        return (-(2 * self.get_normalized_weights(log_scale=True)).logsumexp(0)).exp()


class TracePosterior(LogWeights):
    """Weighted traces of a model: ``exec_traces[i]`` has unnormalised ``log_weights[i]``.

    Subclasses implement ``_traces(*args, **kwargs)``, a generator of ``(trace, log_weight)``.
    ``log_weights`` is a list of detached 0-dim tensors, as in Pyro.
    """

    def __init__(self) -> None:
        self.exec_traces: list[Trace] = []
        self.log_weights: list[torch.Tensor] = []

    def _traces(self, *args: Any, **kwargs: Any) -> Iterator[tuple[Trace, torch.Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} must implement _traces")

    def run(self, *args: Any, **kwargs: Any) -> TracePosterior:
        """Collect the weighted traces (replacing any earlier run); returns ``self``."""
        self.exec_traces, self.log_weights = [], []
        # Runs are internal to the algorithm: handlers around the call must not see their sites,
        # and no trace should keep an autograd graph alive (the weights are detached anyway).
        with block(), torch.no_grad():
            for tr, log_weight in self._traces(*args, **kwargs):
                self.exec_traces.append(tr)
                self.log_weights.append(torch.as_tensor(log_weight).detach())
        return self

    def _stacked_log_weights(self) -> torch.Tensor:
        if not self.log_weights:
            raise ValueError(
                f"{type(self).__name__} holds no samples: call .run(*model_args) first."
            )
        return torch.stack(self.log_weights)

    def __call__(self, *args: Any, **kwargs: Any) -> Trace:
        """Draw one of the traces with probability proportional to its weight, without its
        observed sites (a posterior draw of the latents)."""
        index = torch.distributions.Categorical(logits=self._stacked_log_weights()).sample()
        tr = self.exec_traces[int(index)].copy()
        for name in tr.observation_nodes:
            tr.remove_node(name)
        return tr

    def information_criterion(self, pointwise: bool = False) -> dict[str, torch.Tensor]:
        """The widely applicable information criterion (WAIC) of the model on its observed
        data, and its effective number of parameters, from the traces' posterior draws.

        For each observed element ``y_i`` (every element of every observed site's batch) and
        the weighted draws ``theta_s``: ``lppd_i = log E_s p(y_i | theta_s)`` and
        ``p_waic_i = Var_s log p(y_i | theta_s)``; ``waic = -2 (lppd - p_waic)`` on the
        deviance scale, lower for a model expected to predict new data better (Watanabe, 2010;
        Vehtari, Gelman and Gabry, 2017). Returns ``{"waic": ..., "p_waic": ...}``, summed over
        the elements, or per element with ``pointwise=True`` (in the observed site's shape
        when there is one observed site, else flattened and concatenated in trace order);
        ``{}`` when nothing was run.

        >>> import engine as pyro, engine.distributions as dist
        >>> from engine import poutine
        >>> def model():
        ...     pyro.sample("y", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
        >>> class Fixed(TracePosterior):  # one parameter-free model: every draw the same
        ...     def _traces(self):
        ...         for _ in range(3):
        ...             yield poutine.trace(model).get_trace(), torch.tensor(0.0)
        >>> ic = Fixed().run().information_criterion()
        >>> round(float(ic["waic"]), 4), float(ic["p_waic"])  # -2 log N(0; 0, 1), no variance
        (1.8379, 0.0)
        """
        if not self.exec_traces:
            return {}
        with torch.no_grad():
            per_trace = [_observed_log_likelihoods(tr) for tr in self.exec_traces]
        log_lik = torch.stack([torch.cat([v.reshape(-1) for v in sites]) for sites in per_trace])
        log_w = self.get_normalized_weights(log_scale=True).to(log_lik)
        weights = log_w.exp()[:, None]
        lppd = (log_w[:, None] + log_lik).logsumexp(0)
        mean = (weights * log_lik).sum(0)
        p_waic = (weights * (log_lik - mean).pow(2)).sum(0)
        # The weighted variance, corrected to be unbiased for equal weights (n / (n - 1)).
        ess = self.get_ESS().to(log_lik)
        if ess > 1:
            p_waic = p_waic * ess / (ess - 1)
        waic = -2.0 * (lppd - p_waic)
        if not pointwise:
            return {"waic": waic.sum(), "p_waic": p_waic.sum()}
        first = per_trace[0]
        if len(first) == 1:
            return {"waic": waic.reshape(first[0].shape), "p_waic": p_waic.reshape(first[0].shape)}
        return {"waic": waic, "p_waic": p_waic}


def _observed_log_likelihoods(tr: Trace) -> list[torch.Tensor]:
    """Each observed site's per-element log-likelihood in one trace."""
    names = tr.observation_nodes
    if not names:
        raise ValueError(
            "information_criterion compares the model's fit to its observed data, but the "
            "traces observe no site. Fix: condition the model on data (obs= or "
            "poutine.condition) before running the posterior."
        )
    tr.compute_log_prob(lambda name, site: name in names)
    return [tr.nodes[name]["log_prob"] for name in names]
