"""The Pyro layer over ``torch.distributions``: the mixin, its base class and two generic wrappers.

* :class:`TorchDistributionMixin` adds Pyro's methods (``shape``, ``expand_by``, ``to_event``,
  ``mask``, ``event_dim``) to any torch distribution. It defines no ``__init__`` and stores
  nothing, so it costs nothing per construction.
* :class:`TorchDistribution` is the base of the engine's own distributions.
* :class:`MaskedDistribution` (what ``mask`` returns) and :class:`ExpandedDistribution` (the
  fallback ``expand`` for a class that cannot expand itself) wrap another distribution.

The three live together because ``mask``/``expand`` construct the wrappers and the wrappers are
``TorchDistribution`` subclasses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.distributions import constraints

from engine.distributions.distribution import Distribution
from engine.distributions.explain import (
    argument_error,
    complex_argument_error,
    complex_log_prob_error,
    sample_error,
    value_dtype_error,
)
from engine.distributions.score_parts import ScoreParts
from engine.distributions.util import broadcast_shape, scale_and_mask
from engine.distributions.validation import in_trusted_run
from engine.errors import ArgumentError, DistributionArgumentError, PPLError, ShapeError, fmt_shape

# The wrapped torch classes are built in torch_wrappers, which imports this module; ``to_event``
# finds the wrapped ``Independent`` here, filled in by :func:`register_wrapper`.
_WRAPPERS: dict[type, type] = {}


def register_wrapper(torch_cls: type, wrapper: type) -> None:
    """Record ``wrapper`` as the engine's class for ``torch_cls`` (used by ``to_event``).

    >>> import engine.distributions as dist
    >>> _WRAPPERS[torch.distributions.Independent] is dist.Independent
    True
    """
    _WRAPPERS[torch_cls] = wrapper


class TorchDistributionMixin(Distribution):
    """Pyro's methods for a ``torch.distributions.Distribution`` subclass.

    Mixed in after the torch class, so torch's own behaviour is untouched and only methods torch
    lacks are added.

    >>> import torch, engine.distributions as dist
    >>> d = dist.Normal(torch.zeros(3, 2), 1.0).to_event(1)
    >>> d.shape((5,)), d.event_dim
    (torch.Size([5, 3, 2]), 1)
    """

    @property
    def event_dim(self) -> int:
        """Number of event dims, ``len(event_shape)``."""
        return len(self.event_shape)

    def shape(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Size:
        """Shape of a draw with ``sample_shape``: ``sample_shape + batch_shape + event_shape``.

        >>> import engine.distributions as dist
        >>> dist.Dirichlet(torch.ones(3)).shape((2,))
        torch.Size([2, 3])
        """
        return torch.Size(sample_shape) + self.batch_shape + self.event_shape

    def expand_by(self, sample_shape: Sequence[int]) -> TorchDistributionMixin:
        """Expand to ``sample_shape + batch_shape``: add independent batch dims on the left.

        >>> import engine.distributions as dist
        >>> dist.Normal(torch.zeros(3), 1.0).expand_by((4,)).batch_shape
        torch.Size([4, 3])
        """
        return self.expand(_as_shape(sample_shape, self, "expand_by") + self.batch_shape)

    def to_event(self, reinterpreted_batch_ndims: int | None = None) -> TorchDistributionMixin:
        """Declare the ``n`` rightmost batch dims to be event dims (all of them when ``None``).

        Applied to an ``Independent`` it merges into one ``Independent`` rather than nesting; a
        negative ``n`` turns event dims of an ``Independent`` back into batch dims; ``0`` returns
        the distribution itself.

        >>> import engine.distributions as dist
        >>> d = dist.Normal(torch.zeros(2, 3, 4), 1.0).to_event(1)
        >>> d.to_event(1).event_shape, d.to_event(-1).event_shape, type(d.to_event(1).base_dist)
        (torch.Size([3, 4]), torch.Size([]), <class 'engine.distributions.torch_wrappers.Normal'>)
        """
        n = (
            len(self.batch_shape)
            if reinterpreted_batch_ndims is None
            else reinterpreted_batch_ndims
        )
        if not isinstance(n, int) or isinstance(n, bool):
            raise ArgumentError(
                f"{type(self).__name__}.to_event({n!r}): the number of batch dims to turn into "
                f"event dims must be an int (the batch_shape is {fmt_shape(self.batch_shape)})."
            )
        if n == 0:
            return self
        if n > len(self.batch_shape):
            raise ShapeError(
                f"{type(self).__name__}.to_event({n}): the batch_shape is "
                f"{fmt_shape(self.batch_shape)}, so at most {len(self.batch_shape)} batch dim(s) "
                "can become event dims. Fix: expand the distribution first (.expand_by or a "
                "plate) or ask for fewer dims."
            )
        base, total = self, n
        while isinstance(base, torch.distributions.Independent):
            total += base.reinterpreted_batch_ndims
            base = base.base_dist
        if total < 0:
            raise ShapeError(
                f"{type(self).__name__}.to_event({n}): only event dims added by to_event "
                f"(Independent) can be removed, and this distribution has {total - n} of them "
                f"with event_shape {fmt_shape(self.event_shape)}."
            )
        if total == 0:
            return base
        return _WRAPPERS[torch.distributions.Independent](base, total)

    def mask(self, mask: torch.Tensor | bool) -> TorchDistributionMixin:
        """A copy whose ``log_prob`` is 0 where ``mask`` is False; draws are unchanged.

        ``mask`` is a bool or a bool tensor broadcastable with ``batch_shape``.

        >>> import engine.distributions as dist
        >>> d = dist.Normal(torch.zeros(3), 1.0).mask(torch.tensor([True, False, True]))
        >>> d.log_prob(torch.zeros(3))
        tensor([-0.9189,  0.0000, -0.9189])
        """
        if mask is True:
            return self
        return MaskedDistribution(self, mask)

    @classmethod
    def infer_shapes(cls, **arg_shapes: Sequence[int]) -> tuple[torch.Size, torch.Size]:
        """``(batch_shape, event_shape)`` of ``cls(**args)`` for arguments of the given shapes,
        computed without data (Pyro's ``infer_shapes``).

        The distribution is built from placeholder tensors on torch's "meta" device, which carry
        shapes but no values, so every class's own shape logic applies. Where that cannot run, the
        shapes follow from ``arg_constraints``: each argument's dims left of its constraint's
        event dims broadcast to the batch shape, and the event shape is that of the arguments
        whose constraint has as many event dims as the support (``()`` for a scalar support).

        >>> import engine.distributions as dist
        >>> dist.MultivariateNormal.infer_shapes(loc=(5, 3), scale_tril=(3, 3))
        (torch.Size([5]), torch.Size([3]))
        """
        placeholders = {
            name: torch.empty(torch.Size(shape), device="meta")
            for name, shape in arg_shapes.items()
        }
        try:
            d = cls(**placeholders, validate_args=False)
            return d.batch_shape, d.event_shape
        except Exception:
            pass
        batch_shapes, event_shapes = [], []
        support_dim = getattr(getattr(cls, "support", None), "event_dim", 0)
        for name, shape in arg_shapes.items():
            shape = torch.Size(shape)
            constraint = getattr(cls, "arg_constraints", {}).get(name, constraints.real)
            event_dim = getattr(constraint, "event_dim", 0)
            batch_shapes.append(shape[: max(0, len(shape) - event_dim)])
            if support_dim and event_dim >= support_dim:
                event_shapes.append(shape[len(shape) - event_dim :][:support_dim])
        return broadcast_shape(*batch_shapes), broadcast_shape(*event_shapes)

    def has_rsample_(self, value: bool) -> TorchDistributionMixin:
        """Set ``has_rsample`` on this one instance and return it (Pyro's in-place setter).

        ``False`` makes inference treat the draws as non-reparameterized (score-function
        gradients, draws by ``d()`` detached), e.g. for a variable that decides control flow.
        On a distribution that wraps another (``to_event``, ``mask``, ``expand``) the setting
        goes to the wrapped one, whose draws these are.

        >>> import engine.distributions as dist
        >>> d = dist.Normal(torch.zeros(2), 1.0).to_event(1).has_rsample_(False)
        >>> d.has_rsample, d.base_dist.has_rsample
        (False, False)
        """
        if not isinstance(value, bool):
            raise ArgumentError(
                f"{type(self).__name__}.has_rsample_({value!r}): the value must be True or False."
            )
        rsample = getattr(type(self), "rsample", None)
        no_rsample = rsample is torch.distributions.Distribution.rsample
        if value and no_rsample:
            raise ArgumentError(
                f"{type(self).__name__}.has_rsample_(True): this distribution has no "
                "reparameterized sampler (rsample), so its draws cannot carry gradients. Fix: "
                "leave has_rsample False; inference uses score-function gradients for it."
            )
        if isinstance(getattr(type(self), "has_rsample", None), property):
            # A wrapper reports its base's ability; set it where the draws are made.
            self.base_dist.has_rsample_(value)
        else:
            self.has_rsample = value
        return self


class _TorchHooks:
    """Put in front of a torch class: readable errors and an ``expand`` that always works.

    Each method defers to torch's and only acts when torch raises (or, for ``log_prob``, returns
    a complex density), so the success path costs one extra Python call.
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        try:
            log_prob = super().log_prob(value)
        except PPLError:
            raise
        except (RuntimeError, TypeError) as err:
            # A bool or integer value that torch cannot do float arithmetic with.
            replacement = value_dtype_error(self, value, super().log_prob)
            if replacement is None:
                raise
            raise replacement from err
        if isinstance(log_prob, torch.Tensor) and log_prob.is_complex():
            raise complex_log_prob_error(self, value)
        return log_prob

    def _validate_sample(self, value: torch.Tensor) -> None:
        try:
            super()._validate_sample(value)
        except ValueError as err:
            raise sample_error(self, value, err) from None

    def _get_checked_instance(self, cls: type, _instance: Any = None) -> Any:
        # torch refuses to build a blank instance for a subclass with its own ``__init__``; an
        # engine wrapper's ``__init__`` only forwards to torch's (``__wrapped__``), so it is safe.
        if _instance is None and getattr(type(self).__init__, "__wrapped__", None) is cls.__init__:
            return self.__new__(type(self))
        return super()._get_checked_instance(cls, _instance)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Any:
        try:
            expanded = super().expand(batch_shape, _instance)
        except NotImplementedError:
            if _instance is not None:
                raise
            return ExpandedDistribution(self, batch_shape)
        except (RuntimeError, TypeError, ShapeError):
            # torch's message speaks of tensors (and a wrapper's base_dist of its own shapes):
            # say which distribution and which shapes the user asked for.
            _check_expandable(self, _as_shape(batch_shape, self, "expand"))
            raise
        if "has_rsample" in self.__dict__:  # set by has_rsample_ on this instance: keep it
            expanded.has_rsample = self.has_rsample
        return expanded


def translating_init(init: Callable) -> Callable:
    """Wrap a torch ``__init__`` so its validation ``ValueError`` becomes a readable error.

    The wrapper keeps the wrapped signature and docstring (``help``, ``inspect.signature``).

    >>> import inspect
    >>> init = translating_init(torch.distributions.Gamma.__init__)
    >>> list(inspect.signature(init).parameters)[:3]
    ['self', 'concentration', 'rate']
    """

    parameters = list(inspect.signature(init).parameters)
    # How many positional arguments come before validate_args (self excluded).
    validate_position = (
        parameters.index("validate_args") - 1 if "validate_args" in parameters else -1
    )

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if (
            in_trusted_run()
            and "validate_args" not in kwargs
            and 0 <= len(args) <= validate_position
        ):
            kwargs["validate_args"] = False
        try:
            init(self, *args, **kwargs)
        except ValueError as err:
            raise argument_error(self, err, init, args, kwargs) from None
        except (NotImplementedError, RuntimeError, TypeError) as err:
            # torch's constraint checks are not implemented for complex tensors.
            replacement = complex_argument_error(self, init, args, kwargs)
            if replacement is None:
                raise
            raise replacement from err

    __init__.__wrapped__ = init
    __init__.__doc__ = init.__doc__
    __init__.__qualname__ = init.__qualname__
    return __init__


class TorchDistribution(_TorchHooks, torch.distributions.Distribution, TorchDistributionMixin):
    """Base class of the engine's own distributions (Pyro's ``TorchDistribution``).

    A subclass sets its parameters, then calls ``super().__init__(batch_shape, event_shape,
    validate_args)``; torch checks ``arg_constraints`` there and a violation is reported as a
    :class:`~engine.errors.DistributionArgumentError`. A subclass without its own ``expand``
    expands through :class:`ExpandedDistribution`.

    >>> class Coin(TorchDistribution):
    ...     arg_constraints = {"p": constraints.unit_interval}
    ...     def __init__(self, p):
    ...         self.p = torch.as_tensor(p)
    ...         super().__init__(self.p.shape)
    >>> Coin(torch.tensor([0.5, 0.2])).batch_shape
    torch.Size([2])
    """

    def __init__(
        self,
        batch_shape: Sequence[int] = torch.Size(),
        event_shape: Sequence[int] = torch.Size(),
        validate_args: bool | None = None,
    ) -> None:
        if validate_args is None and in_trusted_run():
            validate_args = False
        try:
            super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args)
        except ValueError as err:
            raise argument_error(self, err) from None


