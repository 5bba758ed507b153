"""Stable reparameterizers: a ``Stable`` site, whose density has no closed form, rewritten through
auxiliary sites that do have densities.

* :class:`LatentStableReparam` (latent sites only): the Chambers-Mallows-Stuck construction writes
  a Stable draw as a deterministic function of a uniform angle ``u`` in (-pi/2, pi/2) and an
  ``Exponential(1)`` ``w``; the reparameterizer draws those as the sites ``{name}_uniform`` and
  ``{name}_exponential`` (parameter-free, so SVI and MCMC can infer them) and makes the site their
  function.
* :class:`SymmetricStableReparam` (``skew == 0``, latent or observed): a symmetric Stable law is a
  scale mixture of Normals, ``x = loc + scale * sqrt(2 a) * n`` with ``n ~ Normal(0, 1)`` and a
  positive, totally skewed Stable ``a`` of stability ``stability / 2``. Drawing ``a`` (through its
  own angle and exponential, ``{name}_uniform`` and ``{name}_exponential``) leaves the site a
  ``Normal`` given ``a``, so an observation stays a likelihood.
* :class:`StableReparam` (any skew, latent or observed): a Stable law is the sum of a symmetric one
  and a skewed one of the same stability (their ``scale ** stability`` add up, and the skewed
  part carries all of the skew). The skewed part is drawn through
  ``{name}_z_uniform`` and ``{name}_z_exponential``, the mixing variable of the symmetric part as
  above through ``{name}_t_uniform`` and ``{name}_t_exponential``; the site is then a ``Normal``.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     return engine.sample("x", dist.Stable(1.5, 0.3, torch.ones(2)).to_event(1))
>>> tr = poutine.trace(poutine.reparam(model, {"x": LatentStableReparam()})).get_trace()
>>> [n for n in tr.nodes if n.startswith("x_")], tr.nodes["x"]["value"].shape
(['x_uniform', 'x_exponential'], torch.Size([2]))
"""

from __future__ import annotations

import math

import torch

import engine
import engine.distributions as dist
from engine.errors import ReparamError
from engine.infer.reparam.reparam import (
    Reparam,
    ReparamMessage,
    ReparamResult,
    deterministic_result,
    require_family,
)

# Below this |x| the removable singularities below are evaluated by their Taylor series.
_SERIES = 1e-4


class LatentStableReparam(Reparam):
    """Rewrite a latent ``Stable`` site as a function of the sites ``{name}_uniform`` (the angle)
    and ``{name}_exponential``; see the module docstring.

    >>> config = {"x": LatentStableReparam()}
    >>> with engine.poutine.trace() as tracer, engine.poutine.reparam(config=config):
    ...     _ = engine.sample("x", dist.Stable(1.8, 0.0))
    >>> sorted(tracer.trace.nodes), type(tracer.trace.nodes["x_uniform"]["fn"]).__name__
    (['x', 'x_exponential', 'x_uniform'], 'Uniform')
    """

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw the angle and the exponential and return the site as their function."""
        name = msg["name"]
        fn, event_dim = self._unwrap(msg["fn"])
        require_family(name, fn, dist.Stable, "LatentStableReparam")
        if msg["is_observed"]:
            raise ReparamError(
                f"Site '{name}': LatentStableReparam rewrites latent Stable sites, but this one is "
                "observed. Rewrite it with StableReparam (or SymmetricStableReparam when its skew "
                "is 0), score the observation with dist.StableWithLogProb, or leave the site out "
                "of the reparam config."
            )
        u, w = _angle_and_exponential(self, name, fn, event_dim)
        return deterministic_result(fn.from_angle_and_exponential(u, w), event_dim)


class SymmetricStableReparam(Reparam):
    """Rewrite a symmetric (``skew == 0``) ``Stable`` site as a ``Normal`` given the positive
    Stable mixing variable drawn through ``{name}_uniform`` and ``{name}_exponential``. Observed
    sites stay observed (the Normal scores the data); see the module docstring.

    >>> config = {"y": SymmetricStableReparam()}
    >>> with engine.poutine.trace() as tracer, engine.poutine.reparam(config=config):
    ...     _ = engine.sample("y", dist.Stable(1.7, 0.0, 2.0), obs=torch.tensor(0.5))
    >>> site = tracer.trace.nodes["y"]
    >>> type(site["fn"]).__name__, site["is_observed"], float(site["value"])
    ('Normal', True, 0.5)
    """

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw the mixing variable and return the site's conditional Normal."""
        name = msg["name"]
        fn, event_dim = self._unwrap(msg["fn"])
        require_family(name, fn, dist.Stable, "SymmetricStableReparam")
        skew = fn.skew
        # The check reads the data: skip it while tracing (torch.jit), as shape checks are.
        if not torch._C._get_tracing_state() and bool((skew != 0).any()):
            raise ReparamError(
                f"Site '{name}': SymmetricStableReparam rewrites Stable sites whose skew is 0, "
                f"but this one has skew {_describe(skew)}. Use StableReparam for skewed sites."
            )
        u, w = _angle_and_exponential(self, name, fn, event_dim)
        normal_scale = fn.scale * _normal_scale_factor(fn.stability, u, w)
        normal = dist.Normal(fn._loc_s0(), normal_scale)
        return {
            "fn": self._wrap(normal, event_dim),
            "value": msg["value"],
            "is_observed": msg["is_observed"],
        }


