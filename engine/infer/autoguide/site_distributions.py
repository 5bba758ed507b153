"""The distributions autoguides put at the model's latent sites.

Both carry the model site's support, so a guide site can be compared with its model site, and
both include the log|Jacobian| of the map from unconstrained space in their log-density:

* :class:`TransformedNormal`: a Normal in unconstrained space pushed onto the support
  (``AutoNormal``). It remembers its last draw, so scoring that draw needs no inverse transform.
* :class:`SiteDelta`: a point mass with a ``log_density`` (``AutoDelta``, and the per-site values
  the flat-vector guides unpack from their joint draw).

>>> import torch
>>> from engine.distributions import biject_to, constraints
>>> d = TransformedNormal(torch.zeros(2), torch.ones(2), biject_to(constraints.positive), 0,
...                       constraints.positive)
>>> x = d.rsample()
>>> bool((x > 0).all()), d.log_prob(x).shape
(True, torch.Size([2]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions.constraints import Constraint
from torch.distributions.transforms import Transform

from engine.distributions import Delta, TorchDistribution
from engine.distributions.util import sum_rightmost
from engine.infer.batched_log_prob import Family, register_family

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class TransformedNormal(TorchDistribution):
    """``transform(x)`` with ``x ~ Normal(loc, scale)``, the rightmost ``event_dim`` dims of ``x``
    forming one event; ``transform=None`` means the identity.

    ``log_prob(y)`` is the Normal log-density of ``x = transform⁻¹(y)`` minus
    ``log|d transform / dx|``, i.e. the density of ``y`` itself. Draws are reparameterized.

    >>> import torch
    >>> from engine.distributions import constraints
    >>> d = TransformedNormal(torch.zeros(3), torch.ones(3), None, 1, constraints.real_vector)
    >>> d.batch_shape, d.event_shape
    (torch.Size([]), torch.Size([3]))
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        transform: Transform | None,
        event_dim: int,
        support: Constraint,
    ):
        self.loc = loc
        self.scale = scale
        self.transform = transform
        self.unconstrained_event_dim = event_dim
        self._support = support
        self._last_draw: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        batch_dims = loc.dim() - event_dim
        shape = loc.shape if transform is None else transform.forward_shape(loc.shape)
        super().__init__(loc.shape[:batch_dims], shape[batch_dims:], validate_args=False)

    @property
    def support(self) -> Constraint:
        return self._support

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> TransformedNormal:
        shape = torch.Size(batch_shape) + self.loc.shape[len(self.batch_shape) :]
        return TransformedNormal(
            self.loc.expand(shape),
            self.scale.expand(shape),
            self.transform,
            self.unconstrained_event_dim,
            self._support,
        )

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        loc = self.loc
        if sample_shape:
            noise = torch.randn(
                torch.Size(sample_shape) + loc.shape, dtype=loc.dtype, device=loc.device
            )
        else:
            noise = torch.randn_like(loc)
        x = loc + noise * self.scale
        y = x if self.transform is None else self.transform(x)
        self._last_draw = (y, x, noise)
        return y

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        last = self._last_draw
        if last is not None and value is last[0]:
            # Scoring our own draw x = loc + noise * scale: (x - loc) / scale is the noise itself.
            # Its total derivative in loc and scale is the same as that of the formula, and
            # it saves recording four differentiable ops per site.
            x, z = last[1], last[2]
        else:
            x = value if self.transform is None else self.transform.inv(value)
            z = (x - self.loc) / self.scale
        log_prob = sum_rightmost(
            (-0.5 * z * z - _HALF_LOG_TWO_PI) - self.scale.log(), self.unconstrained_event_dim
        )
        if self.transform is None:
            return log_prob
        log_jacobian = self.transform.log_abs_det_jacobian(x, value)
        return log_prob - sum_rightmost(log_jacobian, log_jacobian.dim() - log_prob.dim())


class SiteDelta(Delta):
    """A point mass at ``v`` that reports ``support`` (the model site's) as its support.

    >>> import torch
    >>> from engine.distributions import constraints
    >>> d = SiteDelta(torch.tensor(2.0), constraints.positive, log_density=-0.5)
    >>> d.support is constraints.positive, d.log_prob(torch.tensor(2.0))
    (True, tensor(-0.5000))
    """

    def __init__(
        self,
        v: torch.Tensor,
        support: Constraint,
        log_density: torch.Tensor | float = 0.0,
        event_dim: int = 0,
    ):
        self._support = support
        super().__init__(v, log_density=log_density, event_dim=event_dim, validate_args=False)

    @property
    def support(self) -> Constraint:
        return self._support

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> SiteDelta:
        batch_shape = torch.Size(batch_shape)
        return SiteDelta(
            self.v.expand(batch_shape + self.event_shape),
            self._support,
            self.log_density.expand(batch_shape),
            self.event_dim,
        )


def _transformed_normal_key(fn: TransformedNormal, value: torch.Tensor):
    last = fn._last_draw
    if fn.transform is not None or last is None or value is not last[0]:
        return None
    return (fn.loc.shape, fn.unconstrained_event_dim, value.dtype, value.device)


def _transformed_normal_total(sites) -> torch.Tensor:
    # Each site scores its own draw: the log-density is that of the standard-normal noise, so
    # the whole group is one expression over the stacked noises and scales.
    noise = torch.stack([site["fn"]._last_draw[2] for site in sites])
    scale = torch.stack([site["fn"].scale for site in sites])
    return (-0.5 * noise * noise - _HALF_LOG_TWO_PI - scale.log()).sum()


register_family(TransformedNormal, Family(_transformed_normal_key, _transformed_normal_total))
