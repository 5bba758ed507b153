"""StreamingMCMC and its running statistics: the statistics agree with the draws they summarise,
the posterior they give matches a closed form, and the results that need draws are refused.
Also MCMC's own edges met on the way: ``get_samples(num_samples, group_by_chain)`` resamples
as Pyro's ``select_samples`` does, and a model with nothing to sample runs to empty draws.

Tolerance of the posterior check: a posterior mean is compared within 4 Monte Carlo standard
errors, ``sd / sqrt(ESS)`` with the ESS taken conservatively as a quarter of the draws (NUTS
on a one-dimensional Gaussian gives more); 4 MCSE keeps a spurious failure under 1e-4.
"""

import math
import warnings

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.errors import MCMCError
from engine.infer.mcmc import NUTS
from engine.infer.mcmc.api import MCMC, StreamingMCMC
from engine.infer.mcmc.diagnostics import split_gelman_rubin
from engine.infer.mcmc.mcmc_kernel import MCMCKernel
from engine.infer.mcmc.running_stats import (
    CountMeanStats,
    CountMeanVarianceStats,
    CountStats,
    StackStats,
    StatsOfDict,
)

DATA = torch.tensor([0.9, 1.7, 2.2, 0.4, 1.1, 1.9, 1.3, 0.6])
PRIOR_SD = 2.0


def model(data):
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    pyro.deterministic("twice", 2 * mu)
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=data)


def test_streaming_statistics_match_the_closed_form_posterior():
    pyro.set_rng_seed(11)
    mcmc = StreamingMCMC(NUTS(model), num_samples=400, warmup_steps=200, num_chains=2)
    mcmc.run(DATA)
    stats = mcmc.get_statistics(group_by_chain=False)
    precision = 1 / PRIOR_SD**2 + len(DATA)
    mean, sd = float(DATA.sum()) / precision, precision**-0.5
    assert stats["mu"]["count"] == 800
    mcse = sd / math.sqrt(800 / 4)
    assert abs(float(stats["mu"]["mean"]) - mean) < 4 * mcse
    # the variance of n draws has relative sd about sqrt(2 / ESS): 4 of those, ESS = n / 4
    assert abs(float(stats["mu"]["variance"]) / sd**2 - 1) < 4 * math.sqrt(2 / 200)
    assert torch.allclose(stats["twice"]["mean"], 2 * stats["mu"]["mean"])


def test_statistics_agree_with_the_draws_they_summarise():
    pyro.set_rng_seed(12)
    statistics = StatsOfDict({"mu": StackStats}, default=CountMeanVarianceStats)
    mcmc = StreamingMCMC(
        NUTS(model), num_samples=61, warmup_steps=30, num_chains=3, statistics=statistics
    )
    mcmc.run(DATA)
    by_chain = mcmc.get_statistics()
    assert set(by_chain) == {(c, name) for c in range(3) for name in ("mu", "twice")}
    draws = torch.stack([by_chain[(c, "mu")]["samples"] for c in range(3)])  # (3, 61)
    for c in range(3):
        twice = by_chain[(c, "twice")]
        assert twice["count"] == 61
        assert torch.allclose(twice["mean"], 2 * draws[c].mean())
        assert torch.allclose(twice["variance"], 4 * draws[c].var())
    merged = mcmc.get_statistics(group_by_chain=False)
    assert torch.allclose(merged["twice"]["variance"], 4 * draws.flatten().var())
    # R-hat from the halves' moments is the split Gelman-Rubin of the draws (odd count: the
    # middle draw of each chain is left out of both)
    r_hat = mcmc.diagnostics()["mu"]["r_hat"]
    assert torch.allclose(r_hat, split_gelman_rubin(draws.double()))
    table = mcmc.summary()
    assert torch.allclose(table["mu"]["mean"], draws.double().mean())
    assert torch.allclose(table["mu"]["std"], draws.double().flatten().std())


