"""The posterior marginal of each enumerated model site, as a distribution.

The sum-product gives ``log Z``, the log of the sum over every value of the enumerated sites.
Add to it a term ``delta_z[k]`` (zero) for each value ``k`` of a site ``z`` (one per element of
its plates): the derivative of ``log Z`` in ``delta_z[k]`` is the posterior probability that
``z`` takes value ``k``, given every other site's value and every observation. One backward
pass through the forward algorithm gives every site's marginal at once (forward-backward, by
autograd). A vectorised plate's subsampling factor multiplies the derivative; it is divided out.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> from engine.infer import config_enumerate
>>> @config_enumerate
... def model():
...     z = engine.sample("z", dist.Bernoulli(0.5))
...     engine.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(2.0))
>>> tr = poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()
>>> marginal = posterior_marginals(tr)["z"]
>>> round(marginal.probs.item(), 4)  # exp(0) / (exp(0) + exp(-2)): the likelihood ratio
0.8808
"""

from __future__ import annotations

import math

import torch

import engine.distributions as dist
from engine.infer.enum.factors import enumerated_sites, site_factors, trace_plates
from engine.infer.enum.sum_product import Factor, contract, plate_total
from engine.poutine.trace_struct import Trace


def posterior_marginals(model_trace: Trace) -> dict[str, dist.Distribution]:
    """Each enumerated site of ``model_trace`` (a model run under ``poutine.enum``): the
    distribution of its value given the rest of the trace, batched over its plates."""
    plates = trace_plates(model_trace)
    variables = enumerated_sites(model_trace)
    if not variables:
        return {}
    deltas: dict[str, Factor] = {}
    for name, variable in variables.items():
        inside = tuple(sorted(variable.plates))
        shape = (variable.size, *(plates[plate].size for plate in inside))
        tensor = torch.zeros(shape, requires_grad=True)
        deltas[name] = Factor(tensor, (name, *inside), (name,))
    factors = site_factors(model_trace, variables, plates) + list(deltas.values())
    left = contract(factors, variables, plates, set(variables))
    log_z = sum(plate_total(factor, plates) for factor in left)
    grads = torch.autograd.grad(log_z, [delta.tensor for delta in deltas.values()])
    marginals = {}
    for (name, delta), grad in zip(deltas.items(), grads, strict=True):
        subsampling = math.prod(plates[label].scale for label in delta.labels[1:])
        probs = (grad / subsampling).clamp(min=0.0)
        marginals[name] = _distribution(model_trace.nodes[name], probs, delta.labels[1:])
    return marginals


def _distribution(site: dict, probs: torch.Tensor, inside: tuple[str, ...]) -> dist.Distribution:
    """``probs`` (values first, then one dim per plate of ``inside``) laid out on the site's
    plate dims, as a distribution of the site's own kind where it has one: Bernoulli,
    Categorical, OneHotCategorical; for any other, a Categorical over the positions of
    ``enumerate_support()``."""
    dims = {frame.name: frame.dim for frame in site["cond_indep_stack"] if frame.vectorized}
    width = max((-dims[plate] for plate in inside), default=0)
    order = sorted(range(len(inside)), key=lambda i: dims[inside[i]])
    shape = [1] * width
    for i in order:
        shape[width + dims[inside[i]]] = probs.shape[1 + i]
    batch = probs.permute(*(1 + i for i in order), 0).reshape(*shape, probs.shape[0])
    while batch.dim() > 1 and batch.shape[0] == 1:
        batch = batch.squeeze(0)  # as the site's own batch shape: no leading ones
    fn = site["fn"]
    base = getattr(fn, "base_dist", fn)
    if isinstance(base, dist.Bernoulli):
        return dist.Bernoulli(probs=batch[..., 1])
    if isinstance(base, dist.OneHotCategorical):
        return dist.OneHotCategorical(probs=batch)
    return dist.Categorical(probs=batch)