class StableReparam(Reparam):
    """Rewrite any ``Stable`` site as a ``Normal`` given four auxiliary sites: the angle and the
    exponential of a skewed Stable part (``{name}_z_uniform``, ``{name}_z_exponential``)
    and of the mixing variable of a symmetric part (``{name}_t_uniform``, ``{name}_t_exponential``).
    Observed sites stay observed; see the module docstring.

    >>> config = {"x": StableReparam()}
    >>> with engine.poutine.trace() as tracer, engine.poutine.reparam(config=config):
    ...     _ = engine.sample("x", dist.Stable(1.5, 0.5))
    >>> [n for n in tracer.trace.nodes if n != "x"]
    ['x_z_uniform', 'x_z_exponential', 'x_t_uniform', 'x_t_exponential']
    >>> type(tracer.trace.nodes["x"]["fn"]).__name__, tracer.trace.nodes["x"]["is_observed"]
    ('Normal', False)
    """

    def apply(self, msg: ReparamMessage) -> ReparamResult:
        """Draw both parts' auxiliary sites and return the site's conditional Normal."""
        name = msg["name"]
        fn, event_dim = self._unwrap(msg["fn"])
        require_family(name, fn, dist.Stable, "StableReparam")
        alpha, beta, scale = fn.stability, fn.skew, fn.scale
        share = _skewed_share(beta)
        # A totally skewed law (|skew| = 1) has no symmetric part, but the conditional Normal
        # needs a positive scale: keep a share of machine epsilon (its effect on the law is of
        # that order).
        symmetric_share = (1 - share).clamp(min=torch.finfo(share.dtype).eps)

        u, w = _angle_and_exponential(self, f"{name}_z", fn, event_dim)
        unit_skewed = dist.Stable(
            alpha,
            beta / share,
            torch.ones_like(scale),
            torch.zeros_like(scale),
            validate_args=False,
        )
        skewed = scale * share.pow(1 / alpha) * unit_skewed.from_angle_and_exponential(u, w)

        u, w = _angle_and_exponential(self, f"{name}_t", fn, event_dim)
        normal_scale = scale * symmetric_share.pow(1 / alpha) * _normal_scale_factor(alpha, u, w)
        loc = fn._loc_s0() + skewed + scale * _s0_shift_of_split(alpha, beta, share)
        normal = dist.Normal(loc, normal_scale)
        return {
            "fn": self._wrap(normal, event_dim),
            "value": msg["value"],
            "is_observed": msg["is_observed"],
        }


