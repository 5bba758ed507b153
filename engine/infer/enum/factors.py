"""From an enumerated trace to the labelled factors of :mod:`engine.infer.enum.sum_product`.

Each dim of a site's log-density is named: a plate by the site's plate frames, an enum dim by
``infer["_enum_dims"]`` (the site enumerated there when this site ran). A dim that is neither, or
an enum dim of the wrong size, means an enumerated value lost or moved its dim on the way (the
usual culprit is indexing: ``probs[z]`` with ``probs`` batched); that is an error here, naming the
site, the dim and the fix, instead of a silently wrong marginal.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> from engine.infer import config_enumerate
>>> def model():
...     z = engine.sample("z", dist.Categorical(torch.ones(3) / 3))
...     engine.sample("x", dist.Normal(z.float(), 1.0), obs=torch.tensor(0.5))
>>> enumerated = poutine.enum(config_enumerate(model), first_available_dim=-1)
>>> tr = poutine.trace(enumerated).get_trace()
>>> variables, plates = enumerated_sites(tr), trace_plates(tr)
>>> [f.labels for f in site_factors(tr, variables, plates)]
[('z',), ('z',)]
"""

from __future__ import annotations

import math

import torch

from engine.errors import (
    EnumerationError,
    EnumerationNotSupportedError,
    describe_site,
    fmt_shape,
    markov_window_error,
)
from engine.infer.enum.sum_product import Factor, Plate, Variable
from engine.infer.model_guide_checks import VINDEX_HINT
from engine.infer.trace_elbo import score_log_prob
from engine.poutine.enum_messenger import EnumeratedSite
from engine.poutine.trace_struct import Trace, compute_site_log_prob
from engine.runtime import Message


def trace_plates(*traces: Trace) -> dict[str, Plate]:
    """The vectorised plates of the traces' sample sites, with their subsampling scales."""
    plates: dict[str, Plate] = {}
    for trace in traces:
        for _, site in trace.sample_sites():
            for frame in site["cond_indep_stack"]:
                if frame.vectorized and frame.name not in plates:
                    full = frame.full_size if frame.full_size is not None else frame.size
                    plates[frame.name] = Plate(frame.size, full / frame.size)
    return plates


def enumerated_sites(trace: Trace) -> dict[str, Variable]:
    """The sites of ``trace`` enumerated in parallel: their number of values and their plates."""
    return {
        name: Variable(
            # the size at the site's own dim (a sampled site may keep an enumerated parent's
            # dim left of it)
            site["value"].shape[site["infer"]["_enumerate_dim"] - len(site["fn"].event_shape)],
            frozenset(f.name for f in site["cond_indep_stack"] if f.vectorized),
            windowed="_markov_scope" in site["infer"],
            sampled=site["infer"].get("num_samples") is not None,
        )
        for name, site in trace.sample_sites()
        if site["infer"].get("_enumerate_dim") is not None
    }


def _residual_scale(site: Message) -> float | torch.Tensor:
    """The site's scale without its vectorised plates' subsampling factors (those are applied
    when the sum-product multiplies a factor out over the plate)."""
    plate_scale = math.prod(
        [  # a list: torch.compile cannot hand a generator to math.prod
            frame.full_size / frame.size
            for frame in site["cond_indep_stack"]
            if frame.vectorized and frame.full_size is not None
        ]
    )
    scale = site["scale"]
    return scale if plate_scale == 1 else scale / plate_scale


def log_density(site: Message, masked: bool = True) -> torch.Tensor:
    """A site's unscaled log-density, masked unless ``masked=False`` (computed and cached on the
    site if needed). An enumerated site's own probabilities stay unmasked: masked out, they must
    still sum to one over its values, so the masked element contributes nothing.
    """
    if "unscaled_log_prob" not in site:
        compute_site_log_prob(site)
    return score_log_prob(site) if masked else site["unscaled_log_prob"]


