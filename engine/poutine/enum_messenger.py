"""``enum``: parallel enumeration. Each discrete site marked ``infer={"enumerate": "parallel"}``
takes *all* its values at once, along a tensor dim of its own left of the plates.

The first enumerated site gets ``first_available_dim`` (``-max_plate_nesting - 1``), the next one
the dim left of it, and so on, so that everything computed from several enumerated values
broadcasts to a tensor with one dim per value it depends on. Inside ``markov`` a site may only
depend on the sites of its Markov window (``infer["_markov_scope"]``), so the dim of a site that
no later site can see (``infer["_markov_reachable"]``) is handed to the next enumerated site: a
chain of T states needs ``history + 1`` dims, not T.

Every sample site is stamped with ``infer["_enum_dims"]``: which enumerated site each enum dim
holds at the moment the site runs. A log-density that varies along an enum dim depends on the site
named there; that is how :mod:`engine.infer.enum.sum_product` tells dims apart once they are
recycled.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> @poutine.enum(first_available_dim=-2)
... @engine.infer.config_enumerate
... def model():
...     with engine.plate("data", 4):
...         z = engine.sample("z", dist.Bernoulli(0.3))
...         engine.sample("x", dist.Normal(z, 1.0), obs=torch.zeros(4))
>>> tr = poutine.trace(model).get_trace()
>>> tr.nodes["z"]["value"].shape, tr.nodes["x"]["infer"]["_enum_dims"]
(torch.Size([2, 1]), {-2: 'z'})
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import (
    EnumerationError,
    PlateError,
    describe_site,
    fmt_shape,
    markov_window_error,
)
from engine.runtime import Message, Messenger, is_subsample_site


@dataclass(frozen=True)
class EnumeratedSite:
    """What the sum-product needs to know of one enumerated site."""

    name: str
    dim: int
    size: int
    windowed: bool  # drawn inside ``markov``: its dim is recycled once no later site can see it


class EnumMessenger(Messenger):
    """Enumerate the sites marked ``"parallel"`` in dims ``first_available_dim`` and further left.

    ``enumerated_elsewhere`` lists sites enumerated by an earlier run (the guide's, when the model
    replays it): their values arrive already enumerated, and their dims are kept for them.

    >>> EnumMessenger(first_available_dim=-1).first_available_dim
    -1
    """

    def __init__(
        self,
        first_available_dim: int | None = None,
        enumerated_elsewhere: dict[str, EnumeratedSite] | None = None,
    ):
        if first_available_dim is None or first_available_dim >= 0:
            raise ValueError(
                "enum needs first_available_dim, a negative dim left of every plate: "
                "-max_plate_nesting - 1 (for example -2 for a model with one plate)."
            )
        self.first_available_dim = first_available_dim
        self.enumerated_elsewhere = dict(enumerated_elsewhere or {})
        self.live: dict[int, EnumeratedSite] = {}
        self.enumerated: dict[str, EnumeratedSite] = {}

    def __enter__(self) -> EnumMessenger:
        # Sites enumerated elsewhere hold their dims from the start: a site here may meet their
        # values (through replayed guide sites) before meeting the sites themselves. A dim the
        # other run recycled is claimed when its holder is met, in order.
        by_dim: dict[int, list[EnumeratedSite]] = {}
        for site in self.enumerated_elsewhere.values():
            by_dim.setdefault(site.dim, []).append(site)
        self.live = {dim: sites[0] for dim, sites in by_dim.items() if len(sites) == 1}
        self.enumerated = {}
        return super().__enter__()

    def _process_sample(self, msg: Message) -> None:
        if is_subsample_site(msg):
            return
        self._check_plates(msg)
        elsewhere = self.enumerated_elsewhere.get(msg["name"])
        if elsewhere is not None and msg["value"] is not None:
            self.live[elsewhere.dim] = elsewhere
        elif self._wants_parallel(msg):
            self._enumerate(msg)
        msg["infer"] = {**msg["infer"], "_enum_dims": {d: s.name for d, s in self.live.items()}}

    def _wants_parallel(self, msg: Message) -> bool:
        strategy = msg["infer"].get("enumerate")
        if strategy is None or msg["is_observed"] or msg["value"] is not None:
            return False
        if strategy == "sequential":
            return False  # the guide's sequential sites are enumerated one value per run
        if strategy != "parallel":
            raise ValueError(
                f"Site {describe_site(msg)}: infer['enumerate'] is {strategy!r}; use 'parallel' "
                "(all values at once, in a tensor dim) or 'sequential' (one value per run)."
            )
        return True

    def _check_plates(self, msg: Message) -> None:
        for frame in msg["cond_indep_stack"]:
            if frame.vectorized and frame.dim <= self.first_available_dim:
                raise PlateError(
                    f"Site {describe_site(msg)}: plate '{frame.name}' sits at dim {frame.dim}, "
                    f"but enumeration starts at dim {self.first_available_dim} (max_plate_nesting="
                    f"{-self.first_available_dim - 1}), so the plate and the enumerated values "
                    f"would share dims. Raise max_plate_nesting to at least {-frame.dim} "
                    f"(TraceEnum_ELBO(max_plate_nesting={-frame.dim})), or give the plate a dim "
                    f"right of {self.first_available_dim}."
                )

    def _enumerate(self, msg: Message) -> None:
        fn = msg["fn"]
        if msg["infer"].get("num_samples") is not None:
            raise EnumerationError(
                f"Site {describe_site(msg)} asks for sampled enumeration (infer['num_samples']="
                f"{msg['infer']['num_samples']!r}, Tensor Monte Carlo), which the engine does not "
                "do. Leave num_samples out to enumerate a discrete site exhaustively, or draw the "
                "site in the guide and average several particles (num_particles)."
            )
        if not getattr(fn, "has_enumerate_support", False):
            raise ValueError(
                f"Site {describe_site(msg)} is marked for enumeration, but its "
                f"{type(fn).__name__} has no finite support to enumerate. Enumerate only discrete "
                "sites (Bernoulli, Categorical, ...): config_enumerate skips the others."
            )
        self._check_batch_shape(msg)
        support = fn.enumerate_support(expand=False)
        size = support.shape[0]
        site = EnumeratedSite(
            msg["name"], self._free_dim(msg), size, "_markov_scope" in msg["infer"]
        )
        # enumerate_support puts the values left of the batch dims (all of size 1 here): move
        # them out to the site's own dim.
        event_shape = tuple(fn.event_shape)
        value = support.reshape((size,) + (1,) * (-site.dim - 1) + event_shape)
        if msg["infer"].get("expand", False):
            plate_batch = fn.batch_shape[len(fn.batch_shape) + self.first_available_dim + 1 :]
            value = value.expand(
                value.shape[: value.dim() - len(plate_batch) - len(event_shape)]
                + plate_batch
                + event_shape
            )
        self._check_recycled_dim(msg, site)
        msg["value"] = value
        msg["done"] = True
        msg["infer"] = {**msg["infer"], "_enumerate_dim": site.dim}
        self.live[site.dim] = site
        self.enumerated[site.name] = site

    def _check_batch_shape(self, msg: Message) -> None:
        """Batch dims left of the plates must be enumeration dims of sites enumerated so far."""
        batch_shape = msg["fn"].batch_shape
        held = set(self.live)
        for dim in range(self.first_available_dim, -len(batch_shape) - 1, -1):
            if batch_shape[dim] != 1 and dim not in held:
                raise PlateError(
                    f"Site {describe_site(msg)}: its {type(msg['fn']).__name__} has batch shape "
                    f"{fmt_shape(batch_shape)}, with size {batch_shape[dim]} at dim {dim}, left of "
                    f"the plates (max_plate_nesting={-self.first_available_dim - 1}) where only "
                    "enumerated values may be. Declare every batch dim with a plate and give "
                    f"TraceEnum_ELBO a max_plate_nesting of at least {len(batch_shape)}, or use "
                    "Vindex (engine.ops.indexing) where an enumerated value indexes a tensor."
                )

    def _check_recycled_dim(self, msg: Message, site: EnumeratedSite) -> None:
        """A site taking over the dim of a site outside its window must not depend on it."""
        previous = self.live.get(site.dim)
        batch_shape = msg["fn"].batch_shape
        if previous is None or -site.dim > len(batch_shape) or batch_shape[site.dim] == 1:
            return
        raise markov_window_error(msg, previous.name, site.dim)

    def _free_dim(self, msg: Message) -> int:
        """The rightmost enum dim that no site still reachable from ``msg`` holds."""
        reachable = msg["infer"].get("_markov_reachable")
        dim = self.first_available_dim
        while True:
            holder = self.live.get(dim)
            if holder is None or _unreachable(holder, reachable):
                return dim
            dim -= 1


def _unreachable(holder: EnumeratedSite, reachable: frozenset[str] | None) -> bool:
    """Whether no site from here on can depend on ``holder``: both live in ``markov`` steps and
    ``holder`` is out of every window still to come."""
    return reachable is not None and holder.windowed and holder.name not in reachable
