"""Pyro's ``pyro.infer.mcmc.util``: the posterior summary and diagnostics of a dict of draws,
selecting draws, and ``initialize_model`` (a model's potential energy over unconstrained values,
for ``HMC(potential_fn=...)``).

The statistics are Pyro's: ``summary`` gives mean, std, median, the highest posterior density
interval (``"5.0%"``/``"95.0%"`` for ``prob=0.9``), ``n_eff`` (the classic multi-chain ESS) and
``r_hat`` (the classic split Gelman-Rubin). ``MCMC.summary()`` reports the rank-normalised
diagnostics of ArviZ instead (see :mod:`engine.infer.mcmc.diagnostics`). Draws are shaped
``(chains, draws, *shape)``, or ``(draws, *shape)`` with ``group_by_chain=False``.

Pyro's predictive-deterministic tutorial summarises NUTS draws this way:

>>> import torch
>>> draws = {"theta": torch.randn(2, 500, generator=torch.Generator().manual_seed(0))}
>>> stats = summary(draws)["theta"]
>>> list(stats)
['mean', 'std', 'median', '5.0%', '95.0%', 'n_eff', 'r_hat']
>>> bool(abs(stats["mean"]) < 0.2), bool(abs(stats["r_hat"] - 1) < 0.05)
(True, True)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from engine.errors import MCMCError
from engine.infer.autoguide.initialization import init_to_uniform
from engine.infer.mcmc.diagnostics import (
    effective_sample_size,
    format_summary,
    hpdi,
    split_gelman_rubin,
)
from engine.infer.mcmc.potential import Potential
from engine.infer.predictive import Predictive
from engine.poutine.trace_struct import Trace
from engine.runtime import Message

Samples = dict[str, torch.Tensor]


def _grouped(samples: Samples, group_by_chain: bool) -> Samples:
    if group_by_chain:
        return {name: torch.as_tensor(value) for name, value in samples.items()}
    return {name: torch.as_tensor(value).unsqueeze(0) for name, value in samples.items()}


def diagnostics(samples: Samples, group_by_chain: bool = True) -> dict[str, dict[str, Any]]:
    """Per site: ``n_eff`` (the classic multi-chain effective sample size) and ``r_hat`` (the
    split Gelman-Rubin statistic), one value per element of the site.

    >>> x = torch.randn(4, 300, generator=torch.Generator().manual_seed(1))
    >>> sorted(diagnostics({"x": x})["x"])
    ['n_eff', 'r_hat']
    """
    return {
        name: {"n_eff": effective_sample_size(value), "r_hat": split_gelman_rubin(value)}
        for name, value in _grouped(samples, group_by_chain).items()
    }


def summary(
    samples: Samples, prob: float = 0.9, group_by_chain: bool = True
) -> dict[str, dict[str, torch.Tensor]]:
    """Per site: ``mean``, ``std``, ``median``, the ends of the ``prob`` highest posterior
    density interval (keys like ``"5.0%"`` and ``"95.0%"``), ``n_eff`` and ``r_hat``, each of the
    site's shape, over all chains pooled (see the module docstring)."""
    table = {}
    low, high = f"{50 * (1 - prob):.1f}%", f"{50 * (1 + prob):.1f}%"
    for name, value in _grouped(samples, group_by_chain).items():
        pooled = value.reshape((-1, *value.shape[2:]))
        if not pooled.is_floating_point():
            pooled = pooled.to(torch.get_default_dtype())
        interval = hpdi(pooled, prob, dim=0)
        table[name] = {
            "mean": pooled.mean(0),
            "std": pooled.std(0),
            "median": pooled.median(0).values,
            low: interval[0],
            high: interval[1],
            "n_eff": effective_sample_size(value),
            "r_hat": split_gelman_rubin(value),
        }
    return table