def _and_masks(a: torch.Tensor | bool, b: torch.Tensor | bool) -> torch.Tensor | bool:
    if a is True or b is False:
        return b
    if b is True or a is False:
        return a
    return a & b


class _OverBaseDistribution(TorchDistribution):
    """A distribution that changes another's shape or weighting but keeps its support and its
    sampling abilities (``self.base_dist``)."""

    base_dist: torch.distributions.Distribution

    @property
    def has_rsample(self) -> bool:
        return self.base_dist.has_rsample

    @property
    def has_enumerate_support(self) -> bool:
        return self.base_dist.has_enumerate_support

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return self.base_dist.support


class MaskedDistribution(_OverBaseDistribution):
    """``base_dist`` with its ``log_prob`` zeroed where ``mask`` is False (what ``.mask`` returns).

    Draws and supports are the base distribution's. A tensor mask may broadcast the batch shape.

    >>> import engine.distributions as dist
    >>> d = MaskedDistribution(dist.Bernoulli(0.5), torch.tensor([True, False]))
    >>> d.batch_shape, d.log_prob(torch.ones(2))
    (torch.Size([2]), tensor([-0.6931,  0.0000]))
    """

    arg_constraints: dict = {}

    def __init__(self, base_dist: torch.distributions.Distribution, mask: torch.Tensor | bool):
        _check_mask_type(base_dist, mask)
        batch_shape = base_dist.batch_shape
        if not isinstance(mask, bool):
            try:
                batch_shape = broadcast_shape(mask.shape, base_dist.batch_shape)
            except ShapeError:
                raise ShapeError(
                    f"{type(base_dist).__name__}.mask(...): the mask has shape "
                    f"{fmt_shape(mask.shape)}, which does not broadcast with the batch_shape "
                    f"{fmt_shape(base_dist.batch_shape)}. Fix: give the mask the batch shape (or "
                    "size-1 dims where the batch is constant)."
                ) from None
            if mask.shape != batch_shape:
                mask = mask.expand(batch_shape)
            if base_dist.batch_shape != batch_shape:
                base_dist = base_dist.expand(batch_shape)
        self.base_dist = base_dist
        self._mask = mask
        super().__init__(batch_shape, base_dist.event_shape, validate_args=False)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> MaskedDistribution:
        batch_shape = _as_shape(batch_shape, self, "expand")
        _check_expandable(self, batch_shape)
        mask = self._mask if isinstance(self._mask, bool) else self._mask.expand(batch_shape)
        return MaskedDistribution(self.base_dist.expand(batch_shape), mask)

    def mask(self, mask: torch.Tensor | bool) -> TorchDistributionMixin:
        if mask is True:
            return self
        _check_mask_type(self.base_dist, mask)
        return MaskedDistribution(self.base_dist, _and_masks(self._mask, mask))

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.base_dist.sample(sample_shape)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self.base_dist.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._mask is False:
            # The base is not evaluated at all: a fully masked value may be anything.
            shape = broadcast_shape(self.batch_shape, value.shape[: value.dim() - self.event_dim])
            return value.new_zeros(()).expand(shape)
        return scale_and_mask(self.base_dist.log_prob(value), mask=self._mask)

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        if self._mask is False:
            # Zeros in the base's layout (which parts are tensors), without evaluating the base.
            zero = self.log_prob(value)
            if self.has_rsample:
                return ScoreParts(zero, 0, zero)
            return ScoreParts(zero, zero, 0)
        return self.base_dist.score_parts(value).scale_and_mask(mask=self._mask)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        return self.base_dist.enumerate_support(expand=expand)

    @property
    def mean(self) -> torch.Tensor:
        return self.base_dist.mean

    @property
    def variance(self) -> torch.Tensor:
        return self.base_dist.variance


