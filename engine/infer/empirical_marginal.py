"""``EmpiricalMarginal``: the weighted values of one site (or several, stacked) across the traces of
a ``TracePosterior``, as a distribution.

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.infer.importance import Importance
>>> def model():
...     return pyro.sample("z", dist.Normal(0.0, 1.0))
>>> marginal = EmpiricalMarginal(Importance(model, num_samples=100).run(), sites="z")
>>> marginal.sample().shape, marginal.mean.shape
(torch.Size([]), torch.Size([]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engine.distributions.empirical import Empirical
from engine.errors import ShapeError, fmt_shape
from engine.infer.abstract_infer import TracePosterior
from engine.poutine.trace_struct import Trace


class EmpiricalMarginal(Empirical):
    """The marginal of ``sites`` under ``trace_posterior``, weighted by its log weights.

    ``sites`` is one site name (default ``"_RETURN"``, the model's return value) or a list of
    names whose values share one shape; their values are stacked along a new leftmost event dim.

    >>> import engine as pyro, engine.distributions as dist
    >>> from engine.infer.importance import Importance
    >>> def model():
    ...     pyro.sample("a", dist.Normal(0.0, 1.0))
    ...     pyro.sample("b", dist.Normal(0.0, 1.0))
    >>> posterior = Importance(model, num_samples=10).run()
    >>> EmpiricalMarginal(posterior, sites=["a", "b"]).event_shape
    torch.Size([2])
    """

    def __init__(
        self,
        trace_posterior: TracePosterior,
        sites: str | Sequence[str] | None = None,
        validate_args: bool | None = None,
    ):
        if not trace_posterior.exec_traces:
            raise ValueError(
                "EmpiricalMarginal needs a posterior that has been run: pass "
                f"{type(trace_posterior).__name__}(...).run(*model_args)."
            )
        sites = "_RETURN" if sites is None else sites
        values = [_site_values(tr, sites) for tr in trace_posterior.exec_traces]
        shapes = {tuple(value.shape) for value in values}
        if len(shapes) > 1:
            raise ShapeError(
                f"EmpiricalMarginal over {sites!r}: the traces hold values of shapes "
                f"{sorted(shapes)}; the marginal needs one shape in every trace."
            )
        samples = torch.stack(values)
        dtype = samples.dtype if samples.dtype.is_floating_point else torch.get_default_dtype()
        log_weights = torch.stack(trace_posterior.log_weights).to(dtype=dtype)
        super().__init__(samples, log_weights, validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Empirical:
        # The expanded marginal is a plain Empirical: it no longer stands for a trace posterior.
        return super().expand(batch_shape, _instance or Empirical.__new__(Empirical))


def _site_values(tr: Trace, sites: str | Sequence[str]) -> torch.Tensor:
    names = [sites] if isinstance(sites, str) else list(sites)
    values = []
    for name in names:
        if name not in tr.nodes:
            listed = [n for n, site in tr.nodes.items() if site["type"] in ("sample", "return")]
            raise KeyError(
                f"EmpiricalMarginal: no site '{name}' in the traces; they hold {listed}."
            )
        values.append(torch.as_tensor(tr.nodes[name]["value"]))
    if isinstance(sites, str):
        return values[0]
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) > 1:
        described = ", ".join(
            f"'{n}' {fmt_shape(v.shape)}" for n, v in zip(names, values, strict=True)
        )
        raise ShapeError(
            f"EmpiricalMarginal stacks the sites {names}, so they need one shape; got "
            f"{described}. Build one marginal per site instead."
        )
    return torch.stack(values)
