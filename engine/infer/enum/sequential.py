"""Sequential enumeration: run a guide once per value of its sites marked
``infer={"enumerate": "sequential"}``, until every combination of values has run.

Each run fixes the values of the sequential sites met so far from a list of choices (the first
value for a site met for the first time) and records how many values each site has; the next
list is the previous one counted up like an odometer from its last position. The branches may
differ in structure (a site met only after some value): they are explored all the same.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def guide():
...     sequential = {"enumerate": "sequential"}
...     if engine.sample("a", dist.Bernoulli(0.5), infer=sequential):
...         engine.sample("b", dist.Categorical(torch.ones(3) / 3), infer=sequential)
>>> values = []
>>> for branch in sequential_branches():
...     tr = poutine.trace(branch(guide)).get_trace()
...     values.append(tuple(int(tr.nodes[n]["value"]) for n in ("a", "b") if n in tr))
>>> values
[(0,), (1, 0), (1, 1), (1, 2)]
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import EnumerationError, describe_site, fmt_shape
from engine.runtime import Message, Messenger


class SequentialEnumMessenger(Messenger):
    """Fix the values of sequential sites from ``choices`` (indices into their supports)."""

    def __init__(self, choices: list[int]):
        self.choices = choices
        self.sizes: list[int] = []

    def __enter__(self) -> SequentialEnumMessenger:
        self.sizes = []
        return super().__enter__()

    def _process_sample(self, msg: Message) -> None:
        if msg["infer"].get("enumerate") != "sequential":
            return
        if msg["is_observed"] or msg["value"] is not None:
            return
        fn = msg["fn"]
        plate_dims = {f.dim for f in msg["cond_indep_stack"] if f.vectorized}
        batch_shape = fn.batch_shape
        for dim in range(-len(batch_shape), 0):
            if batch_shape[dim] != 1 and dim not in plate_dims:
                raise EnumerationError(
                    f"Site {describe_site(msg)} is marked for sequential enumeration but its "
                    f"{type(fn).__name__} has batch shape {fmt_shape(batch_shape)}, with size "
                    f"{batch_shape[dim]} at dim {dim}, which no plate declares (a dim no plate "
                    "holds, or the dim of a site enumerated in parallel): a run gives all "
                    "elements of a batch one value, which is right only for the independent "
                    "elements of a plate. Declare that dim with a plate, or enumerate the site "
                    "in parallel (infer={'enumerate': 'parallel'})."
                )
        # In a plate, each run gives every element the same value: as in Pyro, expanded to the
        # batch shape only when the site asks (infer["expand"], set by config_enumerate), else
        # one value that broadcasts. The ELBO weighs each element's costs by its own
        # probability of that value.
        support = fn.enumerate_support(expand=bool(msg["infer"].get("expand", False)))
        position = len(self.sizes)
        self.sizes.append(support.shape[0])
        index = self.choices[position] if position < len(self.choices) else 0
        msg["value"] = support[index]
        msg["done"] = True
        msg["infer"] = {**msg["infer"], "_sequential": True}

    def next_choices(self) -> list[int] | None:
        """The choices of the next branch, or None when this was the last one."""
        choices = self.choices + [0] * (len(self.sizes) - len(self.choices))
        for position in range(len(self.sizes) - 1, -1, -1):
            if choices[position] + 1 < self.sizes[position]:
                return [*choices[:position], choices[position] + 1]
        return None


def sequential_branches() -> Iterator[SequentialEnumMessenger]:
    """One messenger per branch; run the program under each before asking for the next."""
    choices: list[int] | None = []
    while choices is not None:
        branch = SequentialEnumMessenger(choices)
        yield branch
        choices = branch.next_choices()
