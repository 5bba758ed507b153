"""MCMC chains spread over a real process group (gloo, loopback), gathered on rank 0."""

from __future__ import annotations

import pytest
import torch

from engine.errors import DistributedError
from engine.infer.distributed import spawn
from tests.distributed import workers
from tests.eight_schools import assert_matches_the_reference_posterior


@pytest.mark.slow
def test_chains_over_three_processes_give_the_eight_schools_reference_posterior():
    main, second, third = spawn(workers.eight_schools_chains, 3, 4, timeout_s=300.0)
    # 4 chains over 3 processes: 1, 1 and 2 of them, gathered in rank order on rank 0.
    assert main["chain_range"] == (0, 1)
    assert (second["own_chains"], third["own_chains"]) == (1, 2)
    samples = main["samples"]
    assert samples["mu"].shape == (4, 1000) and main["arviz_mu_shape"] == (4, 1000)
    assert len(main["divergences"]) == 4  # diagnostics name every chain
    # Independent chains: no two processes drew the same chain.
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.equal(samples["mu"][a], samples["mu"][b])
    assert_matches_the_reference_posterior(samples)


def test_fewer_chains_than_processes_is_refused_by_name():
    with pytest.raises(DistributedError) as error:
        spawn(workers.eight_schools_chains, 3, 2, timeout_s=60.0)
    assert "num_chains=2 for 3 processes" in str(error.value)
