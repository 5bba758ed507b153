"""Learnable transforms: Pyro's ``TransformModule`` and ``ComposeTransformModule``, the cache
rules they share, and ``clear_transform_cache`` for any transform; and ``ParameterFree``, the
equality of the transforms that have no parameters.

A ``TransformModule`` is a ``torch.distributions.Transform`` and a ``torch.nn.Module``, so
``pyro.module("flow", transform)`` or ``torch.optim.Adam(transform.parameters())`` trains it.
Flows cache their last ``(x, y)`` pair (scoring a value just drawn then needs no inverse); a
cached pair computed before the parameters changed is stale, so a module drops its cache as soon
as an optimizer has updated any of its parameters, besides ``clear_cache()`` as in Pyro.

>>> import torch
>>> class Shift(TransformModule):
...     domain = codomain = torch.distributions.constraints.real
...     bijective = True
...     def __init__(self):
...         super().__init__(cache_size=1)
...         self.loc = torch.nn.Parameter(torch.zeros(()))
...     def _call(self, x):
...         return x + self.loc
...     def _inverse(self, y):
...         return y - self.loc
...     def log_abs_det_jacobian(self, x, y):
...         return torch.zeros_like(x)
>>> shift, x = Shift(), torch.tensor(1.0)
>>> shift(x)
tensor(1., grad_fn=<AddBackward0>)
>>> with torch.no_grad():
...     _ = shift.loc.add_(2.0)  # what an optimizer step does
>>> shift(x)  # recomputed, not the cached 1.0
tensor(3., grad_fn=<AddBackward0>)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions.transforms import ComposeTransform, Transform, _InverseTransform


class ParameterFree:
    """Mixin (first among the bases) for a transform without parameters: every instance of the
    class is the same map, so instances compare equal and hash alike (as torch's ``ExpTransform``
    does), which lets ``biject_to`` results and transform caches be compared.

    >>> class Negate(ParameterFree, Transform):
    ...     def _call(self, x):
    ...         return -x
    >>> Negate() == Negate(), hash(Negate()) == hash(Negate()), Negate() == Transform()
    (True, True, False)
    """

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self))

    def __hash__(self) -> int:
        return hash(type(self))


def clear_transform_cache(transform: Transform) -> None:
    """Forget the cached ``(x, y)`` pair of ``transform`` and of every transform inside it
    (the parts of a ``ComposeTransform``, the base of an ``.inv``).

    >>> t = torch.distributions.ExpTransform(cache_size=1)
    >>> x = torch.zeros(1)
    >>> t(x) is t(x)
    True
    >>> y = t(x); clear_transform_cache(t); t(x) is y
    False
    """
    if isinstance(transform, TransformModule | JointLogDetTransform):
        transform.clear_cache()
        return
    if getattr(transform, "_cache_size", 0) == 1:
        transform._cached_x_y = None, None
    if isinstance(transform, ComposeTransform):
        for part in transform.parts:
            clear_transform_cache(part)
    elif isinstance(transform, _InverseTransform):
        clear_transform_cache(transform._inv)


class JointLogDetTransform(Transform):
    """A transform that gets ``log |det J|`` in the same pass as its forward or inverse value.

    Subclasses write ``_forward_and_log_det(x)`` and ``_inverse_and_log_det(y)``, both returning
    the log-Jacobian of the forward map at ``x``. The last pair's log-Jacobian is kept with it, so
    ``log_abs_det_jacobian(x, y)`` right after ``y = t(x)`` or ``x = t.inv(y)`` (what
    ``TransformedDistribution`` does) costs nothing; for any other pair it is recomputed from
    ``x``.
    """

    _log_det_memo: tuple | None = None

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, log_det = self._forward_and_log_det(x)
        self._log_det_memo = (x, y, log_det)
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        x, log_det = self._inverse_and_log_det(y)
        self._log_det_memo = (x, y, log_det)
        return x

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        memo = self._log_det_memo
        if memo is not None and memo[0] is x and memo[1] is y:
            return memo[2]
        return self._forward_and_log_det(x)[1]

    def clear_cache(self) -> None:
        """Forget the cached pair and its log-Jacobian."""
        if self._cache_size == 1:
            self._cached_x_y = None, None
        self._log_det_memo = None


class _ParameterAwareCache:
    """Put in front of ``Transform`` in a module's bases: drop the cached pair when any of the
    module's parameters changed in place since it was cached (each in-place update, such as an
    optimizer step, bumps a tensor's version counter)."""

    def _drop_stale_cache(self) -> None:
        if self._cache_size == 0:
            return
        # nn.Module's own parameters(): a subclass may redefine parameters() to expose
        # another object's, which its cached pair does not depend on.
        versions = tuple(p._version for p in nn.Module.parameters(self))
        if versions != getattr(self, "_cached_versions", None):
            self.clear_cache()
            self._cached_versions = versions

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._drop_stale_cache()
        return super().__call__(x)

    def _inv_call(self, y: torch.Tensor) -> torch.Tensor:
        self._drop_stale_cache()
        return super()._inv_call(y)


class TransformModule(_ParameterAwareCache, Transform, nn.Module):
    """A ``Transform`` with learnable parameters (a ``torch.nn.Module`` too): the base of every
    normalizing flow. See the module docstring for its cache rules.

    >>> import engine.distributions.transforms as T
    >>> isinstance(T.Spline(2), torch.nn.Module)
    True
    """

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)

    # Transform compares by identity (and so drops the hash); a Module must be hashable.
    def __hash__(self) -> int:
        return object.__hash__(self)

    def clear_cache(self) -> None:
        """Forget the cached ``(x, y)`` pair (Pyro's ``clear_cache``)."""
        if self._cache_size == 1:
            self._cached_x_y = None, None


class ComposeTransformModule(_ParameterAwareCache, ComposeTransform, nn.ModuleList):
    """A ``ComposeTransform`` whose learnable parts are registered as submodules, so one
    ``pyro.module`` call (or ``.parameters()``) reaches all of them.

    >>> import engine.distributions.transforms as T
    >>> flow = ComposeTransformModule([T.Spline(2), T.ExpTransform()])
    >>> len(list(flow.parameters())) == len(list(flow[0].parameters()))
    True
    """

    def __init__(self, parts: list[Transform], cache_size: int = 0) -> None:
        super().__init__(parts, cache_size=cache_size)
        for part in parts:
            if isinstance(part, nn.Module):
                self.append(part)

    def __hash__(self) -> int:
        return object.__hash__(self)

    def with_cache(self, cache_size: int = 1) -> ComposeTransformModule:
        if cache_size == self._cache_size:
            return self
        return ComposeTransformModule(self.parts, cache_size=cache_size)

    def clear_cache(self) -> None:
        """Forget the cached pairs of the composition and of each part."""
        if self._cache_size == 1:
            self._cached_x_y = None, None
        for part in self.parts:
            clear_transform_cache(part)
