"""Convergence diagnostics of MCMC draws: ESS, split R-hat, MCSE and a posterior summary table.

Every function takes draws shaped ``(chains, draws, *event_shape)`` and returns one value per
element of ``event_shape``, vectorised over the elements (no Python loop over them), computed in
float64 on the draws' own device. This module is torch only, so the live MCMC monitor can compute
running diagnostics cheaply; :mod:`engine.infer.mcmc.arviz_bridge` is the way to ArviZ.

Two families of ESS live here, because they answer different questions:

* :func:`effective_sample_size` is the classic multi-chain ESS (Geyer's initial monotone
  sequence over the raw draws, chains not split): the number the benchmarks report as "min ESS",
  equal to what ``numpyro.diagnostics.effective_sample_size`` gives.
* :func:`ess_bulk`, :func:`ess_tail` and :func:`split_rhat` are the rank-normalised, split-chain
  diagnostics of Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021), equal to ArviZ 0.23's
  ``az.ess(method="bulk" | "tail")`` and ``az.rhat()``. One deliberate difference: ArviZ gives
  NaN for the R-hat of a single chain, while :func:`split_rhat` compares its two halves, which is
  still informative (a drifting chain has halves that disagree).

Fewer than four draws per chain give NaN (there is nothing to split); a constant element gets a
bulk and tail ESS equal to its number of (split) draws and an R-hat of NaN, as in ArviZ, and a
classic ESS of NaN, as in NumPyro; a NaN draw makes that element's diagnostics NaN. None of these
raise.

>>> import torch
>>> x = torch.randn(4, 500, generator=torch.Generator().manual_seed(0))
>>> bool(400 < effective_sample_size(x) < 4000), bool(abs(split_rhat(x) - 1) < 0.05)
(True, True)
"""

from __future__ import annotations

import itertools
import math

import torch

# Below this many draws per chain the split-chain diagnostics are undefined (two halves of at
# least two draws each), and ArviZ returns NaN there too.
MIN_DRAWS = 4

_Tensor = torch.Tensor


def _as_draws(x: _Tensor, name: str = "x") -> _Tensor:
    x = torch.as_tensor(x)
    if x.dim() < 2:
        raise ValueError(
            f"{name} must be shaped (chains, draws, *event_shape); got shape {tuple(x.shape)}. "
            "For a single chain of draws use x.unsqueeze(0)."
        )
    return x.detach().to(torch.float64)


def _too_few(x: _Tensor) -> bool:
    return x.shape[1] < MIN_DRAWS or x.numel() == 0


def _nan(x: _Tensor) -> _Tensor:
    return torch.full(x.shape[2:], math.nan, dtype=torch.float64, device=x.device)


def autocovariance(x: _Tensor, dim: int = -1) -> _Tensor:
    """The biased (divided by n) autocovariance of ``x`` along ``dim`` at every lag, by FFT.

    The result has ``x``'s shape and is float64; lag 0 (the first entry along ``dim``) is the
    variance with ``ddof=0``.

    >>> autocovariance(torch.tensor([1.0, -1.0, 1.0, -1.0]))
    tensor([ 1.0000, -0.7500,  0.5000, -0.2500], dtype=torch.float64)
    """
    x = torch.as_tensor(x).detach().to(torch.float64).movedim(dim, -1)
    n = x.shape[-1]
    if x.numel() == 0:
        return x.movedim(-1, dim)
    centred = x - x.mean(-1, keepdim=True)
    # Padding to at least 2n turns the FFT's circular correlation into the linear one.
    spectrum = torch.fft.rfft(centred, n=2 * n)
    acov = torch.fft.irfft(spectrum * spectrum.conj(), n=2 * n)[..., :n] / n
    return acov.movedim(-1, dim)


def _chain_variances(x: _Tensor) -> tuple[_Tensor, _Tensor, _Tensor]:
    """Per-lag autocovariance averaged over chains, the mean within-chain variance (ddof=1)
    and the pooled variance estimate ``var_plus`` of the Stan reference manual."""
    n_chains, n = x.shape[:2]
    acov = autocovariance(x, dim=1).mean(0)
    within = acov[0] * n / (n - 1)
    var_plus = within * (n - 1) / n
    if n_chains > 1:
        var_plus = var_plus + x.mean(1).var(0, correction=1)
    return acov, within, var_plus


