"""Small tensor helpers shared by the distributions and the inference code; also Pyro's import
path ``pyro.distributions.util`` (``broadcast_shape``, ``logsumexp``, ``sum_rightmost``,
``sum_leftmost``, ``scale_and_mask``, ``copy_docs_from``, ``deep_to``, ``detach``, ``weakmethod``,
...).

They live here rather than in ``engine.ops`` because the distributions package sits below every
other engine package and must import none of them.

>>> import math
>>> x = torch.ones(2, 3, 4)
>>> sum_leftmost(x, 1).shape, sum_rightmost(x, -1).shape
(torch.Size([3, 4]), torch.Size([2]))
"""

from __future__ import annotations

import copy
import functools
import types
import weakref
from collections.abc import Callable, Iterable
from numbers import Number
from typing import Any

import torch

from engine.errors import ShapeError, fmt_shape


def broadcast_shape(*shapes: Iterable[int], strict: bool = False) -> torch.Size:
    """Broadcast shapes the way torch broadcasts tensors (``np.broadcast`` for shapes), raising
    a readable ``ShapeError`` (a ``ValueError``). With ``strict=True`` shapes may only be
    extended on the left, never a size-1 dim resized.

    Plain Python on purpose: ``torch.broadcast_shapes`` costs microseconds per call, and shapes
    are broadcast for every site of every step.

    >>> broadcast_shape((3, 1), (4,))
    torch.Size([3, 4])
    >>> broadcast_shape((4,), (3, 4), strict=True)
    torch.Size([3, 4])
    """
    shapes = [tuple(s) for s in shapes]
    # No ``max(..., default=0)``: torch.compile cannot trace that keyword.
    ndim = max([len(s) for s in shapes] or [0])
    out: list[int | None] = [None] * ndim  # None: no shape has reached this dim yet
    for shape in shapes:
        for i, size in enumerate(shape, start=ndim - len(shape)):
            current = out[i]
            if current is None or size == current:
                out[i] = size
            elif strict or (size != 1 and current != 1):
                listed = ", ".join(fmt_shape(s) for s in shapes)
                rule = "equal" if strict else "equal or one of them 1"
                raise ShapeError(
                    f"Shapes {listed} do not broadcast{' strictly' if strict else ''}: aligned "
                    f"from the right, each pair of dims must be {rule}."
                )
            elif current == 1:
                out[i] = size
    return torch.Size(out)


def _dims_to_sum(value: torch.Tensor, dim: int | float) -> int:
    """``dim`` as a count of dims to sum: negative counts keep ``-dim`` dims, inf sums all."""
    if dim < 0:
        dim += value.dim()
    return value.dim() if dim >= value.dim() else int(dim)


def sum_rightmost(value: torch.Tensor | Number, dim: int | float) -> torch.Tensor | Number:
    """Sum out the ``dim`` rightmost dims of ``value`` (numbers pass through untouched): 0 sums
    nothing, ``math.inf`` everything, and a negative ``dim`` keeps the ``-dim`` leftmost dims.

    >>> sum_rightmost(torch.ones(2, 3, 4), 2).shape
    torch.Size([2])
    >>> sum_rightmost(torch.ones(2, 3, 4), -2).shape, sum_rightmost(torch.ones(2, 3), float("inf"))
    (torch.Size([2, 3]), tensor(6.))
    """
    if isinstance(value, Number) or dim == 0:
        return value
    dim = _dims_to_sum(value, dim)
    if dim == 0:
        return value
    return value.reshape((*value.shape[: value.dim() - dim], -1)).sum(-1)


def sum_leftmost(value: torch.Tensor | Number, dim: int | float) -> torch.Tensor | Number:
    """Sum out the ``dim`` leftmost dims of ``value`` (numbers pass through untouched): 0 sums
    nothing, ``math.inf`` everything, and a negative ``dim`` keeps the ``-dim`` rightmost dims.

    >>> x = torch.ones(2, 3, 4)
    >>> sum_leftmost(x, 2).shape, sum_leftmost(x, -1).shape, sum_leftmost(x, float("inf"))
    (torch.Size([4]), torch.Size([4]), tensor(24.))
    """
    if isinstance(value, Number) or dim == 0:
        return value
    dim = _dims_to_sum(value, dim)
    if dim == 0:
        return value
    return value.reshape((-1, *value.shape[dim:])).sum(0)


