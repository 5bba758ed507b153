"""Every concrete ``torch.distributions`` class, re-made as a subclass carrying Pyro's mixin.

``Normal`` here is ``class Normal(_TorchHooks, torch.distributions.Normal, TorchDistributionMixin)``
with one added ``__init__`` that forwards to torch's and rewords its validation errors. Building
them in a loop keeps the list complete for whatever torch version is installed; each keeps
torch's signature and docstring, so ``help(dist.Normal)`` reads like torch's.

>>> import torch
>>> d = Normal(0.0, 1.0)
>>> isinstance(d, torch.distributions.Normal), isinstance(d, TorchDistributionMixin)
(True, True)
"""

from __future__ import annotations

import re

import torch

from engine.distributions.conjugate_update import CONJUGATE_UPDATES
from engine.distributions.torch_distribution import (
    TorchDistributionMixin,
    _TorchHooks,
    register_wrapper,
    translating_init,
)
from engine.distributions.torch_transform import clear_transform_cache

# torch's examples print random draws: shown in our docstrings without their prompts, so doctest
# does not collect them as tests that could never pass.
_EXAMPLE_PROMPT = re.compile(r"^(\s*)>>> ", re.MULTILINE)

# Abstract bases: nothing to construct, and ``Distribution`` is Pyro's name for its own base.
_ABSTRACT = (torch.distributions.Distribution, torch.distributions.ExponentialFamily)


def clear_cache(self: torch.distributions.TransformedDistribution) -> None:
    """Forget the cached ``(x, y)`` pair of each transform (Pyro's ``clear_cache``: a flow
    trained in a loop calls it after each optimizer step).

    >>> flow = TransformedDistribution(Normal(0.0, 1.0), [torch.distributions.ExpTransform(1)])
    >>> y = flow.rsample(); flow.clear_cache()
    >>> flow.transforms[0]._cached_x_y
    (None, None)
    """
    for transform in self.transforms:
        clear_transform_cache(transform)


def wrap_torch_distribution(torch_cls: type) -> type:
    """Make the engine's subclass of one torch distribution class.

    >>> wrap_torch_distribution(torch.distributions.Gamma).__mro__[2] is torch.distributions.Gamma
    True
    """
    namespace = {
        "__init__": translating_init(torch_cls.__init__),
        "__module__": __name__,
        "__qualname__": torch_cls.__name__,
        "__doc__": (
            f"torch.distributions.{torch_cls.__name__} with Pyro's methods (``expand_by``, "
            f"``to_event``, ``mask``, ``shape``, calling to draw).\n\n"
            + _EXAMPLE_PROMPT.sub(r"\1", torch_cls.__doc__ or "")
        ),
    }
    if issubclass(torch_cls, torch.distributions.TransformedDistribution):
        namespace["clear_cache"] = clear_cache
    if torch_cls in CONJUGATE_UPDATES:
        namespace["conjugate_update"] = CONJUGATE_UPDATES[torch_cls]
    return type(torch_cls.__name__, (_TorchHooks, torch_cls, TorchDistributionMixin), namespace)


__all__: list[str] = []
for _name in torch.distributions.__all__:
    _torch_cls = getattr(torch.distributions, _name)
    if (
        isinstance(_torch_cls, type)
        and issubclass(_torch_cls, torch.distributions.Distribution)
        and _torch_cls not in _ABSTRACT
    ):
        _wrapper = wrap_torch_distribution(_torch_cls)
        register_wrapper(_torch_cls, _wrapper)
        globals()[_name] = _wrapper
        __all__.append(_name)
__all__.sort()


class Poisson(globals()["Poisson"]):
    """torch.distributions.Poisson with Pyro's methods and Pyro's ``is_sparse`` option.

    ``is_sparse=True`` scores counts that are mostly zero faster: a zero count's log-mass is
    just ``-rate``, so only the nonzero entries go through the full formula. The values are the
    same either way.

    >>> rate, counts = torch.tensor([2.0, 3.0, 0.5]), torch.tensor([0.0, 4.0, 0.0])
    >>> sparse = Poisson(rate, is_sparse=True).log_prob(counts)
    >>> torch.allclose(sparse, Poisson(rate).log_prob(counts))
    True
    """

    def __init__(
        self,
        rate: torch.Tensor | float,
        *,
        is_sparse: bool = False,
        validate_args: bool | None = None,
    ) -> None:
        # Left out when not given, so that a trusted run may switch validation off (see
        # translating_init).
        super().__init__(
            rate, **({} if validate_args is None else {"validate_args": validate_args})
        )
        self.is_sparse = is_sparse

    def expand(self, batch_shape: torch.Size, _instance: object = None) -> Poisson:
        new = Poisson(
            self.rate.expand(torch.Size(batch_shape)), is_sparse=self.is_sparse, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if not self.is_sparse:
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(value)
        rate, value = torch.broadcast_tensors(
            self.rate, torch.as_tensor(value, dtype=self.rate.dtype)
        )
        log_prob = -rate.clone()
        seen = value != 0
        k, r = value[seen], rate[seen]
        log_prob[seen] = k * r.log() - r - torch.lgamma(k + 1)
        return log_prob


register_wrapper(torch.distributions.Poisson, Poisson)
