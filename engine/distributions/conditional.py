"""Conditional distributions and transforms: Pyro's ``ConditionalDistribution``,
``ConditionalTransform``, ``ConditionalTransformModule``, ``ConditionalComposeTransformModule``
and ``ConditionalTransformedDistribution``.

A conditional object is a placeholder until ``.condition(context)`` turns it into an ordinary
distribution or transform for that context (a hypernetwork usually maps the context to the
parameters). Context batch dims broadcast against the batch dims of the values.

>>> import engine.distributions as dist
>>> import engine.distributions.transforms as T
>>> flow = dist.ConditionalTransformedDistribution(
...     dist.Normal(torch.zeros(1), torch.ones(1)), [T.conditional_spline(1, context_dim=2)]
... )
>>> flow.condition(torch.zeros(5, 2)).sample().shape
torch.Size([5, 1])
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn
from torch.distributions import Distribution, Transform

from engine.distributions.torch_transform import (
    ComposeTransformModule,
    clear_transform_cache,
)
from engine.distributions.torch_wrappers import TransformedDistribution
from engine.errors import ArgumentError


class ConditionalDistribution(ABC):
    """A family of distributions indexed by a context: ``condition(context)`` gives one."""

    @abstractmethod
    def condition(self, context: torch.Tensor) -> Distribution:
        """The distribution for ``context``."""


class ConditionalTransform(ABC):
    """A family of transforms indexed by a context: ``condition(context)`` gives one."""

    @abstractmethod
    def condition(self, context: torch.Tensor) -> Transform:
        """The transform for ``context``."""


class ConditionalTransformModule(ConditionalTransform, nn.Module):
    """A conditional transform with learnable parameters (a ``torch.nn.Module``, so
    ``pyro.module`` and ``.parameters()`` reach them). ``.inv`` conditions to the inverse.

    >>> import engine.distributions.transforms as T
    >>> t = T.conditional_spline(2, context_dim=1)
    >>> context, x = torch.zeros(1), torch.randn(2)
    >>> torch.allclose(t.inv.condition(context)(t.condition(context)(x)), x, atol=1e-5)
    True
    """

    def __hash__(self) -> int:
        return object.__hash__(self)

    @property
    def inv(self) -> ConditionalTransformModule:
        return _ConditionalInverse(self)


class _ConditionalInverse(ConditionalTransformModule):
    """The inverse family of a conditional transform: conditions to ``base.condition(c).inv``."""

    def __init__(self, base: ConditionalTransformModule) -> None:
        super().__init__()
        self._transform = base

    @property
    def inv(self) -> ConditionalTransformModule:
        return self._transform

    def condition(self, context: torch.Tensor) -> Transform:
        return self._transform.condition(context).inv


class ConstantConditionalDistribution(ConditionalDistribution):
    """A distribution that ignores the context (how a plain base distribution is held)."""

    def __init__(self, base_dist: Distribution) -> None:
        if not isinstance(base_dist, Distribution):
            raise ArgumentError(
                f"ConstantConditionalDistribution needs a distribution, got {type(base_dist)}."
            )
        self.base_dist = base_dist

    def condition(self, context: torch.Tensor) -> Distribution:
        return self.base_dist


class ConstantConditionalTransform(ConditionalTransform):
    """A transform that ignores the context (how a plain transform is held)."""

    def __init__(self, transform: Transform) -> None:
        if not isinstance(transform, Transform):
            raise ArgumentError(
                f"ConstantConditionalTransform needs a transform, got {type(transform)}."
            )
        self.transform = transform

    def condition(self, context: torch.Tensor) -> Transform:
        return self.transform

    def clear_cache(self) -> None:
        clear_transform_cache(self.transform)


def _as_conditional_transform(transform: object, owner: str) -> ConditionalTransform:
    if isinstance(transform, ConditionalTransform):
        return transform
    if isinstance(transform, Transform):
        return ConstantConditionalTransform(transform)
    raise ArgumentError(
        f"{owner}: {type(transform).__name__} is neither a transform nor a conditional "
        "transform. Pass objects such as T.spline(2) or T.conditional_spline(2, context_dim=1)."
    )


class ConditionalComposeTransformModule(ConditionalTransformModule, nn.ModuleList):
    """Conditional transforms (and plain ones, which ignore the context) applied in order;
    conditions to a ``ComposeTransformModule``.

    >>> import engine.distributions.transforms as T
    >>> stack = ConditionalComposeTransformModule(
    ...     [T.conditional_spline(2, context_dim=1), T.spline(2)]
    ... )
    >>> len(stack.condition(torch.zeros(1)).parts), len(list(stack.children()))
    (2, 2)
    """

    def __init__(self, transforms: list, cache_size: int = 0) -> None:
        super().__init__()
        if cache_size not in (0, 1):
            raise ArgumentError(
                f"ConditionalComposeTransformModule: cache_size must be 0 or 1, got {cache_size}."
            )
        self.transforms = [
            _as_conditional_transform(t, "ConditionalComposeTransformModule") for t in transforms
        ]
        self._cache_size = cache_size
        for t in transforms:
            if isinstance(t, nn.Module):
                self.append(t)

    def condition(self, context: torch.Tensor) -> ComposeTransformModule:
        return ComposeTransformModule([t.condition(context) for t in self.transforms]).with_cache(
            self._cache_size
        )


class ConditionalTransformedDistribution(ConditionalDistribution):
    """A base distribution pushed through transforms, some of them conditional:
    ``condition(context)`` gives the ``TransformedDistribution`` for that context.

    >>> import engine.distributions as dist
    >>> import engine.distributions.transforms as T
    >>> d = dist.ConditionalTransformedDistribution(
    ...     dist.Normal(torch.zeros(2), 1.0).to_event(1), [T.conditional_spline(2, 3)]
    ... )
    >>> d.condition(torch.zeros(3)).log_prob(torch.zeros(4, 2)).shape
    torch.Size([4])
    """

    def __init__(self, base_dist: Distribution | ConditionalDistribution, transforms: list):
        if isinstance(transforms, Transform | ConditionalTransform):
            transforms = [transforms]
        self.base_dist = (
            base_dist
            if isinstance(base_dist, ConditionalDistribution)
            else ConstantConditionalDistribution(base_dist)
        )
        self.transforms = [
            _as_conditional_transform(t, "ConditionalTransformedDistribution") for t in transforms
        ]

    def condition(self, context: torch.Tensor) -> Distribution:
        base = self.base_dist.condition(context)
        return TransformedDistribution(base, [t.condition(context) for t in self.transforms])

    def clear_cache(self) -> None:
        """Forget the cached pairs of the plain transforms held (conditioned transforms are made
        afresh by every ``condition`` call, so they hold none between calls)."""
        for t in self.transforms:
            if isinstance(t, ConstantConditionalTransform):
                t.clear_cache()