def test_what_needs_the_draws_is_refused():
    pyro.set_rng_seed(13)
    mcmc = StreamingMCMC(NUTS(model), num_samples=10, warmup_steps=10)
    with pytest.raises(RuntimeError, match="run"):
        mcmc.get_statistics()
    mcmc.run(DATA)
    with pytest.raises(MCMCError, match="get_statistics"):
        mcmc.get_samples()
    with pytest.raises(TypeError, match="update, merge and get"):
        StreamingMCMC(NUTS(model), num_samples=10, statistics={"mu": CountStats})
    diagnostics = mcmc.diagnostics()
    assert "n_eff" not in diagnostics["mu"] and set(diagnostics["divergences"]) == {"chain 0"}


class Uniforms(MCMCKernel):
    """Independent U(0, 1) draws: a kernel of the one-chain protocol."""

    initial_params = {"u": torch.tensor(0.5)}

    def sample(self, params):
        return {"u": torch.rand(())}


def test_one_chain_kernels_stream_too():
    pyro.set_rng_seed(14)
    statistics = StatsOfDict(default=CountMeanStats)
    mcmc = StreamingMCMC(
        Uniforms(), num_samples=3000, warmup_steps=5, num_chains=2, statistics=statistics
    )
    mcmc.run()
    stats = mcmc.get_statistics()
    # independent draws: 4 standard errors of a U(0, 1) mean, sqrt(1/12 / 3000)
    for chain in range(2):
        assert stats[(chain, "u")]["count"] == 3000
        assert abs(float(stats[(chain, "u")]["mean"]) - 0.5) < 4 * math.sqrt(1 / 12 / 3000)


def test_merging_running_moments_is_pooling_the_values():
    values = torch.randn(9, 2, generator=torch.Generator().manual_seed(3))
    first, second = CountMeanVarianceStats(), CountMeanVarianceStats()
    for v in values[:4]:
        first.update(v)
    for v in values[4:]:
        second.update(v)
    pooled = first.merge(second).get()
    assert pooled["count"] == 9
    assert torch.allclose(pooled["mean"], values.mean(0))
    assert torch.allclose(pooled["variance"], values.var(0))
    assert first.get()["count"] == 4  # merging makes a new statistic
    assert CountMeanVarianceStats().merge(second).get()["count"] == 5
    with pytest.raises(TypeError, match="cannot merge"):
        first.merge(CountStats())


def test_get_samples_resamples_within_chains_as_pyro_does():
    pyro.set_rng_seed(15)
    mcmc = MCMC(NUTS(model), num_samples=20, warmup_steps=10, num_chains=2)
    mcmc.run(DATA)
    by_chain = mcmc.get_samples(group_by_chain=True)["mu"]
    more = mcmc.get_samples(30, group_by_chain=True)["mu"]  # more than there are: repeats
    assert more.shape == (2, 30)
    for chain in range(2):
        assert set(more[chain].tolist()) <= set(by_chain[chain].tolist())
    assert mcmc.get_samples(50)["mu"].shape == (50,)


def _no_sites():
    return torch.tensor(1.0)


def _all_observed():
    pyro.sample("y", dist.Normal(0.0, 1.0), obs=torch.tensor(0.3))


def test_a_model_with_nothing_to_sample_runs_to_empty_draws():
    calls = []
    mcmc = MCMC(
        NUTS(_no_sites),
        num_samples=3,
        warmup_steps=2,
        num_chains=2,
        hook_fn=lambda kernel, params, stage, i: calls.append((stage, i, params)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty model is no mistake: no warning
        mcmc.run()
    assert mcmc.get_samples() == {}
    assert [(stage, i) for stage, i, _ in calls] == [("Warmup", 0), ("Warmup", 1)] + [
        ("Sample", i) for i in range(3)
    ]
    assert all(params == {} for _, _, params in calls)
    with pytest.warns(UserWarning, match=r"observed \(y\)"):
        MCMC(NUTS(_all_observed), num_samples=2, warmup_steps=2).run()
