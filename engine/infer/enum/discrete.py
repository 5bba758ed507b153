"""``infer_discrete``: draw a model's enumerated sites from their posterior, or find their MAP.

The model runs once under enumeration; the sum-product eliminates its enumerated sites and keeps
every table it eliminated a site from (forward filtering, with max instead of sum at temperature
0). Walking those tables backwards, each site is drawn (or maximised) given the sites eliminated
after it, which are already known: forward-filter backward-sample, and Viterbi at temperature 0.
The model then runs again with those values (and the values its other latent sites had in the
enumerated run), so what it returns and what a trace records are a posterior draw.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer import config_enumerate
>>> @config_enumerate
... def model(x):
...     z = engine.sample("z", dist.Bernoulli(0.5))
...     engine.sample("x", dist.Normal(4.0 * z, 1.0), obs=x)
...     return z
>>> infer_discrete(model, first_available_dim=-1, temperature=0)(torch.tensor(3.9))
tensor(1.)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch

from engine.errors import describe_site
from engine.infer.enum.factors import (
    enumerated_sites,
    refuse_sampled_sites,
    site_factors,
    trace_plates,
)
from engine.infer.enum.sum_product import Elimination, Plate, contract
from engine.infer.util import max_plate_nesting_of
from engine.poutine.enum_messenger import EnumMessenger
from engine.poutine.handlers import block, replay, substitute, trace
from engine.poutine.trace_struct import Trace


def infer_discrete(
    fn: Callable | None = None,
    first_available_dim: int | None = None,
    temperature: int = 1,
    *,
    strict_enumeration_warning: bool = True,
) -> Callable:
    """Wrap ``fn`` so that each call draws its enumerated sites from their joint posterior
    (``temperature=1``) or sets them to their joint MAP values (``temperature=0``).

    ``first_available_dim`` is ``-max_plate_nesting - 1``; when left out it is read off one run
    of the model. A model with no site marked for enumeration has nothing to infer: each call
    then warns, unless ``strict_enumeration_warning=False``.

    >>> infer_discrete(temperature=0)  # doctest: +ELLIPSIS
    functools.partial(<function infer_discrete at ...>, first_available_dim=None, temperature=0, strict_enumeration_warning=True)
    """  # noqa: E501 (the doctest's expected repr is one line)
    if temperature not in (0, 1):
        raise ValueError(
            f"infer_discrete: temperature must be 0 (MAP) or 1 (sample), got {temperature}"
        )
    if fn is None:
        return functools.partial(
            infer_discrete,
            first_available_dim=first_available_dim,
            temperature=temperature,
            strict_enumeration_warning=strict_enumeration_warning,
        )

    @functools.wraps(fn)
    def posterior_run(*args: Any, **kwargs: Any) -> Any:
        first = first_available_dim
        with block():  # the helper runs stay invisible to the caller's handlers
            if first is None:
                first = -max_plate_nesting_of(trace(fn).get_trace(*args, **kwargs)) - 1
            enum = EnumMessenger(first)
            enumerated = trace(enum(fn)).get_trace(*args, **kwargs)
            refuse_sampled_sites(enum.enumerated, "model", "infer_discrete")
            if strict_enumeration_warning and not enumerated_sites(enumerated):
                warnings.warn(
                    f"infer_discrete: {getattr(fn, '__name__', 'the model')} has no sample site "
                    "marked for enumeration, so its sites keep their prior draws. Mark the "
                    "discrete sites with @config_enumerate or infer={'enumerate': 'parallel'}, "
                    "or pass strict_enumeration_warning=False.",
                    UserWarning,
                    stacklevel=2,
                )
            values = _posterior_values(enumerated, temperature)
        for name, site in enumerated.iter_stochastic_nodes():
            if name not in values:
                values[name] = _fixed_value(site)
        return substitute(fn, data=values)(*args, **kwargs)

    return posterior_run


def posterior_draw(
    model: Callable, guide_trace: Trace, first_available_dim: int, args: tuple, kwargs: dict
) -> Any:
    """Run ``model`` with the guide's values of ``guide_trace`` and a joint posterior draw of
    its enumerated sites (enumeration dims from ``first_available_dim``); what it returns.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     z = engine.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
    ...     engine.sample("x", dist.Normal(50.0 * z, 1.0), obs=torch.tensor(50.0))
    ...     return z
    >>> posterior_draw(model, Trace(), -1, (), {})  # z = 0 is e^-1250 as likely
    tensor(1.)
    """
    replayed = replay(model, trace=guide_trace)
    return infer_discrete(replayed, first_available_dim=first_available_dim)(*args, **kwargs)


def _fixed_value(site: dict) -> torch.Tensor:
    """A latent site that is not enumerated keeps its value, unless that value was drawn once
    per value of an enumerated site (then no single value of it is a posterior draw)."""
    value = site["value"]
    enum_dims = site["infer"].get("_enum_dims", {})
    event_dims = len(site["fn"].event_shape)
    for dim in enum_dims:
        position = dim - event_dims
        if -position <= value.dim() and value.shape[position] != 1:
            raise ValueError(
                f"infer_discrete: latent site {describe_site(site)} is drawn from a distribution "
                f"that depends on enumerated site '{enum_dims[dim]}', so it has no single "
                "value to keep. Condition it first (poutine.condition, or poutine.replay with a "
                "guide trace), then call infer_discrete."
            )
    return value


def _posterior_values(enumerated: Trace, temperature: int) -> dict[str, torch.Tensor]:
    """Each enumerated site's drawn (or MAP) value, shaped like the site's batch shape."""
    plates = trace_plates(enumerated)
    variables = enumerated_sites(enumerated)
    tables: list[Elimination] = []
    contract(
        site_factors(enumerated, variables, plates),
        variables,
        plates,
        set(variables),
        semiring="max" if temperature == 0 else "log",
        record=tables.append,
    )
    chosen: dict[str, torch.Tensor] = {}  # index tensors, one dim per plate in ``labels``
    chosen_labels: dict[str, tuple[str, ...]] = {}
    for elimination in reversed(tables):
        index, labels = _choose(elimination, chosen, chosen_labels, plates, temperature)
        chosen[elimination.name] = index
        chosen_labels[elimination.name] = labels
    return {
        name: _site_value(enumerated.nodes[name], chosen[name], chosen_labels[name])
        for name in chosen
    }


def _choose(
    elimination: Elimination,
    chosen: dict[str, torch.Tensor],
    chosen_labels: dict[str, tuple[str, ...]],
    plates: dict[str, Plate],
    temperature: int,
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Pick a site's value from its table, given the values of the other sites in the table."""
    table = elimination.table  # the site's own label is last
    plate_labels = tuple(label for label in table.labels[:-1] if label in plates)
    position = {label: i for i, label in enumerate(plate_labels)}
    shape = [table.tensor.shape[table.labels.index(label)] for label in plate_labels]
    index: list[torch.Tensor] = []
    for axis, label in enumerate(table.labels[:-1]):
        if label in plates:
            view = [1] * len(plate_labels)
            view[position[label]] = table.tensor.shape[axis]
            index.append(torch.arange(table.tensor.shape[axis]).reshape(view))
        else:
            index.append(_aligned(chosen[label], chosen_labels[label], position, len(position)))
    logits = table.tensor[tuple(index)] if index else table.tensor
    logits = logits.expand(*shape, table.tensor.shape[-1]) if shape else logits
    if temperature == 0:
        return logits.argmax(-1), plate_labels
    return torch.distributions.Categorical(logits=logits).sample(), plate_labels


def _aligned(
    values: torch.Tensor, labels: tuple[str, ...], position: dict[str, int], width: int
) -> torch.Tensor:
    """``values`` (one dim per plate in ``labels``) viewed on ``width`` dims, the dim of each
    label at ``position[label]`` and size 1 elsewhere."""
    order = sorted(range(len(labels)), key=lambda i: position[labels[i]])
    view = [1] * width
    for axis in order:
        view[position[labels[axis]]] = values.shape[axis]
    return values.permute(order).reshape(view) if labels else values.reshape(view)


def _site_value(site: dict, index: torch.Tensor, labels: tuple[str, ...]) -> torch.Tensor:
    """The support values at ``index``, laid out on the site's plate dims."""
    fn = site["fn"]
    support = fn.enumerate_support(expand=False)
    flat_support = support.reshape((support.shape[0], *fn.event_shape))
    dims = {f.name: f.dim for f in site["cond_indep_stack"] if f.vectorized}
    width = max((-dims[label] for label in labels), default=0)
    position = {label: width + dims[label] for label in labels}
    return flat_support[_aligned(index, labels, position, width)]