def logsumexp(tensor: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """``log(sum(exp(tensor)))`` along ``dim`` (the last by default), computed without
    overflow; all ``-inf`` gives ``-inf``.

    >>> logsumexp(torch.tensor([[0.0, 0.0], [1000.0, -float("inf")]])).tolist()
    [0.6931471824645996, 1000.0]
    >>> logsumexp(torch.full((2,), -float("inf")))
    tensor(-inf)
    """
    return torch.logsumexp(tensor, dim=dim, keepdim=keepdim)


def scalar_like(prototype: torch.Tensor, fill_value: float) -> torch.Tensor:
    """A 0-dim tensor holding ``fill_value`` with ``prototype``'s dtype and device.

    >>> scalar_like(torch.zeros(3, dtype=torch.float64), 2)
    tensor(2., dtype=torch.float64)
    """
    return torch.tensor(fill_value, dtype=prototype.dtype, device=prototype.device)


def eye_like(value: torch.Tensor, m: int, n: int | None = None) -> torch.Tensor:
    """An ``m x n`` (``m x m`` by default) identity matrix with ``value``'s dtype and device.

    >>> eye_like(torch.zeros((), dtype=torch.float64), 2, 3)
    tensor([[1., 0., 0.],
            [0., 1., 0.]], dtype=torch.float64)
    """
    return torch.eye(m, m if n is None else n, dtype=value.dtype, device=value.device)


def copy_docs_from(source_class: type, full_text: bool = False) -> Callable[[type], type]:
    """A class decorator: every public method or property of the decorated class without a
    docstring gets one from ``source_class``'s attribute of the same name: a pointer to it
    (``"See :meth:`module.Class.name`"``), or its whole text with ``full_text=True`` (a source
    docstring that is itself a pointer is copied as it is).

    >>> class Base:
    ...     def sample(self):
    ...         "Draw a value."
    >>> @copy_docs_from(Base)
    ... class Mine(Base):
    ...     def sample(self):
    ...         return 1
    >>> Mine.sample.__doc__
    'See :meth:`engine.distributions.util.Base.sample`'
    """

    def decorate(destination: type) -> type:
        for name in dir(destination):
            if name.startswith("_"):
                continue
            attribute = destination.__dict__.get(name, getattr(destination, name))
            function = getattr(attribute, "__func__", attribute)
            source_doc = getattr(getattr(source_class, name, None), "__doc__", None)
            if not source_doc or getattr(function, "__doc__", None):
                continue
            if full_text or source_doc.startswith("See "):
                doc = source_doc
            else:
                doc = f"See :meth:`{source_class.__module__}.{source_class.__qualname__}.{name}`"
            if isinstance(attribute, property):
                # A property's docstring is read-only: replace the property with a documented one.
                setattr(
                    destination,
                    name,
                    property(attribute.fget, attribute.fset, attribute.fdel, doc),
                )
            else:
                try:
                    function.__doc__ = doc
                except (AttributeError, TypeError):
                    continue  # a builtin's docstring cannot be set
        return destination

    return decorate


def is_identically_zero(x: object) -> bool:
    """True only for the Python number 0, so a scalar zero term can be skipped without a sync.

    >>> is_identically_zero(0), is_identically_zero(torch.zeros(()))
    (True, False)
    """
    return isinstance(x, Number) and x == 0


def is_identically_one(x: object) -> bool:
    """True only for the Python number 1 (tensors are never inspected: that would sync a GPU).

    >>> is_identically_one(1.0), is_identically_one(torch.ones(()))
    (True, False)
    """
    return isinstance(x, Number) and x == 1


def scale_and_mask(
    tensor: torch.Tensor | Number,
    scale: torch.Tensor | Number = 1.0,
    mask: torch.Tensor | bool | None = None,
) -> torch.Tensor | Number:
    """Multiply by ``scale`` and zero out entries where ``mask`` is False.

    ``torch.where`` rather than multiplication by the mask, so a ``-inf`` or ``nan`` at a masked
    entry becomes an exact 0 instead of ``nan``.

    >>> scale_and_mask(torch.tensor([1.0, -float("inf")]), 2.0, torch.tensor([True, False]))
    tensor([2., 0.])
    """
    if is_identically_zero(tensor):
        return tensor
    if mask is None or mask is True:
        return tensor if is_identically_one(scale) else tensor * scale
    if mask is False:
        return 0.0 if isinstance(tensor, Number) else torch.zeros_like(tensor)
    scaled = tensor if is_identically_one(scale) else tensor * scale
    return torch.where(mask, scaled, scaled.new_zeros(()))


def deep_to(obj: Any, *args: Any, **kwargs: Any) -> Any:
    """A copy of ``obj`` (a distribution, a container, a module, any object) with every tensor
    replaced by ``tensor.to(*args, **kwargs)``.

    Tensors keep their place in the autograd graph (``.to`` is differentiable); a module is moved
    in place first, as ``nn.Module.to`` does, and then copied along with its plain tensor
    attributes, which ``nn.Module.to`` leaves alone.

    >>> import engine.distributions as dist
    >>> d = deep_to(dist.Normal(torch.zeros(2), 1.0), torch.float64)
    >>> d.loc.dtype, d.scale.dtype
    (torch.float64, torch.float64)
    """

    def move(x: torch.Tensor) -> torch.Tensor:
        moved = x.to(*args, **kwargs)
        # A module's unchanged parameter is copied, as a deep copy of the module would; other
        # tensors are values and may be shared.
        return copy.deepcopy(x) if moved is x and isinstance(x, torch.nn.Parameter) else moved

    def move_module(m: torch.nn.Module) -> None:
        m.to(*args, **kwargs)

    return _deep_map(obj, move, move_module, {})


def detach(obj: Any) -> Any:
    """A copy of ``obj`` with every tensor detached from the autograd graph (a module's
    parameters become parameters that require no gradient).

    >>> import engine.distributions as dist
    >>> loc = torch.zeros(2, requires_grad=True)
    >>> detach(dist.Normal(loc, 1.0)).loc.requires_grad
    False
    """

    def cut(x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.nn.Parameter):
            return torch.nn.Parameter(x.detach().clone(), requires_grad=False)
        return x.detach()

    return _deep_map(obj, cut, lambda m: None, {})


# Values copied by reference: immutable, or code rather than data.
_ATOMIC = (
    str,
    bytes,
    Number,
    type,
    torch.Size,
    torch.dtype,
    torch.device,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    weakref.ref,
)


def _deep_map(
    obj: Any,
    on_tensor: Callable[[torch.Tensor], torch.Tensor],
    on_module: Callable[[torch.nn.Module], None],
    memo: dict[int, Any],
) -> Any:
    """Copy ``obj`` recursively, mapping tensors with ``on_tensor`` (modules get ``on_module``
    first); an object reached twice is copied once (``memo`` maps ``id`` to the copy)."""
    if obj is None or isinstance(obj, _ATOMIC):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    again = functools.partial(_deep_map, on_tensor=on_tensor, on_module=on_module, memo=memo)
    if isinstance(obj, torch.Tensor):
        result = on_tensor(obj)
    elif type(obj) is dict:
        result = {k: again(v) for k, v in obj.items()}
    elif type(obj) in (list, tuple, set, frozenset):
        result = type(obj)(again(v) for v in obj)
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        result = type(obj)(*(again(v) for v in obj))
    elif hasattr(obj, "__dict__"):
        if isinstance(obj, torch.nn.Module):
            on_module(obj)
        result = copy.copy(obj)
        memo[key] = result  # before the attributes: they may point back at obj
        for name, value in vars(obj).items():
            vars(result)[name] = again(value)
        return result
    else:
        return obj
    memo[key] = result
    return result


def weakmethod(fn: Callable) -> property:
    """Decorate a method so that the bound method holds its instance weakly.

    Storing ``self.callback = self.method`` normally keeps ``self`` alive through a cycle; with
    ``@weakmethod`` the stored callback does not, and calling it after the instance is gone
    raises ``ReferenceError``.

    >>> import gc
    >>> class Counter:
    ...     def __init__(self):
    ...         self.n, self.callback = 0, self.bump
    ...     @weakmethod
    ...     def bump(self):
    ...         self.n += 1
    ...         return self.n
    >>> c = Counter(); c.callback(), c.callback()
    (1, 2)
    >>> ref = weakref.ref(c); del c; ref() is None
    True
    """

    def bind(self: Any) -> Callable:
        instance = weakref.ref(self)

        @functools.wraps(fn)
        def bound(*args: Any, **kwargs: Any) -> Any:
            owner = instance()
            if owner is None:
                raise ReferenceError(f"{fn.__qualname__}: its instance no longer exists")
            return fn(owner, *args, **kwargs)

        return bound

    return property(bind)
