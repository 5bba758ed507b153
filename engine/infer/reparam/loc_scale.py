"""``LocScaleReparam``: partial or full non-centring of a location-scale latent site.

For ``x ~ D(loc, scale, ...)`` and a centredness ``c`` in [0, 1], the auxiliary site
``{name}_decentered`` is drawn from ``D(c * loc, scale ** c, ...)`` and

    x = loc + scale ** (1 - c) * (x_decentered - c * loc).

``c = 0`` is the fully non-centred form (``x = loc + scale * noise``, the way eight schools is
written for HMC), ``c = 1`` leaves the site as it is, and ``c = None`` makes ``c`` a learnable
parameter ``{name}_centered`` in [0, 1], one per event element, for SVI to choose.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("x", dist.Normal(torch.tensor(10.0), 4.0))
>>> tr = poutine.trace(poutine.reparam(model, {"x": LocScaleReparam(0.0)})).get_trace()
>>> noise = tr.nodes["x_decentered"]["value"]
>>> bool(torch.isclose(tr.nodes["x"]["value"], 10.0 + 4.0 * noise))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import constraints

import engine
from engine.errors import ReparamError
from engine.infer.reparam.reparam import (
    Reparam,
    ReparamMessage,
    ReparamResult,
    auxiliary_sample,
    deterministic_result,
    with_pyro_methods,
)


class LocScaleReparam(Reparam):
    """Decentre a latent site whose distribution has ``loc`` and ``scale`` parameters.

    ``shape_params`` names the other parameters copied unchanged to the decentred distribution
    (``df`` of a ``StudentT``); by default every argument but ``loc`` and ``scale``, and then,
    as in Pyro, the attribute reads ``None`` until a site is rewritten and afterwards the names
    copied at the latest rewritten site (each site still gets its own family's names). Only
    latent sites are rewritten (an observed site is a likelihood: decentring it changes nothing).

    >>> LocScaleReparam(centered=0.0).centered
    0.0
    >>> try:
    ...     LocScaleReparam(centered=1.5)
    ... except ReparamError as error:
    ...     print(str(error)[:50])
    LocScaleReparam(centered=...) must lie in [0, 1] (
    >>> import engine.distributions as dist
    >>> from engine import poutine
    >>> reparam = LocScaleReparam(0.0)
    >>> def model():
    ...     engine.sample("t", dist.StudentT(4.0, 0.0, 1.0))
    >>> poutine.reparam(model, {"t": reparam})()
    >>> reparam.shape_params
    ('df',)
    """

    def __init__(
        self,
        centered: float | torch.Tensor | None = None,
        shape_params: Sequence[str] | None = None,
    ):
        if isinstance(centered, int) and not isinstance(centered, bool):
            centered = float(centered)
        if centered is not None and not isinstance(centered, float | torch.Tensor):
            raise ReparamError(
                "LocScaleReparam(centered=...) takes None, a float or a tensor in [0, 1]; got "
                f"a {type(centered).__name__}."
            )
        if centered is not None:
            inside = torch.as_tensor(centered)
            if not bool(((inside >= 0) & (inside <= 1)).all()):
                raise ReparamError(
                    "LocScaleReparam(centered=...) must lie in [0, 1] (0: non-centred, 1: "
                    f"centred, None: learned); got {centered}."
                )
        if shape_params is not None:
            if not isinstance(shape_params, list | tuple) or not all(
                isinstance(key, str) for key in shape_params
            ):
                raise ReparamError(
                    "LocScaleReparam(shape_params=...) takes a list or tuple of parameter "
                    f"names; got {shape_params!r}."
                )
            shape_params = tuple(shape_params)
        self.centered = centered
        self.shape_params = shape_params

    @property
    def shape_params(self) -> tuple[str, ...] | None:
        """The names given, else those copied at the latest rewritten site (None before)."""
        return self._given_shape_params or self._copied_shape_params

    @shape_params.setter
    def shape_params(self, names: Sequence[str] | None) -> None:
        self._given_shape_params = None if names is None else tuple(names)
        self._copied_shape_params: tuple[str, ...] | None = None

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw ``{name}_decentered`` and return the site as a deterministic function of it."""
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        centered = self.centered
        if isinstance(centered, float) and centered == 1.0:
            return {"fn": fn, "value": value, "is_observed": msg["is_observed"]}
        event_shape = fn.event_shape
        base, event_dim = self._unwrap(fn)
        base = with_pyro_methods(base)
        loc, scale = _loc_and_scale(name, base)
        if centered is None:
            centered = engine.param(
                f"{name}_centered",
                lambda: torch.full(event_shape, 0.5, dtype=loc.dtype, device=loc.device),
                constraint=constraints.unit_interval,
            )
        keys = self._given_shape_params
        if keys is None:
            keys = tuple(k for k in base.arg_constraints if k not in ("loc", "scale"))
            self._copied_shape_params = keys
        params = {key: getattr(base, key) for key in keys}
        params["loc"] = loc * centered
        params["scale"] = scale**centered
        decentered_fn = self._wrap(type(base)(**params), event_dim)

        decentered = None
        if value is not None:
            # The inverse map, differentiable so an observed or initial value carries over.
            decentered = (value - loc) * scale ** (centered - 1) + centered * loc
        decentered = auxiliary_sample(
            f"{name}_decentered", decentered_fn, decentered, msg["is_observed"]
        )
        if value is None:
            value = loc + scale ** (1 - centered) * (decentered - centered * loc)
        return deterministic_result(value, event_dim)


def _loc_and_scale(name: str, fn: object) -> tuple[torch.Tensor, torch.Tensor]:
    loc, scale = getattr(fn, "loc", None), getattr(fn, "scale", None)
    if not isinstance(loc, torch.Tensor) or not isinstance(scale, torch.Tensor):
        raise ReparamError(
            f"Site '{name}': LocScaleReparam needs a distribution with loc and scale parameters "
            f"(Normal, StudentT, Cauchy, Laplace, ...); a {type(fn).__name__} has none."
        )
    return loc, scale