def print_summary(samples: Samples, prob: float = 0.9, group_by_chain: bool = True) -> None:
    """Print :func:`summary` as a table, one row per scalar element (``theta[0]``, ...).

    >>> print_summary({"mu": torch.zeros(1, 8)})  # doctest: +NORMALIZE_WHITESPACE
    <BLANKLINE>
                    mean       std    median      5.0%     95.0%     n_eff     r_hat
            mu      0.00      0.00      0.00      0.00      0.00       nan       nan
    <BLANKLINE>
    """
    if not samples:
        return
    print()
    print(format_summary(summary(samples, prob, group_by_chain)))
    print()


def select_samples(
    samples: Samples, num_samples: int | None = None, group_by_chain: bool = False
) -> Samples:
    """Draws from MCMC output ``samples`` (shaped ``(chains, draws, ...)``). With
    ``num_samples=None`` all of them, in order; else ``num_samples`` picked at random with
    replacement (the same picks for every site, so joint draws stay joint). With
    ``group_by_chain=False`` the chains are pooled first; with True the chain dim is kept and
    draws are picked within it.

    >>> draws = {"a": torch.arange(6.0).reshape(2, 3), "b": -torch.arange(6.0).reshape(2, 3)}
    >>> select_samples(draws)["a"].tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    >>> picked = select_samples(draws, num_samples=4)
    >>> picked["a"].shape, bool((picked["a"] == -picked["b"]).all())
    (torch.Size([4]), True)
    """
    if not group_by_chain:
        samples = {name: v.reshape((-1, *v.shape[2:])) for name, v in samples.items()}
    if num_samples is None:
        return samples
    if not samples:
        raise ValueError("select_samples: there are no samples (did the MCMC run?)")
    dim = 1 if group_by_chain else 0
    first = next(iter(samples.values()))
    picks = torch.randint(0, first.shape[dim], (num_samples,), device=first.device)
    return {name: value.index_select(dim, picks) for name, value in samples.items()}


def predictive(model: Callable, posterior_samples: Samples, *args: Any, **kwargs: Any) -> Any:
    """Deprecated in Pyro (use :class:`~engine.infer.Predictive`): run ``model(*args,
    **kwargs)`` once per posterior draw and return the draws of the sites not in
    ``posterior_samples`` (or of ``return_sites``). Keyword arguments ``num_samples``,
    ``return_sites`` and ``parallel`` are Predictive's; the rest go to the model. Warns with
    a ``FutureWarning`` as Pyro does.

    >>> import engine as pyro, engine.distributions as dist
    >>> def model():
    ...     mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    ...     return pyro.sample("y", dist.Normal(mu, 1e-3))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", FutureWarning)
    ...     out = predictive(model, {"mu": torch.tensor([5.0, -5.0])})
    >>> [round(v) for v in out["y"].tolist()]
    [5, -5]
    """
    warnings.warn(
        "mcmc.util.predictive is deprecated (as in Pyro): use engine.infer.Predictive(model, "
        "posterior_samples)(*args, **kwargs) instead.",
        FutureWarning,
        stacklevel=2,
    )
    num_samples = kwargs.pop("num_samples", None)
    return_sites = kwargs.pop("return_sites", None)
    parallel = kwargs.pop("parallel", False)
    if kwargs.pop("return_trace", False):
        raise NotImplementedError(
            "predictive(..., return_trace=True) is not available; use "
            "engine.infer.Predictive and engine.poutine.trace to get the traces you need."
        )
    samples = {name: torch.as_tensor(value) for name, value in posterior_samples.items()}
    sizes = {value.shape[0] for value in samples.values()}
    if num_samples is not None and sizes and num_samples not in sizes:
        warnings.warn(
            f"predictive: the posterior samples have {sizes.pop()} draws, not num_samples="
            f"{num_samples}; using the draws as they are.",
            UserWarning,
            stacklevel=2,
        )
        num_samples = None
    runner = Predictive(
        model,
        posterior_samples=samples,
        num_samples=num_samples,
        return_sites=return_sites or (),
        parallel=parallel,
    )
    return runner(*args, **kwargs)