def effective_sample_size(x: _Tensor) -> _Tensor:
    """The classic multi-chain effective sample size of ``x`` (chains, draws, *event_shape).

    Autocorrelations are combined across chains as in the Stan reference manual and truncated by
    Geyer's initial monotone positive sequence; chains are neither split nor rank-normalised.
    This is the number ``numpyro.diagnostics.effective_sample_size`` gives. A constant element
    gives NaN; fewer than four draws give NaN.

    >>> x = torch.randn(2, 1000, 3, generator=torch.Generator().manual_seed(1))
    >>> effective_sample_size(x).shape
    torch.Size([3])
    """
    x = _as_draws(x)
    n_chains, n = x.shape[:2]
    if _too_few(x):
        return _nan(x)
    acov, within, var_plus = _chain_variances(x)
    if n_chains == 1:
        # One chain has no between-chain term; both variances are then the ddof=0 one.
        within = var_plus
    rho = 1.0 - (within - acov) / var_plus
    rho[0] = 1.0
    m = n // 2
    pairs = rho[0 : 2 * m : 2] + rho[1 : 2 * m : 2]
    # After the first negative pair every later one is zero (clip, then running minimum); the
    # first pair stays as it is.
    tail = torch.cummin(pairs[1:].clamp(min=0.0), dim=0).values
    tau = -1.0 + 2.0 * (pairs[0] + tail.sum(0))
    return n_chains * n / tau


