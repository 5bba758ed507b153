"""The generalized Pareto fit behind Pareto-smoothed importance sampling's diagnostic k-hat.

Importance weights with a heavy right tail make importance sampling (and the ELBO's guide) fail
quietly. PSIS (Vehtari, Simpson, Gelman, Yao and Gabry, "Pareto smoothed importance sampling",
2015/2024) fits a generalized Pareto distribution to the largest weights; its shape ``k`` says
how heavy the tail is: below 0.5 the weights have a finite variance, below 0.7 the estimate is
usable, above it is not to be trusted.

The fit is Zhang and Stephens' (2009) empirical-Bayes estimator: the likelihood profiled over a
grid of values of ``b = -k / sigma``, averaged with the profile likelihood as weights, then the
shape shrunk a little toward 0.5 (a weak prior worth 10 observations, as PSIS recommends).

>>> import torch
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> uniform = torch.rand(4000, dtype=torch.float64)
>>> exceedances = ((1 - uniform) ** -0.5 - 1) / 0.5  # a generalized Pareto with k = 0.5
>>> k, sigma = fit_generalized_pareto(exceedances)
>>> abs(k - 0.5) < 0.1 and abs(sigma - 1.0) < 0.1
True
"""

from __future__ import annotations

import math

import torch

PRIOR_OBSERVATIONS = 10  # the weak prior's weight on k = 0.5, in observations


def fit_generalized_pareto(exceedances: torch.Tensor) -> tuple[float, float]:
    """The shape ``k`` and scale ``sigma`` of a generalized Pareto distribution (location 0)
    fitted to positive ``exceedances``; ``k`` is shrunk toward 0.5 by the weak prior.

    >>> fit_generalized_pareto(torch.tensor([1.0]))
    Traceback (most recent call last):
    ...
    ValueError: a generalized Pareto fit needs at least 5 exceedances, got 1
    """
    x = torch.sort(exceedances.detach().to(torch.float64).flatten()).values
    n = x.numel()
    if n < 5:
        raise ValueError(f"a generalized Pareto fit needs at least 5 exceedances, got {n}")
    grid_size = 30 + int(math.sqrt(n))
    j = torch.arange(1, grid_size + 1, dtype=torch.float64)
    first_quartile = x[int(n / 4 + 0.5) - 1]
    # Zhang & Stephens' grid for b, denser near 1 / max(x) where the likelihood peaks.
    b = 1.0 / x[-1] + (1.0 - torch.sqrt(grid_size / (j - 0.5))) / (3.0 * first_quartile)
    # For a given b = -k / sigma, the likelihood's best k is the mean of log(1 - b x).
    k_of_b = torch.log1p(-b[:, None] * x).mean(dim=1)
    profile = n * (torch.log(-b / k_of_b) - k_of_b - 1.0)
    weights = torch.softmax(profile, dim=0)
    b_hat = (weights * b).sum()
    k_hat = torch.log1p(-b_hat * x).mean()
    sigma = float(-k_hat / b_hat)
    shape = (n * float(k_hat) + PRIOR_OBSERVATIONS * 0.5) / (n + PRIOR_OBSERVATIONS)
    return shape, sigma


def pareto_k_of_log_weights(log_weights: torch.Tensor) -> float:
    """PSIS's k-hat of a sample of log importance weights: the Pareto shape fitted to the
    largest ``M = min(S / 5, 3 sqrt(S))`` weights, as exceedances over the next largest.

    >>> torch.manual_seed(1)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> pareto_k_of_log_weights(torch.zeros(1000)) < 0.5  # equal weights: no tail at all
    True
    """
    lw = torch.sort(log_weights.detach().to(torch.float64).flatten()).values
    draws = lw.numel()
    tail = math.ceil(min(draws / 5.0, 3.0 * math.sqrt(draws)))
    if tail < 5 or tail >= draws:
        raise ValueError(
            f"PSIS needs enough draws for a tail of at least 5 weights; {draws} draws give a "
            f"tail of {tail}. Fix: draw more particles (a few hundred or more)."
        )
    lw = lw - lw[-1]  # the largest weight becomes 1: no overflow in exp
    threshold = lw[-tail - 1]
    exceedances = torch.exp(lw[-tail:]) - torch.exp(threshold)
    exceedances = exceedances[exceedances > 0]  # ties with the threshold carry no tail
    if exceedances.numel() < 5:
        return -math.inf  # (nearly) every tail weight ties: no tail whatsoever
    return fit_generalized_pareto(exceedances)[0]