def initialize_model(
    model: Callable,
    model_args: tuple = (),
    model_kwargs: dict[str, Any] | None = None,
    transforms: dict[str, Any] | None = None,
    max_plate_nesting: int | None = None,
    jit_compile: bool = False,
    jit_options: dict[str, Any] | None = None,
    skip_jit_warnings: bool = False,
    num_chains: int = 1,
    init_strategy: Callable[[Message], torch.Tensor] = init_to_uniform,
    initial_params: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], Callable[[dict[str, torch.Tensor]], torch.Tensor], dict, Trace]:
    """What HMC and NUTS need from a model, as Pyro's ``initialize_model`` returns it:
    ``(initial_params, potential_fn, transforms, prototype_trace)``.

    - ``initial_params``: a starting point in unconstrained space per latent site (from
      ``init_strategy``, with a finite potential and gradient; a leading dim of ``num_chains``
      when it is above 1), or the given ``initial_params`` once checked.
    - ``potential_fn(params)``: the potential energy ``-log p(data, latents) - log|J|`` at a
      dict of unconstrained values, differentiable: ``HMC(potential_fn=potential_fn)`` samples
      it.
    - ``transforms``: each latent site's map from its support to unconstrained space
      (``biject_to(support).inv``).
    - ``prototype_trace``: the model's trace at the (first chain's) starting point.

    ``jit_compile``, ``jit_options`` and ``skip_jit_warnings`` are accepted for Pyro's
    signature; the potential runs eagerly (HMC's own ``jit_compile`` compiles it). Each site is
    mapped by ``biject_to`` of its support, so other ``transforms`` are refused.

    >>> import engine as pyro, engine.distributions as dist
    >>> def model(x):
    ...     s = pyro.sample("s", dist.HalfNormal(1.0))
    ...     pyro.sample("x", dist.Normal(0.0, s), obs=x)
    >>> params, potential_fn, transforms, trace = initialize_model(model, (torch.tensor(1.0),))
    >>> sorted(params), bool(torch.isfinite(potential_fn(params)))
    (['s'], True)
    """
    if transforms is not None:
        raise MCMCError(
            "initialize_model(transforms=...) is not supported: the engine maps every latent "
            "site by biject_to(site support). Leave transforms out (the automatic ones are "
            "returned), or reparameterise the model so its sites have the supports you want."
        )
    if num_chains < 1:
        raise MCMCError(f"initialize_model: num_chains must be at least 1, got {num_chains}")
    potential = Potential(
        model,
        model_args,
        model_kwargs,
        init_strategy=init_strategy,
        max_plate_nesting=max_plate_nesting,
    )
    if initial_params is None:
        z = potential.initial_points(num_chains)
    else:
        z = potential.points_from_values(initial_params, num_chains)
    starts = potential.unconstrained_sites(z)
    if num_chains == 1:
        starts = {name: value[0] for name, value in starts.items()}
    names = [slot.name for slot in potential.slots]

    def potential_fn(params: dict[str, torch.Tensor]) -> torch.Tensor:
        missing = [name for name in names if name not in params]
        if missing:
            raise MCMCError(
                f"potential_fn needs an unconstrained value for every latent site {names}; "
                f"missing {missing}"
            )
        point = potential.joined(
            [
                torch.as_tensor(params[slot.name], dtype=potential.dtype).reshape(1, slot.size)
                for slot in potential.slots
            ],
            1,
        )
        return potential.energy(point)[0]

    with torch.no_grad():  # the model as written, at the (first) starting point
        prototype_trace, _ = potential._run(z[:1], batched=False)
    return starts, potential_fn, potential.transforms(), prototype_trace


__all__ = [
    "diagnostics",
    "initialize_model",
    "predictive",
    "print_summary",
    "select_samples",
    "summary",
]