def _geyer_ess(x: _Tensor) -> _Tensor:
    """ArviZ's ESS of already split (and possibly rank-normalised) chains ``x``.

    Differs from :func:`effective_sample_size` in where the sum of autocorrelations stops: at the
    first non-positive pair (the last even lag read is kept once when positive), and in flooring
    the autocorrelation time at ``1 / log10(size)``; a constant element gives ``size``.
    """
    n_chains, n = x.shape[:2]
    size = n_chains * n
    acov, within, var_plus = _chain_variances(x)
    rho = 1.0 - (within - acov) / var_plus
    rho[0] = 1.0

    m = n // 2
    pairs = rho[0 : 2 * m : 2] + rho[1 : 2 * m : 2]
    # Pairs 1, 2, ... are read while the previous pair is positive and the lag stays below n - 2.
    last_readable = max((n - 3) // 2, 0)
    leading_positive = torch.cumprod((pairs > 0).to(torch.int64), dim=0).sum(0)
    n_read = leading_positive.clamp(max=last_readable)
    used = torch.arange(m, device=x.device).reshape((m,) + (1,) * (pairs.dim() - 1)) < n_read
    monotone = torch.cummin(pairs, dim=0).values
    pair_sum = torch.where(used, monotone, torch.zeros_like(monotone)).sum(0)

    last_even = rho.gather(0, (2 * n_read).unsqueeze(0)).squeeze(0)
    last_pair = pairs.gather(0, n_read.unsqueeze(0)).squeeze(0)
    keep_last = (last_pair >= 0) | (last_even > 0)
    tau = -1.0 + 2.0 * pair_sum + torch.where(keep_last, last_even, torch.zeros_like(last_even))
    tau = tau.clamp(min=1.0 / math.log10(size))
    ess = size / tau

    flat = x.flatten(0, 1)
    constant = (flat.amax(0) - flat.amin(0)) < torch.finfo(torch.float64).resolution
    ess = torch.where(constant, torch.full_like(ess, float(size)), ess)
    return torch.where(flat.isnan().any(0), torch.full_like(ess, math.nan), ess)


def _split(x: _Tensor) -> _Tensor:
    """Each chain's first and last halves as separate chains (the middle draw of an odd count
    is dropped)."""
    half = x.shape[1] // 2
    return torch.cat([x[:, :half], x[:, x.shape[1] - half :]], dim=0)


def _pooled_last(x: _Tensor) -> _Tensor:
    """(chains, draws, *E) -> (*E, chains * draws): every element's draws along the last dim."""
    return x.flatten(0, 1).movedim(0, -1)


def _unpool(y: _Tensor, like: _Tensor) -> _Tensor:
    return y.movedim(-1, 0).reshape(like.shape)


def _sorted_quantile(sorted_draws: _Tensor, q: float) -> _Tensor:
    """The linearly interpolated quantile (R's type 7, numpy's default) of sorted last dims.

    Written in the same arithmetic as ArviZ's quantile (scipy's ``mquantiles``) so a draw that
    sits exactly on the quantile compares the same way in :func:`ess_tail`.
    """
    n = sorted_draws.shape[-1]
    if n == 1:
        return sorted_draws[..., 0]
    position = n * q + (1.0 - q)
    k = math.floor(min(max(position, 1.0), n - 1.0))
    gamma = min(max(position - k, 0.0), 1.0)
    return (1.0 - gamma) * sorted_draws[..., k - 1] + gamma * sorted_draws[..., k]


def _sorted_median(sorted_draws: _Tensor) -> _Tensor:
    """numpy's median (the mean of the two middle draws for an even count) of sorted last dims;
    its rounding decides ties in the folded draws, so it is kept exactly."""
    n = sorted_draws.shape[-1]
    return (sorted_draws[..., (n - 1) // 2] + sorted_draws[..., n // 2]) / 2


def _pooled_ranks(x: _Tensor) -> _Tensor:
    """Each draw's 1-based rank among all chains' draws of its element, ``(*E, chains *
    draws)`` (ties get the average rank)."""
    pooled = _pooled_last(x)
    ordered = pooled.sort(-1).values.contiguous()
    pooled = pooled.contiguous()
    # Tied values span positions [left, right): their average 1-based rank is (left+right+1)/2.
    left = torch.searchsorted(ordered, pooled, side="left")
    right = torch.searchsorted(ordered, pooled, side="right")
    return (left + right + 1).to(torch.float64) / 2


def _z_scale(x: _Tensor) -> _Tensor:
    """Replace draws by normal scores of their pooled ranks (ties get the average rank; Blom's
    3/8 offset), shape kept."""
    ranks = _pooled_ranks(x)
    size = ranks.shape[-1]
    z = torch.special.ndtri((ranks - 0.375) / (size + 0.25))
    return _unpool(z, x)


def rank_histogram(x: _Tensor, bins: int = 20) -> _Tensor:
    """The rank plot's counts (Vehtari et al. 2021): each draw ranked among all chains' draws of
    its element, and each chain's ranks counted in ``bins`` equal bins of 1..chains*draws.
    Returns ``(chains, bins, *event_shape)`` counts. Chains that sample one distribution give
    counts near ``draws / bins`` in every bin; a chain stuck high or low piles up at one end.

    >>> x = torch.stack([torch.arange(0.0, 8.0), torch.arange(8.0, 16.0)])  # chain 1 is higher
    >>> rank_histogram(x, bins=2).tolist()
    [[8, 0], [0, 8]]
    """
    x = _as_draws(x)
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    chains, draws = x.shape[:2]
    ranks = _unpool(_pooled_ranks(x), x)  # (chains, draws, *E)
    size = max(chains * draws, 1)
    which = ((ranks - 1) * bins / size).floor().long().clamp(0, bins - 1)
    counts = torch.zeros((chains, bins, *x.shape[2:]), dtype=torch.long, device=x.device)
    return counts.scatter_add_(1, which, torch.ones_like(which))


def _fold(x: _Tensor) -> _Tensor:
    """Absolute deviations from the pooled median (what the tail R-hat ranks)."""
    median = _sorted_median(_pooled_last(x).sort(-1).values)
    return (x - median).abs()


def _rhat(x: _Tensor) -> _Tensor:
    """Gelman-Rubin R-hat of already split chains."""
    return gelman_rubin(x.shape[1], x.mean(1), x.var(1, correction=1))


def gelman_rubin(count: int, means: _Tensor, variances: _Tensor) -> _Tensor:
    """The Gelman-Rubin R-hat from each chain's moments alone: ``count`` draws per chain, the
    chains' means and variances (``ddof=1``) stacked along dim 0. What a run that keeps only
    running moments (``StreamingMCMC``) can compute; with each chain's halves as chains it is
    :func:`split_gelman_rubin`.

    >>> x = torch.randn(4, 400, generator=torch.Generator().manual_seed(5)).double()
    >>> halves = x.reshape(8, 200)  # each chain's first and second half
    >>> r = gelman_rubin(200, halves.mean(1), halves.var(1))
    >>> bool(torch.isclose(r, split_gelman_rubin(x)))
    True
    """
    between = count * means.var(0, correction=1)
    within = variances.mean(0)
    return torch.sqrt((between / within + count - 1) / count)


def _any_nan(x: _Tensor) -> _Tensor:
    return x.isnan().flatten(0, 1).any(0)


def ess_bulk(x: _Tensor) -> _Tensor:
    """Bulk effective sample size: the ESS of rank-normalised split chains.

    Equals ArviZ 0.23's ``az.ess(..., method="bulk")``; fewer than four draws give NaN.

    >>> x = torch.randn(4, 200, generator=torch.Generator().manual_seed(2))
    >>> bool(500 < ess_bulk(x) < 1500)
    True
    """
    x = _as_draws(x)
    if _too_few(x):
        return _nan(x)
    ess = _geyer_ess(_z_scale(_split(x)))
    return torch.where(_any_nan(x), torch.full_like(ess, math.nan), ess)


def _ess_of_indicator(x: _Tensor, prob: float) -> _Tensor:
    """The split-chain ESS of the indicator ``x <= quantile(x, prob)``."""
    quantile = _sorted_quantile(_pooled_last(x).sort(-1).values, prob)
    return _geyer_ess(_split((x <= quantile).to(torch.float64)))


def ess_tail(x: _Tensor, prob: float = 0.05) -> _Tensor:
    """Tail effective sample size: the smaller of the ESS of the ``prob`` and ``1 - prob``
    quantile indicators (split chains).

    Equals ArviZ 0.23's ``az.ess(..., method="tail")`` for the default ``prob=0.05``; fewer than
    four draws give NaN.

    >>> x = torch.randn(4, 200, generator=torch.Generator().manual_seed(2))
    >>> bool(200 < ess_tail(x) < 1500)
    True
    """
    x = _as_draws(x)
    if _too_few(x):
        return _nan(x)
    low = _ess_of_indicator(x, prob)
    high = _ess_of_indicator(x, 1.0 - prob)
    # Keep the first operand unless the second is smaller (NaN in the first wins), as Python's
    # min does in ArviZ.
    ess = torch.where(high < low, high, low)
    return torch.where(_any_nan(x), torch.full_like(ess, math.nan), ess)


def split_rhat(x: _Tensor) -> _Tensor:
    """Rank-normalised split R-hat: the larger of the bulk R-hat (ranks of the draws) and the
    tail R-hat (ranks of absolute deviations from the median), over split chains.

    Equals ArviZ 0.23's ``az.rhat(...)`` for two or more chains; a single chain is split in two
    halves and still gets a value (ArviZ gives NaN there). Fewer than four draws or a constant
    element give NaN. Values above about 1.01 say the chains have not mixed.

    >>> x = torch.randn(4, 200, generator=torch.Generator().manual_seed(3))
    >>> bool(split_rhat(x) < 1.01), bool(split_rhat(x + torch.arange(4.0)[:, None]) > 1.1)
    (True, True)
    """
    x = _as_draws(x)
    if _too_few(x):
        return _nan(x)
    split = _split(x)
    bulk = _rhat(_z_scale(split))
    tail = _rhat(_z_scale(_fold(split)))
    rhat = torch.where(tail > bulk, tail, bulk)
    return torch.where(_any_nan(x), torch.full_like(rhat, math.nan), rhat)


def split_gelman_rubin(x: _Tensor) -> _Tensor:
    """The classic split Gelman-Rubin R-hat: each chain split in two halves, then the
    between- and within-chain variances of the draws themselves (not rank-normalised, unlike
    :func:`split_rhat`). This is what Pyro's ``summary`` reports as ``r_hat``. Fewer than four
    draws give NaN.

    >>> x = torch.randn(4, 400, generator=torch.Generator().manual_seed(5))
    >>> bool(abs(split_gelman_rubin(x) - 1) < 0.02)
    True
    >>> bool(split_gelman_rubin(x + torch.arange(4.0)[:, None]) > 1.5)
    True
    """
    x = _as_draws(x)
    if _too_few(x):
        return _nan(x)
    return _rhat(_split(x))


def hpdi(x: _Tensor, prob: float = 0.9, dim: int = 0) -> _Tensor:
    """The highest posterior density interval: the narrowest interval between two draws along
    ``dim`` that holds ``int(prob * n)`` steps of the ``n`` sorted draws. Returns the lower and
    upper ends stacked along ``dim`` (Pyro's ``pyro.ops.stats.hpdi``).

    >>> hpdi(torch.tensor([0.0, 1.0, 1.1, 1.2, 1.3, 10.0]), prob=0.5)
    tensor([1.0000, 1.3000])
    """
    x = torch.as_tensor(x)
    if not 0.0 < prob <= 1.0:
        raise ValueError(f"hpdi: prob must lie in (0, 1]; got {prob}")
    ordered = x.sort(dim).values
    n = x.shape[dim]
    span = min(int(prob * n), n - 1)  # prob=1: the whole range, first to last draw
    starts = ordered.narrow(dim, 0, n - span)
    ends = ordered.narrow(dim, span, n - span)
    first = (ends - starts).argmin(dim, keepdim=True)
    return torch.cat([ordered.gather(dim, first), ordered.gather(dim, first + span)], dim)


def mcse_mean(x: _Tensor) -> _Tensor:
    """Monte Carlo standard error of the posterior mean: ``std / sqrt(ess)``, with the ESS of
    split (not rank-normalised) chains, as ArviZ's ``az.mcse(..., method="mean")``.

    >>> x = torch.randn(4, 500, generator=torch.Generator().manual_seed(4))
    >>> bool(0.01 < mcse_mean(x) < 0.04)
    True
    """
    x = _as_draws(x)
    if _too_few(x):
        return _nan(x)
    ess = _geyer_ess(_split(x))
    return x.flatten(0, 1).std(0, correction=1) / ess.sqrt()


def _quantile_key(p: float) -> str:
    return f"{100 * p:.1f}%"


def summary(samples: dict[str, _Tensor], prob: float = 0.9) -> dict[str, dict[str, _Tensor]]:
    """Per site: mean, std, median, the ``(1 - prob) / 2`` and ``(1 + prob) / 2`` quantiles,
    ``ess_bulk``, ``ess_tail`` and ``r_hat``, each a float64 tensor of the site's shape.

    ``samples`` maps site names to draws shaped (chains, draws, *shape). Quantiles are numpy's
    default (linear interpolation) over all chains pooled; ``std`` uses ``ddof=1``.

    >>> x = torch.arange(40.0).reshape(2, 20)
    >>> row = summary({"x": x})["x"]
    >>> list(row)
    ['mean', 'std', 'median', '5.0%', '95.0%', 'ess_bulk', 'ess_tail', 'r_hat']
    >>> float(row["median"]), round(float(row["5.0%"]), 6)
    (19.5, 1.95)
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must lie strictly between 0 and 1; got {prob}")
    low_q, high_q = (1.0 - prob) / 2, (1.0 + prob) / 2
    table: dict[str, dict[str, _Tensor]] = {}
    for name, value in samples.items():
        x = _as_draws(value, name=f"samples[{name!r}]")
        if x.shape[0] * x.shape[1] == 0:
            nan = _nan(x)
            keys = ["mean", "std", "median", _quantile_key(low_q), _quantile_key(high_q)]
            keys += ["ess_bulk", "ess_tail", "r_hat"]
            table[name] = {key: nan.clone() for key in keys}
            continue
        pooled = x.flatten(0, 1)
        ordered = pooled.movedim(0, -1).sort(-1).values
        count = pooled.shape[0]
        # std by hand: torch warns when ddof=1 meets a single draw, where NaN is the answer.
        centred = pooled - pooled.mean(0)
        std = (centred.square().sum(0) / (count - 1)).sqrt() if count > 1 else _nan(x)
        table[name] = {
            "mean": pooled.mean(0),
            "std": std,
            "median": _sorted_median(ordered),
            _quantile_key(low_q): _sorted_quantile(ordered, low_q),
            _quantile_key(high_q): _sorted_quantile(ordered, high_q),
            "ess_bulk": ess_bulk(x),
            "ess_tail": ess_tail(x),
            "r_hat": split_rhat(x),
        }
    return table


def format_summary(summary: dict[str, dict[str, _Tensor]]) -> str:
    """A text table of :func:`summary`'s result: one row per scalar component (``theta[3]``,
    ``w[0,2]``), one column per statistic.

    >>> print(format_summary(summary({"mu": torch.zeros(1, 8)})))  # doctest: +NORMALIZE_WHITESPACE
              mean       std    median      5.0%     95.0%  ess_bulk  ess_tail     r_hat
    mu        0.00      0.00      0.00      0.00      0.00      8.00      8.00       nan
    """
    rows: list[tuple[str, list[float]]] = []
    columns: list[str] = []
    for name, stats in summary.items():
        columns = columns or list(stats)
        values = [torch.as_tensor(stats[key]).detach().cpu().to(torch.float64) for key in columns]
        shape = values[0].shape
        for index in itertools.product(*map(range, shape)):
            label = f"{name}[{','.join(map(str, index))}]" if shape else name
            rows.append((label, [float(v[index]) for v in values]))
    if not rows:
        return ""
    cells = [[f"{v:.2f}" for v in row] for _, row in rows]
    name_width = max(10, *(len(label) for label, _ in rows))
    width = max(9, *(len(c) for c in columns), *(len(c) for row in cells for c in row))
    lines = [" " * name_width + "".join(f" {c:>{width}}" for c in columns)]
    for (label, _), row in zip(rows, cells, strict=True):
        lines.append(f"{label:>{name_width}}" + "".join(f" {c:>{width}}" for c in row))
    return "\n".join(lines)
