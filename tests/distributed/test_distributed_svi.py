"""Data-parallel SVI in real process groups (gloo over the loopback interface, 2 and 3 processes).

The regression in ``workers.py`` has only global latent sites, so without mini-batches the
weighted sum of the processes' gradients is the full-data gradient of one process, and SGD
(whose step is the gradient times the learning rate) must move the params exactly as one process
on all the rows does, to float rounding.
"""

from __future__ import annotations

import time

import pytest
import torch

from engine.errors import DistributedError
from engine.infer.distributed import Shard, spawn
from engine.infer.mcmc.diagnostics import effective_sample_size
from tests.distributed import workers

TIMEOUT_S = 60.0


def assert_same_params(a: dict, b: dict, tolerance: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("world_size", [2, 3])
def test_the_groups_steps_are_one_process_full_data_steps(world_size):
    alone = workers.fit(10, None)
    together = spawn(workers.fit, world_size, 10, world_size, timeout_s=TIMEOUT_S)
    for params in together:
        assert_same_params(params, alone)


def test_params_stay_identical_on_every_process_with_mini_batches():
    together = spawn(workers.fit, 3, 25, 3, "adam", 8, timeout_s=TIMEOUT_S)
    for params in together[1:]:
        assert params.keys() == together[0].keys()
        for name in params:
            assert torch.equal(params[name], together[0][name]), name


def test_a_checkpoint_resumes_on_another_number_of_processes(tmp_path):
    checkpoint = str(tmp_path / "fit.pt")
    spawn(workers.fit, 2, 8, 2, "sgd", None, None, checkpoint, timeout_s=TIMEOUT_S)
    resumed = spawn(workers.fit, 3, 8, 3, "sgd", None, checkpoint, timeout_s=TIMEOUT_S)
    straight = workers.fit(16, None)
    for params in resumed:
        assert_same_params(params, straight)


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_a_failing_process_ends_the_group_with_an_error_naming_it(how):
    start = time.monotonic()
    with pytest.raises(DistributedError) as error:
        spawn(workers.fail_at_step, 3, 2, 4, how, timeout_s=30.0)
    assert time.monotonic() - start < 30.0
    message = str(error.value)
    assert "rank 2" in message
    if how == "raise":
        assert "corrupt shard" in message
    else:
        assert "exit code 3" in message or "gone" in message


def test_shards_cover_the_rows_once_with_sizes_one_apart():
    shards = spawn(workers.shard_of, 3, 10, timeout_s=TIMEOUT_S)
    assert [(s.start, s.stop) for s in shards] == [(0, 3), (3, 6), (6, 10)]
    assert sum(s.weight for s in shards) == pytest.approx(1.0)
    assert Shard.of(10) == Shard(10, 0, 10)  # outside a group: all the rows


@pytest.mark.slow
def test_a_mini_batch_fit_over_two_processes_finds_the_exact_posterior_as_one_process_does():
    # The exact posterior mean of mu given the data; the ELBO is quadratic in the guide's loc,
    # so the stationary mean of its noisy iterates is that mean. Each run's average of its last
    # iterates must be within 4 Monte Carlo standard errors of it (the iterates are
    # autocorrelated: the standard error comes from their effective sample size).
    y = workers.conjugate_data()
    exact = y.sum().item() / (len(y) + 1 / 100)
    alone = workers.conjugate_fit(False, 3000, 100, 2000)
    together = spawn(workers.conjugate_fit, 2, True, 3000, 50, 2000, timeout_s=TIMEOUT_S)
    assert torch.equal(together[0], together[1])  # one fit, on both processes
    for locs in (alone, together[0]):
        ess = effective_sample_size(locs.reshape(1, -1, 1)).item()
        mcse = locs.std().item() / ess**0.5
        assert abs(locs.mean().item() - exact) < 4 * mcse, (locs.mean(), exact, mcse, ess)


def test_a_step_sums_every_gradient_and_the_loss_in_one_all_reduce():
    for counts in spawn(workers.collectives_per_step, 3, 5, timeout_s=TIMEOUT_S):
        assert counts["params"] == 4  # AutoNormal's locs and scales of w and b
        assert counts["all_reduce"] == 5 and counts["broadcast"] == 0
