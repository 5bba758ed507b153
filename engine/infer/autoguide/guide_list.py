"""``AutoGuideList``: one guide made of parts, each guiding its own block of the model's sites.

Each part is built on a blocked view of the model (``poutine.block(model, expose=[...])`` or
``hide=[...]``), so that it sees only its sites. Parts are named ``<list prefix>.<index>`` in the
param store (``AutoGuideList.0.w``), as in Pyro, and share one set of plates per call, so every
part sees the same mini-batch. A plain function can be a part too (see :class:`AutoCallable`).

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> from engine.infer.autoguide import AutoDelta, AutoNormal
>>> engine.clear_param_store()
>>> def model():
...     engine.sample("a", dist.Normal(0.0, 1.0))
...     engine.sample("b", dist.Normal(0.0, 1.0))
>>> guide = AutoGuideList(model)
>>> guide.append(AutoDelta(poutine.block(model, expose=["a"])))
>>> guide.append(AutoNormal(poutine.block(model, hide=["a"])))
>>> sorted(guide()), sorted(engine.get_param_store())
(['a', 'b'], ['AutoGuideList.0.a', 'AutoGuideList.1.locs.b', 'AutoGuideList.1.scales.b'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from engine.errors import AutoGuideError
from engine.infer.autoguide.guide import AutoGuide

__all__ = ["AutoCallable", "AutoGuideList"]


class AutoCallable(AutoGuide):
    """A hand-written guide function as an ``AutoGuide``, to be a part of an ``AutoGuideList``.

    Calling it calls ``guide``, which registers its own params and samples its own sites, and
    returns its result when that is a dict of values (``{}`` otherwise). ``median(*args)`` calls
    the given ``median`` function, or returns ``{}``.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("x", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     return {"x": engine.sample("x", dist.Normal(0.5, 0.1))}
    >>> sorted(AutoCallable(model, guide)())
    ['x']
    """

    def __init__(self, model: Callable, guide: Callable, median: Callable | None = None):
        super().__init__(model)
        # A tuple, so that a guide that is an nn.Module is not registered twice (it keeps its
        # params in the param store itself).
        self._guide = (guide,)
        self._median = median

    @property
    def is_set_up(self) -> bool:
        return True

    def setup(self, *args: Any, **kwargs: Any) -> AutoCallable:
        """Nothing to set up: the function creates its own params."""
        return self

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Call the guide function; return its dict of values (``{}`` if it returns none)."""
        result = self._guide[0](*args, **kwargs)
        return result if isinstance(result, dict) else {}

    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The ``median`` function's result, or ``{}`` when none was given."""
        return {} if self._median is None else self._median(*args, **kwargs)


class AutoGuideList(AutoGuide):
    """A guide that runs its parts one after the other and merges their results.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("x", dist.Normal(0.0, 1.0))
    >>> guide = AutoGuideList(model)
    >>> len(guide)
    0
    """

    def __init__(self, model: Callable, *, create_plates: Callable | None = None):
        super().__init__(model, create_plates=create_plates)
        self._ready = False

    @property
    def is_set_up(self) -> bool:
        return self._ready and all(part.is_set_up for part in self)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[AutoGuide]:
        return iter(self._modules.values())

    def __getitem__(self, index: int) -> AutoGuide:
        return list(self._modules.values())[index]

    def append(self, part: AutoGuide | Callable) -> None:
        """Add a part: an autoguide on a blocked view of the model, or a guide function."""
        if not isinstance(part, AutoGuide):
            if not callable(part):
                raise TypeError(
                    f"AutoGuideList.append takes an autoguide or a guide function, got a "
                    f"{type(part).__name__}"
                )
            part = AutoCallable(self.model, part)
        if part._master is not None:
            raise AutoGuideError(
                f"This {type(part).__name__} is already a part of an AutoGuideList; create a "
                "new guide for each list."
            )
        index = len(self)
        self.add_module(str(index), part)
        # Not through nn.Module.__setattr__, which would register the list as a submodule of its
        # own part.
        object.__setattr__(part, "_master", self)
        part._set_prefix(f"{self._prefix}.{index}")
        self._ready = False

    def _set_prefix(self, prefix: str) -> None:
        super()._set_prefix(prefix)
        for index, part in enumerate(self):
            part._set_prefix(f"{prefix}.{index}")

    def setup(self, *args: Any, **kwargs: Any) -> AutoGuideList:
        """Set up every part not set up yet, and check that no site has two parts."""
        if not len(self):
            raise AutoGuideError(
                "AutoGuideList has no parts: append guides to it first, e.g. "
                "guide.append(AutoNormal(poutine.block(model, hide=[...])))."
            )
        owner: dict[str, int] = {}
        self._frames = {}
        for index, part in enumerate(self):
            if not part.is_set_up:
                part.setup(*args, **kwargs)
            for name in part._site_shapes:
                if name in owner:
                    first = self[owner[name]]
                    raise AutoGuideError(
                        f"Site '{name}' is guided by two parts of the AutoGuideList: part "
                        f"{owner[name]} ({type(first).__name__}) and part {index} "
                        f"({type(part).__name__}). Give each site to one part: build the other "
                        f"on poutine.block(model, hide=['{name}'])."
                    )
                owner[name] = index
            for name, frame in part._frames.items():
                self._frames.setdefault(name, frame)
        self._ready = True
        return self

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Run every part with the same plates; return the merged ``{name: value}``."""
        self._setup_once(args, kwargs)
        self._call_plates = self._plates_for_call(args, kwargs)
        try:
            result = {}
            for part in self:
                result.update(part(*args, **kwargs))
            return result
        finally:
            self._call_plates = None

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The merged medians of the parts."""
        self._setup_once(args, kwargs)
        result = {}
        for part in self:
            result.update(part.median(*args, **kwargs))
        return result

    @torch.no_grad()
    def quantiles(
        self, quantiles: Sequence[float] | torch.Tensor, *args: Any, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """The merged quantiles of the parts (each part must have ``quantiles``)."""
        self._setup_once(args, kwargs)
        result = {}
        for index, part in enumerate(self):
            if not hasattr(part, "quantiles"):
                raise AutoGuideError(
                    f"Part {index} of the AutoGuideList ({type(part).__name__}) has no quantiles "
                    "(a point estimate or a guide function); use median() instead."
                )
            result.update(part.quantiles(quantiles, *args, **kwargs))
        return result
