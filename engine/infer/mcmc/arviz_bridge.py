"""The one door to ArviZ: MCMC draws (torch tensors) to an ``arviz.InferenceData``.

No other module in the project imports ArviZ, and this one imports it only inside the function
that needs it, so ``import engine`` stays free of ArviZ (and of its pandas, xarray and matplotlib)
and ArviZ remains an optional extra (``pip install -e '.[arviz]'``).

The code targets ArviZ 0.23 (the release that installs on Python 3.11), whose ``az.from_dict``
takes one keyword per group. ArviZ 1.x (Python >= 3.12) takes a single dict of groups instead;
moving to it is an edit of :func:`to_inference_data` alone.

>>> import torch
>>> idata = to_inference_data(
...     {"mu": torch.zeros(2, 10), "theta": torch.zeros(2, 10, 3)},
...     sample_stats={"diverging": torch.zeros(2, 10, dtype=torch.bool)},
... )
>>> dict(idata.posterior["theta"].sizes)
{'chain': 2, 'draw': 10, 'theta_dim_0': 3}
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import arviz

INSTALL_HINT = "pip install arviz==0.23.4  (or, in a checkout: pip install -e '.[arviz]')"


def _import_arviz() -> Any:
    try:
        with warnings.catch_warnings():
            # ArviZ 0.23 announces its 1.x refactor on import; this module is where that move
            # gets handled, so users need not see it on every session.
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"arviz(\.|$)")
            import arviz
    except ImportError as error:
        raise ImportError(
            f"ArviZ is needed to build an InferenceData but is not installed: {INSTALL_HINT}"
        ) from error
    return arviz


def _to_numpy(value: Any) -> np.ndarray:
    """A CPU numpy copy of a tensor (from any device; bfloat16, which numpy lacks, as float32)."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.cpu().numpy()
    return np.asarray(value)


def _arrays(values: Mapping[str, Any] | None) -> dict[str, np.ndarray] | None:
    return None if values is None else {name: _to_numpy(value) for name, value in values.items()}


def _check_leading(arrays: dict[str, np.ndarray], group: str, chains_draws: tuple[int, ...]):
    # ArviZ would take a mis-shaped value too, silently reading its first dims as chain and draw.
    for name, array in arrays.items():
        if array.ndim < 2 or array.shape[:2] != chains_draws:
            raise ValueError(
                f"{group}[{name!r}] has shape {array.shape}, but it must start with "
                f"(chains, draws) = {chains_draws}, like every posterior value."
            )


def to_inference_data(
    posterior: Mapping[str, torch.Tensor],
    sample_stats: Mapping[str, torch.Tensor] | None = None,
    observed_data: Mapping[str, torch.Tensor] | None = None,
    log_likelihood: Mapping[str, torch.Tensor] | None = None,
    *,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, list[str]] | None = None,
) -> arviz.InferenceData:
    """Wrap MCMC draws in an ``arviz.InferenceData`` (for ``az.summary``, ``az.plot_trace``, ...).

    ``posterior`` maps site names to draws shaped (chains, draws, *shape); ``sample_stats`` maps
    statistic names to (chains, draws) tensors, under ArviZ's names where one exists
    (``diverging`` as bools, ``lp``, ``step_size``, ``tree_depth``, ``energy``,
    ``acceptance_rate``) so ArviZ's plots find them; ``observed_data`` holds the data as given;
    ``log_likelihood`` maps each data site to its pointwise log-likelihood, (chains, draws,
    *observations), what ``az.loo`` and ``az.compare`` read (a site's ``dims`` name its value's
    dims; the log-likelihood takes the leading ones, its batch dims).
    ``coords`` and ``dims`` are passed to ArviZ to name the event dims (by default
    ``<site>_dim_0``, ...). Tensors may live on any device; they are copied to CPU numpy.

    Raises ImportError, saying how to install it, when ArviZ is missing.
    """
    az = _import_arviz()
    draws = _arrays(posterior) or {}
    stats = _arrays(sample_stats)
    pointwise = _arrays(log_likelihood)
    first = next(iter(draws.values()), np.zeros((0, 0)))
    if first.ndim < 2:
        raise ValueError(
            f"posterior values must be shaped (chains, draws, *shape); got shape {first.shape}"
        )
    _check_leading(draws, "posterior", first.shape[:2])
    if stats is not None:
        _check_leading(stats, "sample_stats", first.shape[:2])
    if pointwise is not None:
        _check_leading(pointwise, "log_likelihood", first.shape[:2])
    return az.from_dict(
        posterior=draws,
        sample_stats=stats,
        observed_data=_arrays(observed_data),
        log_likelihood=pointwise,
        coords=dict(coords) if coords is not None else None,
        dims=dict(dims) if dims is not None else None,
        attrs={"inference_library": "pplkernel"},
    )