def site_factor(
    site: Message,
    log_prob: torch.Tensor,
    variables: dict[str, Variable],
    plates: dict[str, Plate],
) -> Factor:
    """``log_prob`` (a tensor over ``site``'s batch and enum dims) as a labelled factor."""
    frames = {f.dim: f for f in site["cond_indep_stack"] if f.vectorized}
    enum_dims = site["infer"].get("_enum_dims", {})
    kept_sizes, labels = [], []
    for dim in range(-log_prob.dim(), 0):
        size = log_prob.shape[dim]
        label = _label(site, log_prob, dim, frames, enum_dims, variables)
        if label is None or (size == 1 and label in plates and plates[label].size != 1):
            continue  # a broadcast dim: the density does not vary along it
        kept_sizes.append(size)
        labels.append(label)
    tensor = log_prob.reshape(kept_sizes)
    scale = _residual_scale(site)
    if isinstance(scale, torch.Tensor) and scale.numel() > 1:
        raise EnumerationError(
            f"Site {describe_site(site)} has a scale of shape {fmt_shape(scale.shape)} and meets "
            "enumerated sites; summing them out needs one scale per site. Use a scalar "
            "poutine.scale, or poutine.mask to leave elements out."
        )
    factor = Factor(tensor, tuple(labels), (site["name"],), scale)
    _check_plates_of_variables(site, factor, variables, plates)
    return factor


def _label(
    site: Message,
    log_prob: torch.Tensor,
    dim: int,
    frames: dict,
    enum_dims: dict[int, str],
    variables: dict[str, Variable],
) -> str | None:
    size = log_prob.shape[dim]
    frame = frames.get(dim)
    if frame is not None:
        return frame.name
    holder = enum_dims.get(dim)
    if holder is not None and holder in variables:
        expected = variables[holder].size
        if size == 1:
            return None  # broadcast: the density does not depend on that site
        if size != expected:
            raise EnumerationError(
                f"Site {describe_site(site)}: its log-prob has shape {fmt_shape(log_prob.shape)}, "
                f"size {size} at dim {dim}, where enumerated site '{holder}' keeps its "
                f"{expected} values. Something moved another dim there. {VINDEX_HINT}"
            )
        scope = site["infer"].get("_markov_scope")
        if variables[holder].windowed and scope is not None and holder not in scope:
            raise markov_window_error(site, holder, dim)
        return holder
    if size == 1:
        return None
    where = "an enumeration dim no enumerated site holds" if dim < min(frames, default=0) else ""
    raise EnumerationError(
        f"Site {describe_site(site)}: its log-prob has shape {fmt_shape(log_prob.shape)}, and dim "
        f"{dim} (size {size}) belongs to no plate and no enumerated site"
        + (f" ({where})" if where else "")
        + ". An enumerated value lost its dim or a tensor was indexed so that its dims moved. "
        + VINDEX_HINT
    )


def _check_plates_of_variables(
    site: Message, factor: Factor, variables: dict[str, Variable], plates: dict[str, Plate]
) -> None:
    inside = factor.plates(plates)
    for label in factor.labels:
        variable = variables.get(label)
        if variable is not None and not variable.plates <= inside:
            missing = ", ".join(f"'{name}'" for name in sorted(variable.plates - inside))
            raise EnumerationError(
                f"Site {describe_site(site)} depends on enumerated site '{label}', which lives "
                f"in plate(s) {missing}, but its log-prob (shape {fmt_shape(factor.tensor.shape)}) "
                "does not run along those plates. Sample it inside the same plates, so each "
                "element depends on its own value."
            )


def site_factors(
    trace: Trace, variables: dict[str, Variable], plates: dict[str, Plate]
) -> list[Factor]:
    """One factor per sample site of ``trace`` (its masked log-density)."""
    return [
        site_factor(site, log_density(site, masked=name not in variables), variables, plates)
        for name, site in trace.sample_sites()
    ]


def refuse_sampled_sites(
    sites: dict[str, EnumeratedSite] | dict[str, Variable], role: str, what: str
) -> None:
    """Refuse the sites among ``sites`` (by name) that took ``num_samples`` draws instead of
    their support: ``what`` sums enumerated sites out exactly, which sampled sites are not.

    >>> refuse_sampled_sites({"z": Variable(4, frozenset(), sampled=True)}, "model", "X")
    Traceback (most recent call last):
    ...
    engine.errors.EnumerationNotSupportedError: X sums enumerated sites out exactly, ...
    """
    for name, site in sites.items():
        if site.sampled:
            raise EnumerationNotSupportedError(
                f"{what} sums enumerated sites out exactly, but the {role} marks site "
                f"'{name}' with infer['num_samples']={site.size} (Tensor Monte Carlo "
                "draws, not its whole support). Use TraceTMC_ELBO for sampled sites, or leave "
                "num_samples out to enumerate the site's support."
            )
