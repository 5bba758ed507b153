"""Gaussian guides over the flat unconstrained vector: diagonal, full-rank and low-rank.

Parameters (Pyro's names and initial values, ``D`` the vector's length):

* ``AutoDiagonalNormal``: ``loc`` (D,), ``scale`` (D,) softplus-positive, starting at
  ``init_scale``.
* ``AutoMultivariateNormal``: ``loc``, ``scale`` (D,) and ``scale_tril`` (D, D) unit lower
  triangular (starting at the identity); the covariance's Cholesky factor is
  ``scale[:, None] * scale_tril``.
* ``AutoLowRankMultivariateNormal``: ``loc``, ``scale`` (D,) starting at ``sqrt(1/2) *
  init_scale`` and ``cov_factor`` (D, rank) starting at ``Normal(0, 1/sqrt(rank))`` draws; the
  covariance is ``W Wᵀ + diag(scale²)`` with ``W = scale[:, None] * cov_factor``, so each marginal
  starts near ``init_scale``.

>>> import engine, engine.distributions as dist
>>> engine.clear_param_store()
>>> def model():
...     engine.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))
...     engine.sample("s", dist.HalfNormal(1.0))
>>> guide = AutoMultivariateNormal(model, model_args=())
>>> guide.latent_dim, engine.param("AutoMultivariateNormal.scale_tril").shape
(4, torch.Size([4, 4]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.distributions.transforms import AffineTransform, Transform

from engine.distributions import (
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    constraints,
)
from engine.distributions.lower_cholesky_affine import LowerCholeskyAffine
from engine.errors import AutoGuideError
from engine.infer.autoguide.continuous import AutoContinuous
from engine.infer.autoguide.guide import GuideParam
from engine.infer.autoguide.initialization import InitFn, init_to_median
from engine.primitives import param

__all__ = [
    "AutoDiagonalNormal",
    "AutoLowRankMultivariateNormal",
    "AutoMultivariateNormal",
]


def _check_init_scale(cls: type, init_scale: float) -> float:
    if not init_scale > 0:
        raise AutoGuideError(f"{cls.__name__}: init_scale must be positive, got {init_scale!r}")
    return float(init_scale)


def _read(p: GuideParam) -> torch.Tensor:
    return param(p.name, p.init, p.constraint, p.event_dim)


def _standard_normal(p: GuideParam) -> torch.distributions.Distribution:
    zeros = torch.zeros_like(p.init)
    return Normal(zeros, torch.ones_like(zeros), validate_args=False).to_event(1)


class _GaussianContinuous(AutoContinuous):
    """What the Gaussian flat-vector guides share: an ``init_scale``, a ``loc`` and a positive
    ``scale`` over the flat latent vector."""

    scale_constraint = constraints.softplus_positive

    def __init__(
        self,
        model: Callable,
        init_loc_fn: InitFn = init_to_median,
        init_scale: float = 0.1,
        *,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
    ):
        super().__init__(model, init_loc_fn, create_plates=create_plates)
        self._init_scale = _check_init_scale(type(self), init_scale)
        self._setup_if_given(model_args, model_kwargs)

    def _loc_and_scale(self, init_loc: torch.Tensor, scale: float) -> list[GuideParam]:
        self._loc = GuideParam("loc", "loc", init_loc, constraints.real)
        self._scale = GuideParam(
            "scale", "scale_unconstrained", torch.full_like(init_loc, scale), self.scale_constraint
        )
        return [self._loc, self._scale]


class AutoDiagonalNormal(_GaussianContinuous):
    """A Normal with diagonal covariance over all latent sites, in unconstrained space.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    >>> guide = AutoDiagonalNormal(model, model_args=())
    >>> engine.param("AutoDiagonalNormal.scale")
    tensor([0.1000, 0.1000], grad_fn=<SoftplusBackward0>)
    """

    def _posterior_params(self, init_loc: torch.Tensor) -> list[GuideParam]:
        return self._loc_and_scale(init_loc, self._init_scale)

    def get_base_dist(self) -> torch.distributions.Distribution:
        """A standard Normal over the flat vector."""
        return _standard_normal(self._loc)

    def get_transform(self, *args: Any, **kwargs: Any) -> Transform:
        """``x -> loc + scale * x``, coordinate by coordinate.

        >>> import engine, engine.distributions as dist
        >>> engine.clear_param_store()
        >>> def model():
        ...     engine.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        >>> zero = lambda site: torch.zeros(2)  # start at loc 0
        >>> guide = AutoDiagonalNormal(model, zero, init_scale=0.5, model_args=())
        >>> guide.get_transform()(torch.ones(2))
        tensor([0.5000, 0.5000], grad_fn=<AddBackward0>)
        """
        return AffineTransform(_read(self._loc), _read(self._scale), event_dim=1)

    def get_posterior(self, *args: Any, **kwargs: Any) -> torch.distributions.Distribution:
        """``Normal(loc, scale).to_event(1)`` over the flat vector."""
        return Normal(_read(self._loc), _read(self._scale), validate_args=False).to_event(1)

    def _loc_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._value(self._loc), self._value(self._scale)


class AutoMultivariateNormal(_GaussianContinuous):
    """A full-covariance Normal over all latent sites, in unconstrained space.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    >>> guide = AutoMultivariateNormal(model, model_args=())
    >>> guide.get_posterior().covariance_matrix.diagonal()
    tensor([0.0100, 0.0100], grad_fn=<DiagonalBackward0>)
    """

    scale_tril_constraint = constraints.unit_lower_cholesky

    def _posterior_params(self, init_loc: torch.Tensor) -> list[GuideParam]:
        loc_and_scale = self._loc_and_scale(init_loc, self._init_scale)
        eye = torch.eye(self.latent_dim, dtype=init_loc.dtype, device=init_loc.device)
        self._scale_tril = GuideParam(
            "scale_tril", "scale_tril_unconstrained", eye, self.scale_tril_constraint
        )
        return [*loc_and_scale, self._scale_tril]

    def get_base_dist(self) -> torch.distributions.Distribution:
        """A standard Normal over the flat vector."""
        return _standard_normal(self._loc)

    def get_transform(self, *args: Any, **kwargs: Any) -> Transform:
        """``x -> loc + L x`` with ``L = scale[:, None] * scale_tril`` the covariance's
        Cholesky factor.

        >>> import engine, engine.distributions as dist
        >>> engine.clear_param_store()
        >>> def model():
        ...     engine.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        >>> zero = lambda site: torch.zeros(2)  # start at loc 0
        >>> guide = AutoMultivariateNormal(model, zero, init_scale=0.5, model_args=())
        >>> guide.get_transform()(torch.ones(2))
        tensor([0.5000, 0.5000], grad_fn=<AddBackward0>)
        """
        scale_tril = _read(self._scale)[..., None] * _read(self._scale_tril)
        return LowerCholeskyAffine(_read(self._loc), scale_tril)

    def get_posterior(self, *args: Any, **kwargs: Any) -> torch.distributions.Distribution:
        """``MultivariateNormal(loc, scale_tril=scale[:, None] * scale_tril)``."""
        scale_tril = _read(self._scale)[..., None] * _read(self._scale_tril)
        return MultivariateNormal(_read(self._loc), scale_tril=scale_tril, validate_args=False)

    def _loc_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale_tril = self._value(self._scale)[:, None] * self._value(self._scale_tril)
        return self._value(self._loc), scale_tril.pow(2).sum(-1).sqrt()


class AutoLowRankMultivariateNormal(_GaussianContinuous):
    """A Normal over all latent sites whose covariance is low rank plus diagonal.

    ``rank`` defaults to ``round(sqrt(latent_dim))``.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("x", dist.Normal(torch.zeros(9), 1.0).to_event(1))
    >>> guide = AutoLowRankMultivariateNormal(model, model_args=())
    >>> engine.param("AutoLowRankMultivariateNormal.cov_factor").shape
    torch.Size([9, 3])
    """

    def __init__(
        self,
        model: Callable,
        init_loc_fn: InitFn = init_to_median,
        init_scale: float = 0.1,
        rank: int | None = None,
        *,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
    ):
        if rank is not None and not (isinstance(rank, int) and rank > 0):
            raise AutoGuideError(
                f"AutoLowRankMultivariateNormal: rank must be a positive int, got {rank!r}"
            )
        self.rank = rank
        super().__init__(
            model,
            init_loc_fn,
            init_scale,
            create_plates=create_plates,
            model_args=model_args,
            model_kwargs=model_kwargs,
        )

    def _posterior_params(self, init_loc: torch.Tensor) -> list[GuideParam]:
        if self.rank is None:
            self.rank = max(1, round(self.latent_dim**0.5))
        loc_and_scale = self._loc_and_scale(init_loc, math.sqrt(0.5) * self._init_scale)
        cov_factor = init_loc.new_empty(self.latent_dim, self.rank).normal_(0, self.rank**-0.5)
        self._cov_factor = GuideParam("cov_factor", "cov_factor", cov_factor, constraints.real)
        return [*loc_and_scale, self._cov_factor]

    def get_posterior(self, *args: Any, **kwargs: Any) -> torch.distributions.Distribution:
        """``LowRankMultivariateNormal(loc, scale[:, None] * cov_factor, scale ** 2)``."""
        scale = _read(self._scale)
        cov_factor = scale[..., None] * _read(self._cov_factor)
        return LowRankMultivariateNormal(
            _read(self._loc), cov_factor, scale * scale, validate_args=False
        )

    def _loc_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self._value(self._scale)
        cov_factor = scale[:, None] * self._value(self._cov_factor)
        return self._value(self._loc), (cov_factor.pow(2).sum(-1) + scale * scale).sqrt()
