"""MCMC diagnostics (engine.infer.mcmc.diagnostics) and the ArviZ bridge.

Statistical checks use independent replicates along the event dims: every diagnostic is computed
per element, so one call gives R independent estimates, and their mean has a Monte Carlo standard
error of (sample sd) / sqrt(R) that the tolerances are built from.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from engine.infer.mcmc.diagnostics import (
    autocovariance,
    effective_sample_size,
    ess_bulk,
    ess_tail,
    format_summary,
    mcse_mean,
    split_rhat,
    summary,
)


def ar1(rho: float, chains: int, draws: int, reps: int, seed: int) -> torch.Tensor:
    """Stationary AR(1) chains x_t = rho x_{t-1} + e_t, shaped (chains, draws, reps)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(chains, draws, reps, generator=g, dtype=torch.float64)
    x = torch.empty_like(noise)
    x[:, 0] = noise[:, 0] / math.sqrt(1 - rho**2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return x


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    return float(values.mean()), float(values.std() / math.sqrt(values.numel()))


# --- ESS and R-hat against theory -------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.5, 0.9])
@pytest.mark.parametrize("ess_fn", [effective_sample_size, ess_bulk])
def test_ess_of_ar1_chains_matches_theory(rho, ess_fn):
    chains, draws, reps = 4, 2000, 100
    x = ar1(rho, chains, draws, reps, seed=1)
    # The variance of the mean of an AR(1) chain is (sigma^2 / n) (1 + rho) / (1 - rho).
    theory = chains * draws * (1 - rho) / (1 + rho)
    ratio = ess_fn(x) / theory
    mean, se = mean_and_se(ratio)
    # Noise: 4 standard errors of the mean over the replicates (one element's ESS has a relative
    # sd of sqrt(2 (2M + 1) / N) for a truncation lag M: about 6 % at rho = 0.5 and 13 % at 0.9
    # here). Bias: centring on estimated chain means and the 1/n autocovariance estimator shift
    # the autocorrelation time by O(tau / n) relative, with tau = (1 + rho) / (1 - rho).
    tau = (1 + rho) / (1 - rho)
    assert abs(mean - 1) < 4 * se + (1 + tau) / draws
    assert float(ratio.min()) > 0.4 and float(ratio.max()) < 1.6


def test_iid_chains_have_ess_near_draw_count_and_rhat_near_one():
    chains, draws = 4, 1000
    x = torch.randn(chains, draws, 50, generator=torch.Generator().manual_seed(2))
    total = chains * draws
    for ess_fn in (effective_sample_size, ess_bulk):
        mean, se = mean_and_se(ess_fn(x) / total)
        # Geyer's positive sequence keeps noisy positive lag-1 pairs, which biases the
        # autocorrelation time up by a percent or two for iid draws.
        assert abs(mean - 1) < 0.02 + 4 * se
    # The tail ESS is the smaller of two noisier indicator ESS (relative sd about 5 %).
    tail = ess_tail(x) / total
    assert bool(((tail > 0.7) & (tail < 1.3)).all())
    rhat = split_rhat(x)
    assert bool(((rhat > 0.99) & (rhat < 1.01)).all())


def test_rhat_flags_chains_that_disagree():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 500, generator=g)
    shifted = x + torch.tensor([0.0, 0.0, 0.0, 2.0])[:, None]
    assert float(split_rhat(shifted)) > 1.1
    # Same means, one chain four times as wide: only the folded (tail) R-hat can see it.
    wide = x * torch.tensor([1.0, 1.0, 1.0, 4.0])[:, None]
    assert float(split_rhat(wide)) > 1.1
    # One chain whose second half drifted away from its first half.
    drifting = torch.randn(1, 1000, generator=g) + torch.linspace(0, 4, 1000)
    assert float(split_rhat(drifting)) > 1.1
    assert abs(float(split_rhat(x[:1])) - 1) < 0.02


