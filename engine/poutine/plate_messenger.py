"""``plate``: conditional independence, vectorised (``with``) or sequential (``for``), with
mini-batch subsampling.

Entered with ``with``, a plate holds a batch dim (see :mod:`engine.poutine.dim_allocator`), stamps a
frame on every site inside, broadcasts their distributions to its size and scales their log
densities by ``size / subsample_size``. Iterated with ``for``, it yields indices one at a time and
stamps a sequential frame instead. Mini-batch indices are drawn once, when the plate is built,
through a sample site named after the plate, so ``replay`` gives a guide and its model the same
mini-batch. A plate that takes all its elements asks the handlers too (a site that is recorded only
when a handler gave it indices): a model's whole plate replayed on a guide that subsamples takes
the guide's mini-batch, as in Pyro.

>>> import torch, engine, engine.distributions as dist
>>> with engine.plate("data", 1000, subsample_size=10) as idx:
...     x = engine.sample("x", dist.Normal(torch.zeros(1000)[idx], 1.0))
>>> idx.shape, x.shape
(torch.Size([10]), torch.Size([10]))
>>> [i for i in engine.plate("steps", 3)]
[0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from engine.argument_checks import as_count, check_name
from engine.distributions import TorchDistribution, constraints
from engine.errors import PlateError, PPLError, ShapeError, describe_plates, fmt_shape
from engine.poutine.broadcast_messenger import broadcast_to_frames
from engine.poutine.dim_allocator import PLATE_DIMS
from engine.runtime import (
    ARBITRARY_SIZE,
    CondIndepStackFrame,
    Message,
    Messenger,
    apply_stack,
    handlers_active,
    handlers_suspended,
    is_subsample_site,
    new_message,
)


def sample_distinct_indices(
    size: int, count: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """``count`` distinct indices from ``range(size)``, uniformly at random, in random order.

    ``torch.randperm(size)`` costs milliseconds for a million rows; when ``count`` is small this
    draws with replacement, keeps the distinct values and tops up, which is exchangeable and so
    uniform over subsets.

    >>> idx = sample_distinct_indices(1_000_000, 5)
    >>> len(set(idx.tolist()))
    5
    """
    if count * 4 >= size:
        return torch.randperm(size, device=device)[:count]
    distinct = torch.empty(0, dtype=torch.long, device=device)
    while distinct.numel() < count:
        draws = torch.randint(size, (count + count // 8 + 8,), device=device)
        distinct = torch.unique(torch.cat([distinct, draws]))
    return distinct[torch.randperm(distinct.numel(), device=device)[:count]]


class SubsampleIndices(TorchDistribution):
    """The distribution of a plate's subsample site: a draw is a mini-batch of distinct indices.

    It carries no density (its log-prob is 0), so traces and ELBOs skip it.

    >>> SubsampleIndices(100, 5).sample().shape
    torch.Size([5])
    """

    arg_constraints: dict = {}

    def __init__(self, size: int, subsample_size: int, device=None):
        self.size = size
        self.subsample_size = subsample_size
        self.device = device
        super().__init__(torch.Size(), torch.Size([subsample_size]), validate_args=False)

    @property
    def support(self):
        return constraints.integer_interval(0, self.size - 1)

    def sample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        if sample_shape:
            raise ValueError("a plate draws one mini-batch at a time")
        return sample_distinct_indices(self.size, self.subsample_size, self.device)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return torch.zeros(value.shape[:-1], device=value.device)


class WholePlateIndices(SubsampleIndices):
    """The index site of a plate that takes all its elements: a draw is ``range(size)``.

    The plate sends it through the handlers only so that one of them (``replay`` of a guide that
    subsamples the plate) can give it a mini-batch instead; the draw it made itself is kept in
    ``drawn``, so that :func:`is_unfilled_whole_plate` can tell the two apart.

    >>> WholePlateIndices(4).sample()
    tensor([0, 1, 2, 3])
    """

    def __init__(self, size: int, device=None):
        super().__init__(size, size, device)
        self.drawn: torch.Tensor | None = None

    def sample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        if sample_shape:
            raise ValueError("a plate draws one mini-batch at a time")
        self.drawn = torch.arange(self.size, device=self.device)
        return self.drawn


def is_unfilled_whole_plate(msg: Message) -> bool:
    """Whether ``msg`` is the index site of a plate that takes all its elements and no handler
    gave it other indices: it says nothing a trace should keep (and a model may build such a
    plate twice under one name), so ``trace`` does not record it.

    >>> from engine.runtime import new_message
    >>> msg = new_message("sample", "data", WholePlateIndices(3), infer={"is_subsample": True})
    >>> msg["value"] = msg["fn"]()
    >>> is_unfilled_whole_plate(msg)
    True
    >>> msg["value"] = torch.tensor([2, 0])  # indices replayed from a guide's mini-batch
    >>> is_unfilled_whole_plate(msg)
    False
    """
    fn = msg["fn"]
    return isinstance(fn, WholePlateIndices) and msg["value"] is fn.drawn


class PlateMessenger(Messenger):
    """``engine.plate``: a set of conditionally independent draws.

    ``with plate(...) as idx:`` vectorises them along a batch dim (the rightmost free one, or
    ``dim``), ``for i in plate(...):`` draws them one at a time. With ``subsample_size`` only a
    random mini-batch is drawn and log densities are scaled up by ``size / subsample_size``.
    ``param(..., event_dim=k)`` inside a subsampled plate returns the mini-batch's rows.

    Without a size (Pyro's "arbitrary size", recorded as size -1) the plate only claims its dim:
    an observed site takes the size its data has there, a latent site keeps its own batch shape,
    and ``with`` gives ``None`` instead of indices.

    >>> import engine, engine.distributions as dist
    >>> with engine.plate("data", 5, dim=-1) as idx:
    ...     engine.sample("x", dist.Normal(0.0, 1.0)).shape
    torch.Size([5])
    """

    def __init__(
        self,
        name: str,
        size: int | None = None,
        subsample_size: int | None = None,
        subsample: torch.Tensor | None = None,
        dim: int | None = None,
        use_cuda: bool | None = None,
        device: torch.device | str | None = None,
    ):
        check_name(name, "plate")
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim >= 0):
            raise PlateError(
                f"Plate '{name}' got dim={dim!r}; a plate's dim is a negative int, counted from "
                "the right (-1 is the rightmost batch dim), or None to let the plate choose."
            )
        if use_cuda and device is None:
            device = "cuda"
        self.name = name
        self.requested_dim = dim
        self.dim: int | None = dim
        self._held_dim: int | None = None
        self.device = device
        self.full_size, self._indices = self._resolve_sizes(size, subsample_size, subsample)
        self.subsample_size = (
            self.full_size if self._indices is None else int(self._indices.shape[0])
        )
        self._all_indices: torch.Tensor | None = None
        self._counter: int | None = None

    def _resolve_sizes(self, size, subsample_size, subsample) -> tuple[int, torch.Tensor | None]:
        """The full size and the mini-batch indices (None: no subsampling), after checking that
        the sizes are positive whole numbers and the subsample fits the plate."""
        if subsample is not None:
            subsample = self._checked_subsample(subsample)
        if size is None:
            if subsample is None and subsample_size is None:
                return ARBITRARY_SIZE, None
            if subsample is None:
                raise PlateError(
                    f"Plate '{self.name}' has subsample_size={subsample_size} but no size: a "
                    "mini-batch is drawn from the plate's elements, so the plate needs their "
                    "number. Fix: plate(name, len(data), subsample_size=...)."
                )
            size = int(subsample.shape[0])
        size = as_count(
            size,
            f"Plate '{self.name}': size",
            minimum=1,
            error=PlateError,
            fix="A plate's size is the number of its elements (an int >= 1), e.g. len(data).",
        )
        if subsample_size is not None:
            subsample_size = as_count(
                subsample_size,
                f"Plate '{self.name}': subsample_size",
                minimum=1,
                error=PlateError,
                fix="It is the number of elements in each mini-batch (an int >= 1).",
            )
        drawn = subsample_size if subsample is None else int(subsample.shape[0])
        if drawn is not None and drawn > size:
            given = "subsample_size" if subsample is None else "the `subsample` tensor's length"
            raise PlateError(
                f"Plate '{self.name}': {given} is {drawn}, more than the plate's size {size}; a "
                "mini-batch is drawn from the plate's elements without repetition. Fix: make it "
                f"at most {size}, or pass the full size as the plate's size."
            )
        if subsample is not None:
            if subsample_size is not None and subsample_size != drawn:
                raise PlateError(
                    f"Plate '{self.name}' got subsample_size={subsample_size} and a `subsample` "
                    f"of {drawn} indices; they must agree (often the model and the guide ask "
                    "for different mini-batch sizes). Fix: pass one of them, or make them equal."
                )
            return size, subsample
        return size, self._draw_indices(size, subsample_size)

    def _checked_subsample(self, subsample) -> torch.Tensor:
        subsample = torch.as_tensor(subsample)
        if subsample.dim() != 1:
            raise ShapeError(
                f"Plate '{self.name}': `subsample` must be a 1-d tensor of indices, got shape "
                f"{fmt_shape(subsample.shape)}."
            )
        if subsample.is_floating_point() or subsample.is_complex() or subsample.dtype == torch.bool:
            raise PlateError(
                f"Plate '{self.name}': `subsample` holds the indices of the mini-batch and must "
                f"be an integer tensor, got dtype {subsample.dtype}. Fix: subsample.long()."
            )
        return subsample

    def _draw_indices(self, size: int, subsample_size: int | None) -> torch.Tensor | None:
        """The mini-batch for this run (None: all the elements). A handler may give it: replay
        gives a model's plate the guide's mini-batch, even where the model's own plate takes
        all its elements (as in Pyro: such a plate follows the guide's mini-batch)."""
        whole = subsample_size is None or subsample_size == size
        if not handlers_active():
            return None if whole else sample_distinct_indices(size, subsample_size, self.device)
        sampler = (
            WholePlateIndices(size, self.device)
            if whole
            else SubsampleIndices(size, subsample_size, self.device)
        )
        # The full size goes with the indices, so that the plate they are replayed into can
        # check that it counts the same elements.
        infer = {"is_subsample": True, "_plate_size": size}
        msg = apply_stack(new_message("sample", self.name, sampler, infer=infer))
        if is_unfilled_whole_plate(msg):
            return None
        return self._checked_given_indices(msg, size, subsample_size)

    def _checked_given_indices(
        self, msg: Message, size: int, subsample_size: int | None
    ) -> torch.Tensor:
        """Indices a handler gave the plate (as a rule replayed from the guide's plate of the
        same name), checked against this plate's size and ``subsample_size``."""
        indices = self._checked_subsample(msg["value"])
        given_size = msg["infer"].get("_plate_size", size)
        if given_size != size:
            raise PlateError(
                f"Plate '{self.name}' has size {size}, but the mini-batch it was given (replayed "
                f"from the guide's plate '{self.name}', as a rule) was drawn from a plate of size "
                f"{given_size}. A plate name means one set of elements: give the model's and the "
                "guide's plates the same size (e.g. len(data) in both)."
            )
        count = int(indices.shape[0])
        if subsample_size is not None and count != subsample_size:
            raise PlateError(
                f"Plate '{self.name}' asks for subsample_size={subsample_size}, but the mini-batch "
                f"it was given (replayed from the guide's plate '{self.name}', as a rule) holds "
                f"{count} indices: the model's and the guide's plates ask for different "
                "mini-batch sizes. Fix: give both plates the same subsample_size, or leave "
                "subsample_size out of the model's plate, which then takes the guide's "
                "mini-batch."
            )
        if count > size:
            raise PlateError(
                f"Plate '{self.name}' has size {size}, but it was given a mini-batch of {count} "
                "indices; a mini-batch holds distinct elements of the plate. Give the plate its "
                "full size."
            )
        return indices

    @property
    def indices(self) -> torch.Tensor:
        """The indices of the current mini-batch (all of ``range(size)`` without subsampling)."""
        self._require_size()
        if self._indices is not None:
            return self._indices
        if self._all_indices is None:
            self._all_indices = torch.arange(self.full_size, device=self.device)
        return self._all_indices

    @property
    def size(self) -> int:
        """The full size, before subsampling (Pyro's meaning)."""
        return self.full_size

    @property
    def subsampled(self) -> bool:
        return self.subsample_size != self.full_size

    @property
    def _scale(self) -> float:
        return self.full_size / self.subsample_size if self.subsample_size else 1.0

    def __enter__(self) -> torch.Tensor:
        if self._counter is None:
            self.dim = self._held_dim = PLATE_DIMS.allocate(
                self.name,
                self.requested_dim,
                None if self.full_size == ARBITRARY_SIZE else self.subsample_size,
            )
        try:
            super().__enter__()
        except BaseException:
            self._free_dim()
            raise
        return None if self.full_size == ARBITRARY_SIZE else self.indices

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if isinstance(exc_value, PPLError) and self._frame() not in exc_value.plates:
            exc_value.plates.append(self._frame())  # the plates around the raising call
        try:
            super().__exit__(exc_type, exc_value, traceback)
        finally:
            self._free_dim()

    def _free_dim(self) -> None:
        if self._held_dim is not None:
            PLATE_DIMS.free(self._held_dim)
            self._held_dim = None

    def __iter__(self) -> Iterator[int]:
        if self._held_dim is not None:
            raise PlateError(
                f"Plate '{self.name}' is iterated with `for` while it is active as `with`; "
                "use one or the other."
            )
        for counter, index in enumerate(self.indices.tolist()):
            self._counter = counter
            try:
                with self:
                    yield index
            finally:
                self._counter = None

    def __len__(self) -> int:
        self._require_size()
        return self.subsample_size

    def _require_size(self) -> None:
        if self.full_size == ARBITRARY_SIZE:
            raise PlateError(
                f"Plate '{self.name}' has no size, so it has no indices or length, and cannot "
                "be iterated. Fix: give it a size, plate(name, len(data))."
            )

    def _frame(self) -> CondIndepStackFrame:
        dim = self._held_dim if self._counter is None else None
        return CondIndepStackFrame(
            self.name, dim, self.subsample_size, self._counter or 0, self.full_size
        )

    def _process_sample(self, msg: Message) -> None:
        if is_subsample_site(msg):
            return
        frame = self._frame()
        msg["cond_indep_stack"] = (frame, *msg["cond_indep_stack"])
        if self.subsampled:
            msg["scale"] = self._scale * msg["scale"]
        if frame.dim is not None:
            broadcast_to_frames(msg, (frame,))

    def _process_param(self, msg: Message) -> None:
        msg["cond_indep_stack"] = (self._frame(), *msg["cond_indep_stack"])

    # poutine.runtime.get_plates() asks which plates a site here would sit in.
    _process_get_plates = _process_param

    def _postprocess_param(self, msg: Message) -> None:
        event_dim = msg["kwargs"].get("event_dim")
        if event_dim is not None:
            msg["value"] = self._select_rows(msg["value"], event_dim, msg)

    def _process_subsample(self, msg: Message) -> None:
        msg["value"] = self._select_rows(msg["value"], msg["kwargs"]["event_dim"])

    def _select_rows(self, data, event_dim: int, param_msg: Message | None = None):
        """The rows of ``data`` in this plate's mini-batch, along this plate's dim."""
        if self._held_dim is None or not isinstance(data, torch.Tensor):
            return data
        data_dim = self._held_dim - event_dim
        if data.dim() < -data_dim:
            return data
        size = data.shape[data_dim]
        # A local param holds a row per element of the whole plate (the mini-batch's rows are
        # selected below): one of mini-batch size would give every mini-batch the same rows.
        if param_msg is not None and size not in (1, self.full_size):
            raise ShapeError(
                f"Param '{param_msg['name']}' (event_dim={event_dim}): invalid shape of "
                f"pyro.param, {fmt_shape(data.shape)}: its dim {data_dim} has size {size}, but "
                "it sits in "
                f"{describe_plates((self._frame(),))}. A local param needs size "
                f"{self.full_size} there (one row per plate element); check its shape or its "
                "event_dim."
            )
        if not self.subsampled or size != self.full_size:
            return data
        return data.index_select(data_dim, self._indices.to(data.device))


@contextmanager
def block_plate(
    name: str | None = None, dim: int | None = None, *, strict: bool = True
) -> Iterator[None]:
    """Step out of one enclosing plate, picked by ``name`` or by ``dim``, for a block: sites
    sampled there are not in it (a global drawn lazily where the plate is open, an auxiliary
    variable). ``strict=False`` lets the block run when no such plate is open.

    >>> import engine, engine.distributions as dist
    >>> with engine.plate("data", 5):
    ...     with block_plate("data"):
    ...         scale = engine.sample("scale", dist.LogNormal(0.0, 1.0))
    ...     x = engine.sample("x", dist.Normal(0.0, scale))
    >>> scale.shape, x.shape
    (torch.Size([]), torch.Size([5]))
    """
    if (name is None) == (dim is None):
        raise PlateError(
            f"block_plate(name={name!r}, dim={dim!r}): give exactly one of name and dim."
        )
    if dim is not None and dim >= 0:
        raise PlateError(f"block_plate(dim={dim}): a plate's dim is negative, e.g. dim=-1.")

    def is_the_plate(handler: Messenger) -> bool:
        if not isinstance(handler, PlateMessenger):
            return False
        return handler.name == name if name is not None else handler.dim == dim

    with handlers_suspended(is_the_plate) as blocked:
        if strict and not blocked:
            wanted = f"named '{name}'" if name is not None else f"at dim {dim}"
            raise PlateError(
                f"block_plate matched 0 messengers: no enclosing plate {wanted} is open "
                "here. Open the plate "
                "around the block, or pass strict=False to allow none."
            )
        yield
