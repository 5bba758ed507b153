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
from typing import Any

import torch

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
    sampled: bool = False  # ``num_samples`` draws (Tensor Monte Carlo), not the whole support


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
        num_samples = msg["infer"].get("num_samples")
        if num_samples is not None:
            self._sample(msg, num_samples)
            return
        if not getattr(fn, "has_enumerate_support", False):
            raise ValueError(
                f"Site {describe_site(msg)} is marked for enumeration, but its "
                f"{type(fn).__name__} has no finite support to enumerate. Enumerate only discrete "
                "sites (Bernoulli, Categorical, ...): config_enumerate skips the others, or give "
                "the site infer['num_samples'] to draw that many values instead (TraceTMC_ELBO)."
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
        self._hold(msg, site, value)

    def _hold(self, msg: Message, site: EnumeratedSite, value: torch.Tensor) -> None:
        """Give ``msg`` its enumerated (or sampled) ``value``, held in ``site.dim``."""
        self._check_recycled_dim(msg, site)
        msg["value"] = value
        msg["done"] = True
        msg["infer"] = {**msg["infer"], "_enumerate_dim": site.dim}
        self.live[site.dim] = site
        self.enumerated[site.name] = site

    def _sample(self, msg: Message, num_samples: Any) -> None:
        """Tensor Monte Carlo: ``num_samples`` draws of the site in its own enum dim, in place of
        its support (any distribution, discrete or not).

        The draws are independent along the site's own dim; where the site's distribution
        depends on an earlier sampled site (its batch has that site's dim), draw ``i`` is taken
        given that site's draw ``i`` (``infer["tmc"] == "diagonal"``, the default) or a draw
        chosen uniformly at random (``"mixture"``), so the value does not carry that dim on. A
        dim of an exhaustively enumerated site is kept: one set of draws per value.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise EnumerationError(
                f"Site {describe_site(msg)}: infer['num_samples'] is {num_samples!r}; it must be a "
                "positive int, the number of draws to take in the site's enumeration dim."
            )
        strategy = msg["infer"].get("tmc") or "diagonal"
        if strategy not in ("diagonal", "mixture"):
            raise EnumerationError(
                f"Site {describe_site(msg)}: infer['tmc'] is {strategy!r}; Tensor Monte Carlo "
                "strategies are 'diagonal' and 'mixture'."
            )
        fn = msg["fn"]
        self._check_batch_shape(msg)
        site = EnumeratedSite(
            msg["name"], self._free_dim(msg), num_samples, "_markov_scope" in msg["infer"], True
        )
        shape = torch.Size((num_samples,))
        draws = fn.rsample(shape) if getattr(fn, "has_rsample", False) else fn.sample(shape)
        batch = tuple(fn.batch_shape)
        draws, parents = self._squash_sampled_parents(msg, draws, batch, strategy)
        # Pad the batch on the left to reach the site's dim, then put the draws there (that
        # batch entry is 1: _check_recycled_dim refuses a site depending on the dim's holder).
        width = max(len(batch), -site.dim)
        draws = draws.reshape((num_samples,) + (1,) * (width - len(batch)) + draws.shape[1:])
        at = width + site.dim
        value = draws.squeeze(1 + at).movedim(0, at) if draws.shape[1 + at] == 1 else None
        if value is None:
            raise markov_window_error(msg, self.live[site.dim].name, site.dim)
        self._hold(msg, site, value)
        # Which sampled sites' draws this site's draws were paired with, for the estimator.
        msg["infer"]["_tmc_parents"] = parents

    def _squash_sampled_parents(
        self, msg: Message, draws: torch.Tensor, batch: tuple[int, ...], strategy: str
    ) -> tuple[torch.Tensor, tuple[str, ...]]:
        """Draw ``i`` along dim 0 given one draw of each sampled site whose dim the batch has
        (their dims become 1), and those sites' names; see :meth:`_sample`."""
        num_samples = draws.shape[0]
        index: list[Any] = [slice(None)] * draws.dim()
        squashed, parents = [], []
        for dim in range(self.first_available_dim, -len(batch) - 1, -1):
            holder = self.live.get(dim)
            if batch[dim] == 1 or holder is None or not holder.sampled:
                continue
            position = 1 + len(batch) + dim
            if strategy == "mixture":
                index[position] = torch.randint(batch[dim], (num_samples,), device=draws.device)
            elif batch[dim] == num_samples:
                index[position] = torch.arange(num_samples, device=draws.device)
            else:
                raise EnumerationError(
                    f"Site {describe_site(msg)} takes {num_samples} draws given the "
                    f"{batch[dim]} draws of site '{holder.name}'; the 'diagonal' strategy pairs "
                    "draw i with draw i, so both need the same num_samples. Give them the same "
                    "num_samples, or use tmc='mixture' (an ancestor drawn at random)."
                )
            squashed.append(position)
            parents.append(holder.name)
        if not squashed:
            return draws, ()
        index[0] = torch.arange(num_samples, device=draws.device)
        # Advanced indices put their common (num_samples,) dim first, the other dims in order.
        thin = draws[tuple(index)]
        for position in sorted(squashed):  # ascending: each lands at its old position
            thin = thin.unsqueeze(position)
        return thin, tuple(parents)

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
                    "enumerated values may be: an invalid log_prob shape. Declare every batch "
                    "dim with a plate and give "
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
