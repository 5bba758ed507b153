"""Goodness-of-fit checks of draws against the density a distribution claims (Pyro's
``pyro.distributions.testing.gof``).

Each check returns a p-value-like number in ``[0, 1]``: small when the draws do not look like they
came from the claimed distribution. A test suite asserts it exceeds a small failure rate.

* Discrete draws: Pearson's chi-square test of the counts of each value against their
  probabilities (:func:`multinomial_goodness_of_fit`).
* Continuous draws: if ``x_1..x_n`` come from density ``p``, the probability mass
  ``n * p(x_i) * V_i`` of the ball ``V_i`` reaching to the nearest other draw is close to
  Exponential(1); ``exp(-that)`` is then close to Uniform(0, 1), whose histogram gets the
  chi-square test (:func:`density_goodness_of_fit` in one dim, where the "ball" is the gap to the
  nearer neighbour on the line, :func:`vector_density_goodness_of_fit` in ``dim`` dims).

>>> import torch
>>> _ = torch.manual_seed(0)
>>> x = torch.randn(5000)
>>> p = torch.distributions.Normal(0.0, 1.0).log_prob(x).exp()
>>> density_goodness_of_fit(x, p) > 0.01, density_goodness_of_fit(x, 2 * p) > 0.01
(True, False)
"""

from __future__ import annotations

import math

import torch

from engine.distributions.testing.special import chi2sf

# Bins expected to hold fewer draws than this are pooled: the chi-square approximation of
# Pearson's statistic needs a few expected counts per bin.
_MIN_EXPECTED = 5.0


def multinomial_goodness_of_fit(
    probs: torch.Tensor,
    counts: torch.Tensor,
    *,
    total_count: int | None = None,
    plot: bool = False,
) -> float:
    """Pearson's chi-square test of ``counts`` (one per category) against ``probs``.

    Categories expected to be rare are pooled into one bin. ``total_count`` defaults to the sum of
    the counts; ``plot=True`` prints the expected and observed counts.

    >>> import torch
    >>> multinomial_goodness_of_fit(torch.tensor([0.5, 0.5]), torch.tensor([50, 50]))
    1.0
    """
    probs = probs.detach().double().reshape(-1)
    counts = counts.detach().double().reshape(-1)
    n = float(counts.sum()) if total_count is None else float(total_count)
    expected = n * probs
    if plot:
        for e, c in zip(expected.tolist(), counts.tolist(), strict=True):
            print(f"expected {e:10.1f}  observed {c:10.0f}")
    common = expected >= _MIN_EXPECTED
    observed = list(counts[common].tolist())
    wanted = list(expected[common].tolist())
    rare_expected = float(expected[~common].sum()) + max(0.0, n - float(expected.sum()))
    rare_observed = float(counts[~common].sum())
    if rare_expected > 0 or rare_observed > 0:
        observed.append(rare_observed)
        wanted.append(max(rare_expected, 1e-12))
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, wanted, strict=True))
    dof = len(observed) - 1
    if dof < 1:
        return 1.0
    return chi2sf(chi2, dof)


def unif01_goodness_of_fit(samples: torch.Tensor, *, plot: bool = False) -> float:
    """Whether ``samples`` look Uniform(0, 1): the chi-square test of an equal-width histogram.

    >>> import torch
    >>> _ = torch.manual_seed(1)
    >>> unif01_goodness_of_fit(torch.rand(4000)) > 0.01
    True
    """
    samples = samples.detach().double().reshape(-1)
    if bool((samples < 0).any() or (samples > 1).any()):
        return 0.0
    n = samples.numel()
    bins = max(2, min(50, int(n / (4 * _MIN_EXPECTED))))
    counts = torch.histc(samples, bins=bins, min=0.0, max=1.0)
    return multinomial_goodness_of_fit(torch.full((bins,), 1.0 / bins), counts, plot=plot)


