"""``GumbelSoftmaxReparam`` (``SoftmaxReparam`` is its older name): a ``RelaxedOneHotCategorical``
site as a softmax of Gumbel-perturbed logits.

The relaxed categorical's value is ``softmax((logits + g) / temperature)`` with ``g`` standard
Gumbel noise. Drawing the noise as ``{name}_uniform ~ Uniform(0, 1)`` (``g = -log(-log u)``)
leaves a site whose distribution has no parameters: its posterior is far closer to unimodal and
easy for a guide.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("p", dist.RelaxedOneHotCategorical(
...         torch.tensor(0.5), logits=torch.zeros(3)))
>>> tr = poutine.trace(poutine.reparam(model, {"p": GumbelSoftmaxReparam()})).get_trace()
>>> tr.nodes["p_uniform"]["value"].shape, round(float(tr.nodes["p"]["value"].sum()), 5)
(torch.Size([3]), 1.0)
"""

from __future__ import annotations

import torch

import engine.distributions as dist
from engine.infer.reparam.reparam import (
    Reparam,
    ReparamMessage,
    ReparamResult,
    auxiliary_sample,
    deterministic_result,
    refuse_observed,
    require_family,
)


class GumbelSoftmaxReparam(Reparam):
    """Rewrite a latent ``RelaxedOneHotCategorical`` site through uniform noise ``{name}_uniform``.

    >>> from engine.errors import ReparamError
    >>> relaxed = dist.RelaxedOneHotCategorical(torch.tensor(1.0), logits=torch.zeros(2))
    >>> site = {"name": "p", "fn": relaxed, "value": torch.ones(2) / 2, "is_observed": True}
    >>> try:
    ...     GumbelSoftmaxReparam().apply(site)
    ... except ReparamError as error:
    ...     print(str(error)[:46])
    Site 'p' is observed, and GumbelSoftmaxReparam
    """

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw ``{name}_uniform`` and return the softmax of the perturbed logits."""
        name, value = msg["name"], msg["value"]
        refuse_observed(msg, "GumbelSoftmaxReparam")
        fn, event_dim = self._unwrap(msg["fn"])
        require_family(name, fn, dist.RelaxedOneHotCategorical, "GumbelSoftmaxReparam")
        logits, temperature = fn.logits, fn.temperature
        uniform = None
        if value is not None:
            # An initial value fixes the Gumbel noise only up to a constant per event, and any
            # constant will do: take the one that makes the perturbed logits the value's logs.
            uniform = (fn.logits - value.log() * temperature).exp().neg().exp()
        noise_fn = dist.Uniform(torch.zeros_like(logits), torch.ones_like(logits))
        uniform = auxiliary_sample(
            f"{name}_uniform", self._wrap(noise_fn.to_event(1), event_dim), uniform, False
        )
        if value is None:
            gumbel = -(-uniform.log()).log()
            value = ((logits + gumbel) / temperature).softmax(-1)
        return deterministic_result(value, event_dim)


SoftmaxReparam = GumbelSoftmaxReparam
"""The name Pyro gave this reparameterizer before 1.8."""
