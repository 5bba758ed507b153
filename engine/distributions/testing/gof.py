"""Goodness-of-fit tests: does a distribution's ``sample`` agree with its ``log_prob``?

Each test returns a p-value, uniform on (0, 1) when draws and density agree and near zero when
they do not; a test suite asserts ``gof > failure_rate`` with a failure rate below one over the
number of such assertions.

The continuous tests turn draws into numbers that are Exponential(1) when the density is right,
then test those with Pearson's chi-squared on equal-probability bins:

- in one dimension, a sorted sample's gaps times ``n`` times the density there;
- in ``d`` dimensions (or on a ``d``-dimensional manifold such as a circle or sphere), each
  draw of one half of the sample, at distance ``r`` from its nearest neighbour in the other
  half (``m`` draws), gives ``m * p(x) * volume of a d-ball of radius r``, the expected number
  of those draws closer than ``r``.

Both are asymptotic (n large, density smooth at the scale of the gaps), which suits the ten
thousand or so draws such tests use.

>>> import torch
>>> torch.manual_seed(0) and None
>>> x = torch.distributions.Normal(0.0, 1.0).sample((5000,))
>>> p = torch.distributions.Normal(0.0, 1.0).log_prob(x).exp()
>>> auto_goodness_of_fit(x, p) > 1e-3
True
>>> wrong = torch.distributions.Normal(0.0, 1.3).log_prob(x).exp()
>>> auto_goodness_of_fit(x, wrong) < 1e-3
True
"""

from __future__ import annotations

import math

import torch

# Rows of the distance matrix computed at a time (keeps memory at rows * n floats).
_CHUNK = 1024


class InvalidTest(ValueError):
    """The data cannot support the test (too few draws for the bins it needs)."""


def _chi2_sf(statistic: float, dof: int) -> float:
    """P(chi^2_dof > statistic): the regularised upper incomplete gamma function."""
    value = torch.special.gammaincc(
        torch.tensor(dof / 2, dtype=torch.float64), torch.tensor(statistic / 2, dtype=torch.float64)
    )
    return float(value)


def print_histogram(probs: torch.Tensor, counts: torch.Tensor) -> None:
    """Print expected probability, observed count and a bar for each bin."""
    total = float(counts.sum())
    widest = float(counts.max()) if len(counts) else 1.0
    for p, c in zip(probs.tolist(), counts.tolist(), strict=True):
        bar = "#" * round(40 * c / max(widest, 1.0))
        print(f"{p:8.4f} {c:8.0f} {total * p:10.1f} {bar}")


def multinomial_goodness_of_fit(
    probs: torch.Tensor,
    counts: torch.Tensor,
    *,
    total_count: int | None = None,
    plot: bool = False,
) -> float:
    """Pearson's chi-squared test of ``counts`` against bin probabilities ``probs``.

    With ``total_count`` larger than ``counts.sum()`` (bins left out, "truncated" data), the
    left-out mass is one more bin.

    >>> multinomial_goodness_of_fit(torch.tensor([0.5, 0.5]), torch.tensor([50, 50]))
    1.0
    """
    probs = torch.as_tensor(probs, dtype=torch.float64).flatten()
    counts = torch.as_tensor(counts, dtype=torch.float64).flatten()
    observed_total = float(counts.sum())
    total = float(total_count) if total_count is not None else observed_total
    if total <= 0:
        raise InvalidTest("multinomial_goodness_of_fit: no counts to test.")
    expected = probs * total
    statistic = float(((counts - expected).pow(2) / expected.clamp(min=1e-300)).sum())
    dof = len(probs) - 1
    rest_p = 1.0 - float(probs.sum())
    rest_count = total - observed_total
    if total_count is not None and rest_p > 1e-12:
        statistic += (rest_count - total * rest_p) ** 2 / (total * rest_p)
        dof += 1
    if plot:
        print_histogram(probs, counts)
    if dof < 1:
        raise InvalidTest("multinomial_goodness_of_fit needs at least two bins.")
    return _chi2_sf(statistic, dof)