def test_mcse_mean_is_sd_over_sqrt_ess():
    x = ar1(0.5, 4, 2000, 100, seed=4)
    # The true standard error of a mean of AR(1) draws with unit innovation variance.
    sd = 1 / math.sqrt(1 - 0.5**2)
    true_se = sd / math.sqrt(4 * 2000 / 3)
    mean, se = mean_and_se(mcse_mean(x) / true_se)
    # sqrt halves the ESS's relative error; same bias allowance as the ESS test.
    assert abs(mean - 1) < 4 * se + 4 / 2000


def test_autocovariance_matches_direct_sums():
    x = torch.randn(3, 7, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    acov = autocovariance(x, dim=1)
    centred = x - x.mean(1, keepdim=True)
    direct = torch.stack(
        [(centred[:, : 7 - k] * centred[:, k:]).sum(1) / 7 for k in range(7)], dim=1
    )
    torch.testing.assert_close(acov, direct)


# --- parity with the reference implementations --------------------------------------------------


def _parity_draws() -> list[np.ndarray]:
    rng = np.random.default_rng(6)
    cases = []
    for chains, draws, rho in [(4, 300, 0.7), (2, 101, 0.2), (3, 50, 0.95), (2, 8, 0.0)]:
        x = ar1(rho, chains, draws, 4, seed=int(rng.integers(1000))).numpy()
        x[..., 1] = np.round(x[..., 1])  # ties: the average-rank path
        x[..., 2] += np.arange(chains)[:, None] * 0.5  # chains that disagree
        x[..., 3] = np.abs(x[..., 3]) ** 3  # skewed
        cases.append(x)
    return cases


def test_bulk_tail_rhat_mcse_match_arviz():
    az = pytest.importorskip("arviz")
    for x in _parity_draws():
        t = torch.from_numpy(x)
        ours = {
            "bulk": ess_bulk(t).numpy(),
            "tail": ess_tail(t).numpy(),
            "rhat": split_rhat(t).numpy(),
            "mcse": mcse_mean(t).numpy(),
        }
        elements = range(x.shape[-1])
        theirs = {
            "bulk": [az.ess(x[..., k], method="bulk") for k in elements],
            "tail": [az.ess(x[..., k], method="tail") for k in elements],
            "rhat": [az.rhat(x[..., k]) for k in elements],
            "mcse": [az.mcse(x[..., k], method="mean") for k in elements],
        }
        for key, value in ours.items():
            np.testing.assert_allclose(value, np.array(theirs[key]), rtol=1e-6, err_msg=key)


def test_degenerate_elements_match_arviz(caplog):
    az = pytest.importorskip("arviz")
    x = np.random.default_rng(7).normal(size=(3, 40, 3))
    x[..., 0] = 2.5  # constant
    x[1, 5, 1] = np.nan
    x[..., 2] = np.arange(3)[:, None]  # every chain constant, at a different value
    t = torch.from_numpy(x)
    with caplog.at_level(logging.ERROR, logger="arviz"), np.errstate(all="ignore"):
        for ours, method in [(ess_bulk, "bulk"), (ess_tail, "tail")]:
            expected = [az.ess(x[..., k], method=method) for k in range(3)]
            np.testing.assert_allclose(ours(t).numpy(), expected, rtol=1e-6)
        expected = [az.rhat(x[..., k]) for k in range(3)]
    rhat = split_rhat(t).numpy()
    np.testing.assert_allclose(rhat[:2], expected[:2])
    # Zero within-chain variance: ArviZ gets inf or ~1e16 depending on rounding in np.var.
    assert rhat[2] > 1e6 and expected[2] > 1e6


def test_effective_sample_size_matches_numpyro():
    diagnostics = pytest.importorskip("numpyro.diagnostics")
    for x in _parity_draws():
        expected = diagnostics.effective_sample_size(x)
        np.testing.assert_allclose(effective_sample_size(torch.from_numpy(x)), expected, rtol=1e-6)


# --- summary and its table ----------------------------------------------------------------------


def test_summary_matches_numpy():
    g = torch.Generator().manual_seed(8)
    samples = {"mu": torch.randn(2, 100, generator=g), "theta": torch.randn(2, 100, 3, generator=g)}
    table = summary(samples, prob=0.8)
    for name, draws in samples.items():
        row = table[name]
        assert list(row) == [
            "mean",
            "std",
            "median",
            "10.0%",
            "90.0%",
            "ess_bulk",
            "ess_tail",
            "r_hat",
        ]
        pooled = draws.double().flatten(0, 1).numpy()
        np.testing.assert_allclose(row["mean"], pooled.mean(0), rtol=1e-12)
        np.testing.assert_allclose(row["std"], pooled.std(0, ddof=1), rtol=1e-12)
        np.testing.assert_allclose(row["median"], np.median(pooled, 0), rtol=1e-12)
        np.testing.assert_allclose(row["10.0%"], np.quantile(pooled, 0.1, axis=0), rtol=1e-12)
        np.testing.assert_allclose(row["90.0%"], np.quantile(pooled, 0.9, axis=0), rtol=1e-12)
        torch.testing.assert_close(row["ess_bulk"], ess_bulk(draws))
        torch.testing.assert_close(row["ess_tail"], ess_tail(draws))
        torch.testing.assert_close(row["r_hat"], split_rhat(draws))
        assert row["mean"].shape == draws.shape[2:]
    assert "5.0%" in summary(samples)["mu"]


def test_format_summary_has_a_row_per_component():
    g = torch.Generator().manual_seed(9)
    samples = {
        "mu": torch.randn(2, 50, generator=g),
        "theta": torch.randn(2, 50, 3, generator=g),
        "w": torch.randn(2, 50, 2, 2, generator=g),
    }
    text = format_summary(summary(samples))
    lines = text.splitlines()
    assert lines[0].split() == [
        "mean",
        "std",
        "median",
        "5.0%",
        "95.0%",
        "ess_bulk",
        "ess_tail",
        "r_hat",
    ]
    labels = [line.split()[0] for line in lines[1:]]
    expected = ["mu", "theta[0]", "theta[1]", "theta[2]", "w[0,0]", "w[0,1]", "w[1,0]", "w[1,1]"]
    assert labels == expected
    mean_mu = float(samples["mu"].mean())
    assert lines[1].split()[1] == f"{mean_mu:.2f}"
    assert format_summary({}) == ""


# --- edge cases -----------------------------------------------------------------------------------

ALL = [effective_sample_size, ess_bulk, ess_tail, split_rhat, mcse_mean]


@pytest.mark.parametrize("shape", [(1, 3), (2, 2, 3), (1, 1), (0, 5), (2, 0), (3, 1, 2)])
def test_too_few_draws_give_nan_without_warnings(shape):
    x = torch.randn(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in ALL:
            value = fn(x)
            assert value.shape == x.shape[2:]
            assert bool(value.isnan().all()), fn.__name__
        row = summary({"x": x})["x"]
        assert format_summary({"x": row})
    assert all(value.shape == x.shape[2:] for value in row.values())


def test_empty_event_shape_and_small_but_valid_counts():
    assert ess_bulk(torch.randn(2, 10, 0)).shape == (0,)
    one_chain_four_draws = torch.tensor([[0.3, -1.2, 0.8, 2.0]])
    for fn in ALL:
        assert bool(torch.isfinite(fn(one_chain_four_draws))), fn.__name__


def test_constant_chains():
    x = torch.full((2, 50, 2), 1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # As ArviZ: a constant element has as many effective draws as split draws, and no R-hat.
        assert ess_bulk(x).tolist() == [100.0, 100.0]
        assert ess_tail(x).tolist() == [100.0, 100.0]
        assert bool(split_rhat(x).isnan().all())
        assert bool(effective_sample_size(x).isnan().all())
        assert mcse_mean(x).tolist() == [0.0, 0.0]
        assert "nan" in format_summary(summary({"c": x}))


def test_nan_draws_and_integer_or_bool_input():
    x = torch.randn(2, 40, 2, generator=torch.Generator().manual_seed(10))
    x[0, 3, 1] = math.nan
    for fn in ALL:
        value = fn(x)
        assert bool(torch.isfinite(value[0])) and bool(value[1].isnan()), fn.__name__
    counts = torch.randint(0, 4, (2, 60), generator=torch.Generator().manual_seed(11))
    flags = counts > 1
    for fn in ALL:
        assert fn(counts).dtype == torch.float64
        assert bool(torch.isfinite(fn(flags))), fn.__name__


def test_rejects_draws_without_a_chain_dim():
    with pytest.raises(ValueError, match="chains, draws"):
        ess_bulk(torch.randn(100))
    with pytest.raises(ValueError, match=r"samples\['z'\]"):
        summary({"z": torch.randn(100)})
    with pytest.raises(ValueError, match="prob"):
        summary({"z": torch.randn(2, 100)}, prob=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_diagnostics_on_cuda_match_cpu():
    x = ar1(0.7, 4, 500, 3, seed=12)
    for fn in ALL:
        on_gpu = fn(x.cuda())
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), fn(x), rtol=1e-9, atol=0.0)


# --- the ArviZ bridge ---------------------------------------------------------------------------


# ArviZ 0.23.4's matplotlib backend calls an API that matplotlib 3.11 deprecates (removal in 3.13).
@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping:DeprecationWarning")
def test_to_inference_data_round_trips_into_arviz():
    az = pytest.importorskip("arviz")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.infer.mcmc.arviz_bridge import to_inference_data

    g = torch.Generator().manual_seed(13)
    posterior = {
        "mu": torch.randn(2, 100, generator=g),
        "theta": torch.randn(2, 100, 3, generator=g),
    }
    stats = {
        "diverging": torch.zeros(2, 100, dtype=torch.bool),
        "lp": torch.randn(2, 100, generator=g),
        "step_size": torch.full((2, 100), 0.3, dtype=torch.bfloat16),
    }
    idata = to_inference_data(posterior, sample_stats=stats, observed_data={"y": torch.ones(5)})
    assert isinstance(idata, az.InferenceData)
    assert idata.posterior["mu"].dims == ("chain", "draw")
    assert idata.posterior["theta"].dims[:2] == ("chain", "draw")
    assert idata.posterior["theta"].shape == (2, 100, 3)
    np.testing.assert_array_equal(idata.posterior["theta"].values, posterior["theta"].numpy())
    assert idata.sample_stats["diverging"].dtype == bool
    assert idata.observed_data["y"].shape == (5,)

    table = az.summary(idata, round_to="none")
    assert len(table) == 4  # mu and theta[0..2]
    np.testing.assert_allclose(
        table["ess_bulk"].to_numpy(),
        np.concatenate([ess_bulk(posterior["mu"]).reshape(1), ess_bulk(posterior["theta"])]),
        rtol=1e-6,
    )
    axes = az.plot_trace(idata)
    assert axes.shape[0] == 2
    plt.close("all")

    named = to_inference_data(
        {"theta": posterior["theta"]},
        coords={"school": ["a", "b", "c"]},
        dims={"theta": ["school"]},
    )
    assert named.posterior["theta"].dims == ("chain", "draw", "school")


def test_to_inference_data_checks_shapes():
    pytest.importorskip("arviz")
    from engine.infer.mcmc.arviz_bridge import to_inference_data

    with pytest.raises(ValueError, match="chains, draws"):
        to_inference_data({"mu": torch.randn(100)})
    with pytest.raises(ValueError, match=r"sample_stats\['lp'\]"):
        to_inference_data({"mu": torch.randn(2, 100)}, sample_stats={"lp": torch.randn(100)})


def test_missing_arviz_says_how_to_install(monkeypatch):
    from engine.infer.mcmc.arviz_bridge import to_inference_data

    monkeypatch.setitem(sys.modules, "arviz", None)  # makes `import arviz` raise ImportError
    with pytest.raises(ImportError, match="pip install arviz"):
        to_inference_data({"mu": torch.randn(2, 10)})


def test_importing_the_engine_does_not_import_arviz():
    code = (
        "import sys, engine, engine.infer.mcmc.diagnostics, engine.infer.mcmc.arviz_bridge; "
        "assert 'arviz' not in sys.modules, 'arviz was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