def _check_mask_type(base_dist: torch.distributions.Distribution, mask: object) -> None:
    if isinstance(mask, bool) or (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool):
        return
    got = (
        f"a tensor of dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask).__name__
    )
    raise DistributionArgumentError(
        f"{type(base_dist).__name__}.mask(...) takes a bool or a torch.bool tensor, got {got}. "
        "Fix: convert it, e.g. mask.bool() or (x > 0)."
    )


class ExpandedDistribution(_OverBaseDistribution):
    """``base_dist`` broadcast to a larger ``batch_shape``, with independent draws per entry.

    The generic ``expand`` for distributions that cannot expand their own parameters.

    >>> import engine.distributions as dist
    >>> d = ExpandedDistribution(dist.Normal(torch.zeros(3), 1.0), (2, 3))
    >>> d.sample((4,)).shape, d.log_prob(torch.zeros(3)).shape
    (torch.Size([4, 2, 3]), torch.Size([2, 3]))
    """

    arg_constraints: dict = {}

    def __init__(
        self, base_dist: torch.distributions.Distribution, batch_shape: Sequence[int] = ()
    ):
        batch_shape = torch.Size(batch_shape)
        if isinstance(base_dist, ExpandedDistribution):
            base_dist = base_dist.base_dist
        _check_expandable(base_dist, batch_shape)
        self.base_dist = base_dist
        super().__init__(batch_shape, base_dist.event_shape, validate_args=False)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> ExpandedDistribution:
        batch_shape = torch.Size(batch_shape)
        _check_expandable(self, batch_shape)
        return ExpandedDistribution(self.base_dist, batch_shape)

    def _draw(self, draw: Callable, sample_shape: Sequence[int]) -> torch.Tensor:
        # Entries that the expansion creates (new left dims, and dims of size 1 in the base) need
        # their own draws: ask the base for them as extra sample dims, then move each next to the
        # base dim it replaces. Of each such pair one size is 1, so a reshape merges them.
        sample_shape = torch.Size(sample_shape)
        n, base_shape = len(self.batch_shape), self.base_dist.batch_shape
        pad = n - len(base_shape)
        extra = torch.Size(
            size if i < pad or base_shape[i - pad] == 1 else 1
            for i, size in enumerate(self.batch_shape)
        )
        x = draw(sample_shape + extra)
        s = len(sample_shape)
        order = list(range(s + pad))
        for k in range(len(base_shape)):
            order += [s + pad + k, s + n + k]
        order += list(range(s + n + len(base_shape), x.dim()))
        return x.permute(order).reshape(sample_shape + self.batch_shape + self.event_shape)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self._draw(self.base_dist.sample, sample_shape)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self._draw(self.base_dist.rsample, sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        log_prob = self.base_dist.log_prob(value)
        return log_prob.expand(broadcast_shape(log_prob.shape, self.batch_shape))

    def score_parts(self, value: torch.Tensor) -> ScoreParts:
        parts = self.base_dist.score_parts(value)
        shape = broadcast_shape(parts.log_prob.shape, self.batch_shape)
        return ScoreParts(*(p.expand(shape) if isinstance(p, torch.Tensor) else p for p in parts))

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        values = self.base_dist.enumerate_support(expand=False)
        pad = len(self.batch_shape) - len(self.base_dist.batch_shape)
        values = values.reshape(values.shape[:1] + (1,) * pad + values.shape[1:])
        if expand:
            values = values.expand(values.shape[:1] + self.batch_shape + self.event_shape)
        return values

    @property
    def mean(self) -> torch.Tensor:
        return self.base_dist.mean.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        return self.base_dist.variance.expand(self.batch_shape + self.event_shape)


def _check_expandable(d: torch.distributions.Distribution, batch_shape: torch.Size) -> None:
    """Raise a :class:`ShapeError` naming ``d`` and both shapes unless ``batch_shape`` is a
    broadcast of ``d``'s batch shape."""
    old = d.batch_shape
    fits = len(old) <= len(batch_shape) and all(
        o in (1, b) for o, b in zip(reversed(old), reversed(batch_shape), strict=False)
    )
    if not fits:
        example = (batch_shape[0] if batch_shape else 2, *old)
        name = type(d).__name__
        if isinstance(d, _OverBaseDistribution):
            name += f" of {type(d.base_dist).__name__}"
        raise ShapeError(
            f"Cannot expand {name} with batch_shape {fmt_shape(old)} to "
            f"{fmt_shape(batch_shape)}: aligned from the right, each existing dim must be 1 or "
            "equal to the new size, and new dims can only be added on the left. Fix: ask for "
            f"a shape that ends in {fmt_shape(old)}, e.g. .expand({list(example)}) or "
            f".expand_by([{example[0]}]), or give the parameters the shape you need."
        )


def _as_shape(shape: Any, d: torch.distributions.Distribution, method: str) -> torch.Size:
    """``shape`` as a ``torch.Size``, or an error naming the distribution and the method."""
    try:
        return torch.Size(shape)
    except TypeError:
        raise ShapeError(
            f"{type(d).__name__}.{method}({shape!r}): a shape is a list or tuple of ints, e.g. "
            f".{method}([{shape!r}]) for one dim of size {shape!r}."
            if isinstance(shape, int)
            else f"{type(d).__name__}.{method}({shape!r}): a shape is a list or tuple of ints."
        ) from None
