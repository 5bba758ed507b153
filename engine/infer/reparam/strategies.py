"""Strategies: configs for ``poutine.reparam`` that choose each site's reparameterizer.

A strategy is a callable config (``site -> reparameterizer or None``) that remembers its choice
per site name in ``strategy.config``; applied to a model (``strategy(model)``) it returns the model
wrapped in ``poutine.reparam`` with itself as config.

* :class:`MinimalReparam` rewrites only the sites inference could not otherwise handle: a
  ``ProjectedNormal`` (it lives on a sphere), a ``Stable`` (its density is only known by numerical
  integration: latent sites get ``LatentStableReparam``, observed ones ``StableReparam``, or
  ``SymmetricStableReparam`` when their skew is a constant 0; ``StableWithLogProb`` is left
  alone), and a ``TransformedDistribution`` whose base needs rewriting.
* :class:`AutoReparam` also decentres every latent location-scale site with real support
  (``LocScaleReparam``, learned centredness by default), pulls every latent transformed
  distribution back to its base (``TransformReparam``) and rewrites relaxed categoricals
  (``GumbelSoftmaxReparam``): a good default for HMC on hierarchical models.

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     scale = engine.sample("scale", dist.LogNormal(0.0, 1.0))
...     return engine.sample("x", dist.Normal(0.0, scale))
>>> strategy = AutoReparam(centered=0.0)
>>> poutine.trace(strategy(model)).get_trace().stochastic_nodes
['scale_base_decentered', 'x_decentered']
>>> sorted(name for name, reparam in strategy.config.items() if reparam is not None)
['scale', 'scale_base', 'x']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.distributions import constraints

import engine.distributions as dist
from engine.errors import ReparamError
from engine.infer.reparam.loc_scale import LocScaleReparam
from engine.infer.reparam.projected_normal import ProjectedNormalReparam
from engine.infer.reparam.reparam import Reparam
from engine.infer.reparam.softmax import GumbelSoftmaxReparam
from engine.infer.reparam.stable import (
    LatentStableReparam,
    StableReparam,
    SymmetricStableReparam,
)
from engine.infer.reparam.transform import TransformReparam
from engine.runtime import Message


class Strategy:
    """Base class of strategies: subclasses define :meth:`configure`; the choice for each site
    name is made once and kept in ``self.config``.

    >>> class Nothing(Strategy):
    ...     def configure(self, msg):
    ...         return None
    >>> strategy = Nothing()
    >>> strategy({"name": "x", "fn": None, "is_observed": False}) is None, strategy.config
    (True, {'x': None})
    """

    def __init__(self) -> None:
        self.config: dict[str, Reparam | None] = {}

    def configure(self, msg: Message) -> Reparam | None:
        """The reparameterizer for the sample site ``msg`` (read ``msg["name"]``, ``msg["fn"]``,
        ``msg["is_observed"]``), or None to leave it alone."""
        raise NotImplementedError(f"{type(self).__name__} must define configure(msg)")

    def __call__(self, msg_or_fn: Message | Callable) -> Any:
        """As a config: the site's reparameterizer. Given a model: the model under
        ``poutine.reparam`` with this strategy."""
        if isinstance(msg_or_fn, dict):
            name = msg_or_fn["name"]
            if name not in self.config:
                self.config[name] = self.configure(msg_or_fn)
            return self.config[name]
        if not callable(msg_or_fn):
            raise ReparamError(
                f"{type(self).__name__}() applies to a model (a callable) or, as a config, to a "
                f"site; got a {type(msg_or_fn).__name__}."
            )
        from engine import poutine  # poutine imports nothing from infer: import it late

        return poutine.reparam(msg_or_fn, config=self)


def _minimal(fn: Any, is_observed: bool) -> Reparam | None:
    # Look through wrappers (Independent, masks, expansions) to the distribution that matters.
    while isinstance(getattr(fn, "base_dist", None), torch.distributions.Distribution):
        if isinstance(fn, torch.distributions.TransformedDistribution):
            # Rewrite the transformed site only when its base will need rewriting itself.
            return None if _minimal(fn.base_dist, is_observed) is None else TransformReparam()
        fn = fn.base_dist
    if isinstance(fn, dist.ProjectedNormal) and not is_observed:
        return ProjectedNormalReparam()
    if isinstance(fn, dist.Stable) and not isinstance(fn, dist.StableWithLogProb):
        return _stable(fn, is_observed)
    return None


def _stable(fn: Any, is_observed: bool) -> Reparam:
    if not is_observed:
        return LatentStableReparam()
    # A skew that is learned (or could become nonzero) needs the general split.
    if fn.skew.requires_grad or bool((fn.skew != 0).any()):
        return StableReparam()
    return SymmetricStableReparam()


class MinimalReparam(Strategy):
    """Rewrite only the sites that inference needs rewritten (see the module docstring).

    >>> import torch, engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("a", dist.Normal(0.0, 1.0))
    ...     engine.sample("u", dist.ProjectedNormal(torch.ones(3)))
    ...     engine.sample("s", dist.Stable(1.5, 0.0), obs=torch.tensor(0.3))
    >>> engine.poutine.trace(MinimalReparam()(model)).get_trace().stochastic_nodes
    ['a', 'u_normal', 's_uniform', 's_exponential']
    """

    def configure(self, msg: Message) -> Reparam | None:
        return _minimal(msg["fn"], msg["is_observed"])


def _is_real(support: constraints.Constraint) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real or support == constraints.real


class AutoReparam(Strategy):
    """Decentre location-scale latents, pull transformed latents back to their bases and rewrite
    relaxed categoricals; everything else as :class:`MinimalReparam`. ``centered`` is passed to
    each ``LocScaleReparam`` (None: learned).

    >>> AutoReparam(centered=2.0)
    Traceback (most recent call last):
    ...
    engine.errors.ReparamError: AutoReparam(centered=...) takes None or a float in [0, 1]; got 2.0.
    """

    def __init__(self, *, centered: float | None = None):
        if centered is not None and not (isinstance(centered, float) and 0 <= centered <= 1):
            raise ReparamError(
                f"AutoReparam(centered=...) takes None or a float in [0, 1]; got {centered!r}."
            )
        super().__init__()
        self.centered = centered

    def configure(self, msg: Message) -> Reparam | None:
        fn, name = msg["fn"], msg["name"]
        if not msg["is_observed"]:
            base = fn
            while isinstance(getattr(base, "base_dist", None), torch.distributions.Distribution):
                # A relaxed categorical is itself a transformed distribution: Gumbel noise suits
                # it better than its base.
                if isinstance(base, torch.distributions.RelaxedOneHotCategorical):
                    return GumbelSoftmaxReparam()
                if isinstance(base, torch.distributions.TransformedDistribution):
                    return TransformReparam()  # its base site is configured in turn
                base = base.base_dist
            reparam = self._loc_scale(name, base)
            if reparam is not None:
                return reparam
        return _minimal(fn, msg["is_observed"])

    def _loc_scale(self, name: str, fn: Any) -> LocScaleReparam | None:
        if name.endswith("_decentered"):
            return None  # the noise a LocScaleReparam drew: rewriting it again would never end
        keys = set(getattr(fn, "arg_constraints", {}))
        if not {"loc", "scale"} <= keys or not _is_real(fn.support):
            return None
        shape_params = sorted(keys - {"loc", "scale"})
        return LocScaleReparam(centered=self.centered, shape_params=shape_params)