def _angle_and_exponential(
    reparam: Reparam, prefix: str, fn: dist.Stable, event_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the parameter-free sites ``{prefix}_uniform`` (an angle in (-pi/2, pi/2)) and
    ``{prefix}_exponential`` (``Exponential(1)``) over ``fn``'s batch shape."""
    like = fn.loc
    half_pi = math.pi / 2
    angle = dist.Uniform(like.new_full((), -half_pi), like.new_full((), half_pi))
    u = engine.sample(f"{prefix}_uniform", reparam._wrap(angle.expand(fn.batch_shape), event_dim))
    exponential = dist.Exponential(like.new_ones(())).expand(fn.batch_shape)
    w = engine.sample(f"{prefix}_exponential", reparam._wrap(exponential, event_dim))
    return u, w


def _normal_scale_factor(alpha: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``sqrt(2 a)`` for the mixing variable ``a`` made from the angle ``u`` and exponential ``w``.

    ``a`` is the totally skewed Stable law of stability ``alpha / 2`` and (classical, S1) scale
    ``cos(pi alpha / 4) ** (2 / alpha)`` at location 0, which is positive; then
    ``sqrt(2 a) * Normal(0, 1)`` is the standard symmetric Stable law of stability ``alpha``
    (Samorodnitsky and Taqqu, Proposition 1.3.1). In the S0 coordinates of :class:`Stable` its
    location is ``scale * tan(pi alpha / 4)``, which tends to 1 as ``alpha -> 2`` while the scale
    tends to 0: the Normal case. At stability 2 exactly ``a == 1``.
    """
    quarter = math.pi * alpha / 4
    tiny = torch.finfo(alpha.dtype).tiny
    # cos(pi / 2) rounds to a tiny negative number in float32: keep it positive.
    cosine = torch.cos(quarter).clamp(min=tiny)
    mixing_scale = cosine.pow(2 / alpha)
    # scale * tan(pi alpha / 4), written so that it stays exact (1) at alpha == 2.
    mixing_loc = cosine.pow(2 / alpha - 1) * torch.sin(quarter)
    mixing = dist.Stable(
        alpha / 2, torch.ones_like(alpha), mixing_scale, mixing_loc, validate_args=False
    )
    a = mixing.from_angle_and_exponential(u, w)
    # Rounding (and the interpolation across alpha / 2 = 1) may step just below 0.
    return (2 * a.clamp(min=tiny)).sqrt()


def _skewed_share(beta: torch.Tensor) -> torch.Tensor:
    """The share ``k`` of ``scale ** stability`` that the skewed part of the split carries.

    Any ``k`` in [|skew|, 1] splits the law (the skewed part then has skew ``skew / k``); this
    one, ``sqrt(skew^2 + (1 - skew^2) / 16)``, is smooth in the skew, so that gradients through
    the draws are right at skew 0 too (a share of exactly |skew| has a kink there), and leaves
    the symmetric, conditionally Normal part three quarters of an unskewed law.
    """
    b2 = beta.pow(2)
    return (b2 + (1 - b2) / 16).sqrt()


def _s0_shift_of_split(
    alpha: torch.Tensor, beta: torch.Tensor, share: torch.Tensor
) -> torch.Tensor:
    """The S0 location (per unit scale) that splitting a Stable law of skew ``beta`` into a
    symmetric part and a part of share ``k = share`` and skew ``beta / k`` leaves over:
    ``beta (k ** (1 / alpha - 1) - 1) tan(pi alpha / 2)``, continued through ``alpha = 1``.

    In classical (S1) coordinates the locations of independent summands add; moving the sum and
    the skewed part into S0 shifts each by ``skew * scale * tan(pi alpha / 2)``, and this is the
    difference. It is written as ``beta log(k) h(t log k) g(alpha) / alpha`` with ``t = 1 / alpha
    - 1``, ``h(y) = expm1(y) / y`` and ``g(alpha) = (1 - alpha) tan(pi alpha / 2)``, whose
    removable singularities (``y = 0``, ``alpha = 1``) are evaluated by their series.
    """
    log_k = share.log()
    y = (1 / alpha - 1) * log_k
    small_y = y.abs() < _SERIES
    h = torch.where(small_y, 1 + y / 2, torch.expm1(y) / torch.where(small_y, 1.0, y))
    delta = alpha - 1
    small_delta = delta.abs() < _SERIES
    half_angle = math.pi * torch.where(small_delta, 1.0, delta) / 2
    # g = delta * cot(pi delta / 2); near delta = 0, (2 / pi) x cot x with x cot x ~ 1 - x^2 / 3.
    series = 2 / math.pi * (1 - (math.pi * delta / 2).pow(2) / 3)
    g = torch.where(small_delta, series, torch.where(small_delta, 1.0, delta) / half_angle.tan())
    return beta * log_k * h * g / alpha


def _describe(values: torch.Tensor) -> str:
    """A short description of a parameter tensor for an error message."""
    if values.numel() == 1:
        return f"{values.item():g}"
    return f"of shape {tuple(values.shape)} with nonzero entries"