def _num_bins(n: int) -> int:
    # Enough draws per bin (>= 10) for the chi-squared approximation, and bins growing like
    # n^(2/5), the usual rate balancing power against that approximation.
    bins = min(n // 10, int(2 * n**0.4))
    if bins < 2:
        raise InvalidTest(f"goodness of fit needs at least 20 draws, got {n}.")
    return bins


def unif01_goodness_of_fit(samples: torch.Tensor, *, plot: bool = False) -> float:
    """Test that ``samples`` are Uniform(0, 1), on equal-width bins.

    >>> torch.manual_seed(1) and None
    >>> unif01_goodness_of_fit(torch.rand(2000)) > 1e-3
    True
    """
    samples = torch.as_tensor(samples, dtype=torch.float64).flatten()
    bins = _num_bins(len(samples))
    index = (samples * bins).floor().clamp(0, bins - 1).long()
    counts = torch.bincount(index, minlength=bins)
    probs = torch.full((bins,), 1.0 / bins, dtype=torch.float64)
    return multinomial_goodness_of_fit(probs, counts, plot=plot)


def exp_goodness_of_fit(samples: torch.Tensor, plot: bool = False) -> float:
    """Test that ``samples`` are Exponential(1) (mapped to Uniform(0, 1) by their CDF)."""
    samples = torch.as_tensor(samples, dtype=torch.float64).flatten()
    return unif01_goodness_of_fit(-torch.expm1(-samples), plot=plot)


def density_goodness_of_fit(
    samples: torch.Tensor, probs: torch.Tensor, plot: bool = False
) -> float:
    """Test one-dimensional draws ``samples`` against their densities ``probs``."""
    samples = torch.as_tensor(samples, dtype=torch.float64).flatten()
    probs = torch.as_tensor(probs, dtype=torch.float64).flatten()
    if len(samples) != len(probs):
        raise InvalidTest("density_goodness_of_fit: samples and probs differ in length.")
    order = samples.argsort()
    x, p = samples[order], probs[order]
    gaps = x[1:] - x[:-1]
    density = (p[1:] + p[:-1]) / 2
    return exp_goodness_of_fit(len(samples) * density * gaps, plot=plot)


def volume_of_sphere(dim: int, radius: torch.Tensor) -> torch.Tensor:
    """Volume of a ``dim``-dimensional ball of the given radius.

    >>> math.isclose(float(volume_of_sphere(2, torch.tensor(1.0))), math.pi)
    True
    """
    log_unit = dim / 2 * math.log(math.pi) - math.lgamma(dim / 2 + 1)
    return math.exp(log_unit) * radius.pow(dim)


def get_nearest_neighbor_distances(
    samples: torch.Tensor, reference: torch.Tensor | None = None
) -> torch.Tensor:
    """Each draw's Euclidean distance to its nearest other draw (draws stacked on dim 0), or,
    given ``reference``, to its nearest draw there."""
    x = torch.as_tensor(samples, dtype=torch.float64).reshape(len(samples), -1)
    y = x if reference is None else torch.as_tensor(reference, dtype=torch.float64)
    y = y.reshape(len(y), -1)
    out = torch.empty(len(x), dtype=torch.float64)
    for start in range(0, len(x), _CHUNK):
        block = torch.cdist(x[start : start + _CHUNK], y)
        if reference is None:
            rows = torch.arange(block.shape[0])
            block[rows, rows + start] = math.inf
        out[start : start + _CHUNK] = block.min(-1).values
    return out


def vector_density_goodness_of_fit(
    samples: torch.Tensor,
    probs: torch.Tensor,
    *,
    dim: int | None = None,
    plot: bool = False,
) -> float:
    """Test multivariate draws against their densities by nearest-neighbour distances.

    ``dim`` is the dimension of the space the density lives on (2 for points on a sphere in
    3-D); it defaults to the number of coordinates per draw.
    """
    samples = torch.as_tensor(samples, dtype=torch.float64)
    probs = torch.as_tensor(probs, dtype=torch.float64).flatten()
    if dim is None:
        dim = samples.shape[1:].numel()
    # Distances from the first half to the second: within one set, mutual nearest neighbours
    # (most pairs, in low dimensions) would give the same distance twice, and the duplicated
    # values would make the chi-squared test far too eager to reject.
    half = len(samples) // 2
    radius = get_nearest_neighbor_distances(samples[:half], samples[half:])
    n_reference = len(samples) - half
    expected_neighbours = n_reference * probs[:half] * volume_of_sphere(dim, radius)
    return exp_goodness_of_fit(expected_neighbours, plot=plot)


def auto_goodness_of_fit(
    samples: torch.Tensor,
    probs: torch.Tensor,
    *,
    dim: int | None = None,
    plot: bool = False,
) -> float:
    """The one- or many-dimensional test, whichever fits ``samples`` (draws on dim 0)."""
    samples = torch.as_tensor(samples)
    coords = samples.shape[1:].numel()
    if dim is None:
        dim = coords
    if coords == 1 and dim == 1:
        return density_goodness_of_fit(samples.flatten(), probs, plot=plot)
    return vector_density_goodness_of_fit(samples, probs, dim=dim, plot=plot)