def exp_goodness_of_fit(samples: torch.Tensor, plot: bool = False) -> float:
    """Whether ``samples`` look Exponential(1): ``exp(-x)`` must look Uniform(0, 1).

    >>> import torch
    >>> _ = torch.manual_seed(2)
    >>> exp_goodness_of_fit(torch.distributions.Exponential(1.0).sample((4000,))) > 0.01
    True
    """
    return unif01_goodness_of_fit((-samples.detach().double()).exp(), plot=plot)


def density_goodness_of_fit(
    samples: torch.Tensor, probs: torch.Tensor, plot: bool = False
) -> float:
    """Whether one-dimensional ``samples`` come from a density with values ``probs`` at them.

    The mass ``n * p * gap`` of the gap from each draw to the next one up is close to
    Exponential(1) (the last draw has no such gap and is left out).
    """
    samples = samples.detach().double().reshape(-1)
    probs = probs.detach().double().reshape(-1)
    order = samples.argsort()
    samples, probs = samples[order], probs[order]
    gaps = samples[1:] - samples[:-1]
    n = samples.numel()
    # The density at the gap: the geometric mean of its two ends, which is exact to first order.
    density = (probs[1:] * probs[:-1]).sqrt()
    return exp_goodness_of_fit(n * density * gaps, plot=plot)


def volume_of_sphere(dim: int, radius: torch.Tensor) -> torch.Tensor:
    """Volume of the ``dim``-dimensional ball of ``radius``.

    >>> import torch
    >>> float(volume_of_sphere(2, torch.tensor(1.0)))  # the unit disc
    3.141592...
    """
    log_unit = (dim / 2) * math.log(math.pi) - math.lgamma(dim / 2 + 1)
    return math.exp(log_unit) * radius.pow(dim)


def get_nearest_neighbor_distances(samples: torch.Tensor) -> torch.Tensor:
    """Distance from each row of ``samples`` (``n x d``) to the nearest other row."""
    samples = samples.detach().double()
    try:
        from scipy.spatial import cKDTree  # a k-d tree: fast where torch can only compare all pairs
    except ImportError:
        cKDTree = None
    if cKDTree is not None:
        points = samples.cpu().numpy()
        distances, _ = cKDTree(points).query(points, k=2)
        return torch.as_tensor(distances[:, 1], dtype=samples.dtype, device=samples.device)
    distances = []
    for chunk in samples.split(1024):
        d = torch.cdist(chunk, samples)
        # The row itself sits at distance 0: take the second smallest.
        distances.append(d.topk(2, dim=-1, largest=False).values[:, 1])
    return torch.cat(distances)


def vector_density_goodness_of_fit(
    samples: torch.Tensor, probs: torch.Tensor, *, dim: int | None = None, plot: bool = False
) -> float:
    """Whether ``samples`` (``n x d``) come from a density with values ``probs`` at them.

    ``dim`` is the dimension of the space the density lives in (default ``d``; smaller for a
    density on a submanifold such as a sphere). The mass ``n * p * V`` of the ball reaching to
    the nearest other draw is close to Exponential(1).
    """
    samples = samples.detach().double().reshape(samples.shape[0], -1)
    probs = probs.detach().double().reshape(-1)
    dim = samples.shape[-1] if dim is None else dim
    n = samples.shape[0]
    radii = get_nearest_neighbor_distances(samples)
    return exp_goodness_of_fit(n * probs * volume_of_sphere(dim, radii), plot=plot)


def auto_goodness_of_fit(
    samples: torch.Tensor, probs: torch.Tensor, *, dim: int | None = None, plot: bool = False
) -> float:
    """The check that fits ``samples``: their shape (one value or a vector per draw) decides.

    >>> import torch
    >>> _ = torch.manual_seed(3)
    >>> x = torch.randn(3000, 2)
    >>> p = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1).exp()
    >>> auto_goodness_of_fit(x, p) > 0.01
    True
    """
    if samples.dim() == 1:
        return density_goodness_of_fit(samples, probs, plot=plot)
    return vector_density_goodness_of_fit(samples, probs, dim=dim, plot=plot)
