"""A model's data sites as ArviZ's ``observed_data`` and ``log_likelihood`` groups want them,
and the names of every site's dims.

An observed site's *pointwise* log-likelihood has one entry per observation: the site's log
density with its event dims summed (a ``to_event`` vector is one observation) and its batch dims
kept. Those batch dims are what ``az.loo`` leaves out one at a time, so they get the names of the
plates they come from (ArviZ's dims), and the observed values are stored with the same dims.
``deterministic`` and ``factor`` sites are observed sites too, internally, but hold no data:
they are left out.

>>> import torch, engine, engine.distributions as dist
>>> from engine.poutine.handlers import trace
>>> def model():
...     mu = engine.sample("mu", dist.Normal(0.0, 1.0))
...     with engine.plate("rows", 3):
...         engine.sample("y", dist.Normal(mu, 1.0).expand([3, 2]).to_event(1),
...                       obs=torch.zeros(3, 2))
>>> site = trace(model).get_trace().nodes["y"]
>>> observed = ObservedSite.of(site, reserved={"mu", "y"})
>>> observed.batch_shape, observed.dims
(torch.Size([3]), ('rows', 'y_dim_1'))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from engine.runtime import Message, is_subsample_site

# ArviZ's own dims: a plate with one of these names keeps the default dim name instead.
_ARVIZ_DIMS = frozenset({"chain", "draw", "sample"})


def is_data(site: Message) -> bool:
    """Whether ``site`` is an observed sample site holding data (not ``deterministic``, not
    ``factor``, not a plate's subsample)."""
    return (
        site["type"] == "sample"
        and site["is_observed"]
        and not is_subsample_site(site)
        and not site["infer"].get("_deterministic", False)
        and not site["infer"].get("is_auxiliary", False)
    )


def site_dims(
    name: str, shape: torch.Size, batch_rank: int, frames: Iterable, reserved: Iterable[str]
) -> tuple[str, ...]:
    """Names for the dims of a site value of ``shape`` whose first ``batch_rank`` dims are batch
    dims: the plate whose dim it is (when the plate's size matches), else ``<name>_dim_<i>``
    as ArviZ would call it. ``reserved`` names (the model's sites: xarray cannot have a dim
    named like a variable) and ArviZ's own dims are never used for a plate.

    >>> from engine.runtime import CondIndepStackFrame
    >>> site_dims("y", torch.Size([4, 2]), 2, [CondIndepStackFrame("rows", -2, 4)], {"y"})
    ('rows', 'y_dim_1')
    """
    blocked = set(reserved) | _ARVIZ_DIMS
    plates = {
        frame.dim: frame for frame in frames if frame.dim is not None and frame.name not in blocked
    }
    dims = []
    for i, size in enumerate(shape):
        frame = plates.get(i - batch_rank) if i < batch_rank else None
        dims.append(frame.name if frame is not None and frame.size == size else f"{name}_dim_{i}")
    return tuple(dims)


@dataclass(frozen=True)
class ObservedSite:
    """One data site: its values (broadcast to batch + event shape), the shape of its pointwise
    log-likelihood (its batch shape) and the names of the value's dims."""

    name: str
    value: torch.Tensor
    batch_shape: torch.Size
    dims: tuple[str, ...]

    @classmethod
    def of(cls, site: Message, reserved: Iterable[str]) -> ObservedSite:
        """The data site ``site`` of a model run (one without the MCMC chain plate)."""
        fn, value = site["fn"], site["value"]
        event_shape = fn.event_shape
        value_batch = value.shape[: value.dim() - len(event_shape)]
        batch_shape = torch.broadcast_shapes(fn.batch_shape, value_batch)
        full = value.detach().expand(batch_shape + event_shape)
        dims = site_dims(
            site["name"], full.shape, len(batch_shape), site["cond_indep_stack"], reserved
        )
        return cls(site["name"], full, batch_shape, dims)
