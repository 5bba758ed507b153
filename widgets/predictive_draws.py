"""Replicated data for predictive checks: which sites hold the data, their replicas drawn from the
prior or a posterior, and the covariate a regression's replicas are drawn against.

The data sites are the model's observed sample sites (factor terms and deterministic sites
aside). A model called without its data observes nothing; then the data sites are the sample
sites inside a plate (the per-datum draws), so a prior predictive still has something to show.

Replicas come from :class:`~engine.infer.Predictive` run on ``poutine.uncondition(model)``:
the observed sites are drawn instead of observed, with the latent sites taken from the prior, a
guide or posterior samples. The model runs with the very arguments that hold the data, so the
replicas have the data's shape, plate sizes and covariates.

>>> import torch, engine, engine.distributions as dist
>>> def model(y):
...     mu = engine.sample("mu", dist.Normal(0.0, 1.0))
...     with engine.plate("data", len(y)):
...         engine.sample("y", dist.Normal(mu, 1.0), obs=y)
>>> draws = replicate(model, (), {"y": torch.zeros(3)}, num_samples=10)
>>> draws.replicated["y"].shape, draws.observed["y"].tolist(), draws.discrete["y"]
(torch.Size([10, 3]), [0.0, 0.0, 0.0], False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.errors import ShapeError
from engine.infer import Predictive
from engine.poutine.handlers import block, trace, uncondition
from engine.runtime import Message, is_subsample_site


@dataclass
class PredictiveDraws:
    """Replicated data of a model's data sites, with the data itself.

    ``observed[site]`` is the data (None for a site the model did not observe),
    ``replicated[site]`` has shape ``(num_samples, *site shape)``, ``discrete[site]`` says
    whether the site's distribution has integer support; ``source`` says where the latent
    values came from ("prior", "SVI run 'coin'", ...).
    """

    source: str
    observed: dict[str, torch.Tensor | None]
    replicated: dict[str, torch.Tensor]
    discrete: dict[str, bool]
    covariate: tuple[str, torch.Tensor] | None = None
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def prior(self) -> bool:
        return self.source == "prior"

    @property
    def num_samples(self) -> int:
        return next(iter(self.replicated.values())).shape[0]


def data_sites(model: Callable, args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Message]:
    """The sites of one run of ``model`` that hold (or would hold) its data, by name.

    >>> import engine, engine.distributions as dist
    >>> def model(y=None):
    ...     mu = engine.sample("mu", dist.Normal(0.0, 1.0))
    ...     with engine.plate("data", 4):
    ...         engine.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> list(data_sites(model, (), {}))  # nothing observed: the per-datum sites
    ['y']
    """
    with block(), torch.no_grad():
        model_trace = trace(model).get_trace(*args, **kwargs)
    sites = {
        name: site
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample"
        and not is_subsample_site(site)
        and not site["infer"].get("_deterministic")
        and not site["infer"].get("is_auxiliary")  # a factor term: a weight, not data
    }
    observed = {name: site for name, site in sites.items() if site["is_observed"]}
    if observed:
        return observed
    in_plates = {name: site for name, site in sites.items() if site["cond_indep_stack"]}
    if in_plates:
        return in_plates
    raise ValueError(
        f"'{_name(model)}' observes no site with these arguments, and samples no site inside a "
        "plate, so there is no data to replicate. Pass the data (a notebook variable of the "
        "argument's name, or --args y=...) so its sample site has obs=..."
    )


def replicate(
    model: Callable,
    args: tuple,
    kwargs: Mapping[str, Any],
    num_samples: int,
    *,
    guide: Callable | None = None,
    posterior_samples: Mapping[str, torch.Tensor] | None = None,
    source: str | None = None,
) -> PredictiveDraws:
    """``num_samples`` replicas of the data sites of ``model(*args, **kwargs)``: from the prior,
    or from ``guide``'s or ``posterior_samples``' latent values."""
    kwargs = dict(kwargs)
    sites = data_sites(model, args, kwargs)
    names = list(sites)
    predictive_args: dict[str, Any] = {"return_sites": names}
    if guide is not None:
        predictive_args.update(guide=guide, num_samples=num_samples)
    elif posterior_samples is not None:
        predictive_args["posterior_samples"] = _thinned(posterior_samples, num_samples)
    else:
        predictive_args["num_samples"] = num_samples
    free = uncondition(model)
    try:  # one vectorised run when the model declares its batch dims with plates
        draws = Predictive(free, parallel=True, **predictive_args)(*args, **kwargs)
    except ShapeError:
        draws = Predictive(free, **predictive_args)(*args, **kwargs)
    # A check holds small tensors that are drawn and summarised on the CPU, wherever the model
    # ran.
    observed = {
        name: site["value"].detach().cpu() if site["is_observed"] else None
        for name, site in sites.items()
    }
    replicated = {}
    for name, site in sites.items():
        value = draws[name].detach().cpu()
        # Predictive pads a site to the plate nesting; the replicas take the site's own shape.
        replicated[name] = value.reshape(value.shape[0], *torch.as_tensor(site["value"]).shape)
    discrete = {name: _is_discrete(site) for name, site in sites.items()}
    if source is None:
        source = "prior" if guide is None and posterior_samples is None else "posterior"
    return PredictiveDraws(source, observed, replicated, discrete, arguments=kwargs)


def _thinned(samples: Mapping[str, torch.Tensor], num_samples: int) -> dict[str, torch.Tensor]:
    """At most ``num_samples`` draws, evenly spaced over the pool (which keeps every chain)."""
    pool = next(iter(samples.values())).shape[0]
    if pool <= num_samples:
        return dict(samples)
    index = torch.linspace(0, pool - 1, num_samples).round().long()
    return {name: value[index.to(value.device)] for name, value in samples.items()}


def _is_discrete(site: Message) -> bool:
    support = getattr(site["fn"], "support", None)
    if support is not None and getattr(support, "is_discrete", False):
        return True
    value = torch.as_tensor(site["value"])
    return not torch.is_floating_point(value) and not torch.is_complex(value)


def _name(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def choose_covariate(
    arguments: Mapping[str, Any],
    draws: PredictiveDraws,
    wanted: str | None = None,
) -> tuple[str, torch.Tensor] | None:
    """The model argument the replicas are drawn against, as ``(name, values)``, or None.

    The rule: a regression's covariate is an argument holding a 1-d floating-point tensor with
    one value per observation (as long as a data site with one dim), that is not the data
    itself; the first such argument in the model's order wins. ``wanted`` names the argument
    instead (any 1-d tensor of that length, integers too), or ``"none"`` for no covariate.

    >>> data = PredictiveDraws("prior", {"y": torch.zeros(3)}, {"y": torch.zeros(5, 3)},
    ...                        {"y": False})
    >>> choose_covariate({"x": torch.arange(3.0), "y": torch.zeros(3)}, data)[0]
    'x'
    >>> choose_covariate({"g": torch.arange(3)}, data), choose_covariate({"g": torch.arange(3)},
    ...     data, "g")[0]
    (None, 'g')
    """
    if wanted == "none":
        return None
    lengths = {value.shape[1] for value in draws.replicated.values() if value.dim() == 2}
    data = [value for value in draws.observed.values() if value is not None]
    if wanted is not None:
        if wanted not in arguments:
            known = ", ".join(arguments) or "none"
            raise ValueError(
                f"--x {wanted}: the model has no argument '{wanted}' (its arguments: {known}). "
                "Name the argument that holds the covariate, or write --x none."
            )
        value = arguments[wanted]
        if not (isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() in lengths):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            needed = " or ".join(str(n) for n in sorted(lengths)) or "(no 1-d data site)"
            raise ValueError(
                f"--x {wanted}: the covariate must be a 1-d tensor with one value per "
                f"observation (length {needed}), but '{wanted}' is {shape}."
            )
        return wanted, value.detach().cpu()
    for name, value in arguments.items():
        if (
            isinstance(value, torch.Tensor)
            and value.dim() == 1
            and torch.is_floating_point(value)
            and value.numel() in lengths
            and not any(_same_data(value, d) for d in data)
        ):
            return name, value.detach().cpu()
    return None


def _same_data(value: torch.Tensor, data: torch.Tensor) -> bool:
    """Whether an argument holds the data itself (then it is no covariate)."""
    if value is data:
        return True
    same = value.shape == data.shape and value.dtype == data.dtype
    return same and torch.equal(value.detach().cpu(), data)
