"""Autoguides with local latent sites in subsampled plates: full-size params, mini-batches of any
size, and a mini-batch fit that reaches the same mean-field optimum as the full-data fit."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import AutoDelta, AutoGuideList, AutoNormal
from engine.optim import SGD, Adam
from tests.hierarchical_normal import PRIOR_SCALE, exact_posterior, hierarchical, make_data

N, BATCH = 40, 10
DATA = make_data(N)


def fit(batch_size, steps):
    """Adam at a constant step size, then the iterates of the second half summarised by K batch
    means (each batch 80+ steps, longer than Adam's correlation time at lr 0.02)."""
    engine.clear_param_store()
    engine.set_rng_seed(1)
    guide = AutoNormal(hierarchical)
    svi = SVI(hierarchical, guide, Adam({"lr": 0.02}), Trace_ELBO())
    store, history = engine.get_param_store(), []
    for step in range(steps):
        svi.step(DATA, batch_size)
        if step >= steps // 2:
            locs = [store["AutoNormal.locs.mu"].reshape(1), store["AutoNormal.locs.z"]]
            scales = [store["AutoNormal.scales.mu"].reshape(1), store["AutoNormal.scales.z"]]
            history.append(torch.cat(locs + scales).detach())
    batch_means = torch.stack(history).reshape(K, -1, 2 * (N + 1)).mean(1)
    return guide, batch_means


K = 10


@pytest.mark.slow
def test_mini_batch_fit_of_local_latents_agrees_with_the_full_data_fit():
    mean, sd = exact_posterior(DATA)
    fits = {"full": fit(None, 1600), "mini": fit(BATCH, 4000)}
    averages = {}
    for name, (guide, batch_means) in fits.items():
        # The params cover every unit, whatever the batch size.
        assert engine.param("AutoNormal.locs.z").shape == (N,)
        assert guide.median()["z"].shape == (N,)
        average = batch_means.mean(0)
        mcse = batch_means.std(0) / K**0.5
        averages[name] = (average, mcse)
        # Locations (mu and the 40 z_i) against the exact means. Each z-score is Student-t with
        # K - 1 = 9 dof: E[t²] = 9/7 and sd(t²) = 2.3, so the mean of 41 squares is 1.29 with sd
        # 0.36; 2.7 is four of those sds above.
        z_scores = (average[: N + 1] - mean) / mcse[: N + 1]
        assert (z_scores**2).mean() < 2.7, (name, z_scores)
        # Scales: mu's, and the mean of the z_i's (whose own batch means give its MCSE), within
        # four MCSE of the mean-field optimum 1 / sqrt(P_jj).
        assert (average[N + 1] - sd[0]).abs() < 4 * mcse[N + 1], name
        z_scale = batch_means[:, N + 2 :].mean(1)
        z_scale_mcse = z_scale.std() / K**0.5
        assert (z_scale.mean() - sd[1]).abs() < 4 * z_scale_mcse, name
    # And the two fits against each other, location by location (same bound as above).
    (full, full_mcse), (mini, mini_mcse) = averages["full"], averages["mini"]
    difference = (full - mini)[: N + 1] / (full_mcse**2 + mini_mcse**2).sqrt()[: N + 1]
    assert (difference**2).mean() < 2.7


def indexed(x, idx):
    mu = engine.sample("mu", dist.Normal(0.0, PRIOR_SCALE))
    with engine.plate("units", N, subsample=idx):
        z = engine.sample("z", dist.Normal(mu, 1.0))
        engine.sample("x", dist.Normal(z, 1.0), obs=x)


def units_plate(x, idx):
    return engine.plate("units", N, subsample=idx)


def auto_guide_list(model, create_plates):
    guide = AutoGuideList(model, create_plates=create_plates)
    guide.append(AutoDelta(engine.poutine.block(model, expose=["mu"])))
    guide.append(AutoNormal(engine.poutine.block(model, hide=["mu"])))
    return guide


@pytest.mark.parametrize(
    "make_guide, key",
    [
        (lambda m, c: AutoNormal(m, create_plates=c), "AutoNormal.locs.z"),
        (lambda m, c: AutoDelta(m, create_plates=c), "AutoDelta.z"),
        (auto_guide_list, "AutoGuideList.1.locs.z"),
    ],
    ids=["AutoNormal", "AutoDelta", "AutoGuideList"],
)
def test_an_epoch_of_uneven_mini_batches_trains_the_rows_of_each_batch(make_guide, key):
    # 40 units in batches of 15, 15 and 10: the last, shorter batch is no shape change.
    guide = make_guide(indexed, units_plate)
    # Plain SGD: without momentum only the rows of the current batch have a reason to move.
    svi = SVI(indexed, guide, SGD({"lr": 0.1}), Trace_ELBO())
    batches = [torch.arange(0, 15), torch.arange(15, 30), torch.arange(30, 40)]
    svi.step(DATA[batches[0]], batches[0])
    store = engine.get_param_store()
    assert store[key].shape == (N,)
    before = store[key].detach().clone()
    svi.step(DATA[batches[2]], batches[2])
    moved = (store[key].detach() != before).nonzero().flatten()
    assert torch.equal(moved, batches[2])


def sized(full_size, batch_size):
    with engine.plate("units", full_size, subsample_size=batch_size):
        engine.sample("z", dist.Normal(0.0, 1.0))


def test_another_batch_size_is_accepted_but_another_full_size_is_refused():
    guide = AutoNormal(sized, model_args=(N, BATCH))
    # As in Pyro, the guide's plate draws mini-batches of the size it was set up with.
    assert guide(N, 7)["z"].shape == (BATCH,)
    with pytest.raises(engine.errors.ShapeError, match="site 'z' sat in plates of full sizes"):
        guide(N + 5, BATCH)
