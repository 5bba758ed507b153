"""NUTS and HMC draw exactly what they drew before their bookkeeping was rewritten (issue 14).

The literals below were made with the sampler as it stood at commit fffecc7 (before the packed
tree state), by running ``run_pinned`` below (the same seed, model and settings) and printing
``num_steps`` of every iteration and the first two unconstrained coordinates (mu, log tau) of
each chain's last four draws, rounded to 6 decimals. The rewrite only regroups the same float32
arithmetic, so the trees must be the same step for step (``num_steps`` compared exactly: one
different U-turn or multinomial decision changes them), and the draws equal up to rounding
(atol 1e-5: the 6-decimal rounding of the literal is 5e-7, and float32 reassociation in the
last bits, amplified along at most 24 x 31 leapfrog steps, stays far below it; a different draw
would differ by the size of the posterior's spread, about 1).

Centred eight schools: a funnel that diverges and hits the depth cap, so divergent subtrees,
U-turns at every level and capped trees all occur. Twenty warm-up iterations include one
mass-matrix window (3 to 18), so both the unit and an adapted mass matrix are exercised.
"""

import pytest
import torch

import engine as pyro
from engine.infer import HMC, NUTS
from tests.eight_schools import SIGMA, Y, schools_centred

WARMUP, KEPT = 20, 4


def run_pinned(kernel):
    """Two chains, seed 1: every iteration's ``num_steps`` and the last draws' (mu, log tau)."""
    pyro.set_rng_seed(1)
    kernel.setup_chains(2, WARMUP, (Y, SIGMA))
    steps, draws = [], []
    for i in range(WARMUP + KEPT):
        stats = kernel.step_chains(i, i < WARMUP)
        steps.append(stats["num_steps"].tolist())
        if i >= WARMUP:
            draws.append(kernel.z[:, :2].tolist())
    return steps, draws


# fmt: off
PINNED = {
    "nuts": {
        "steps": [[7, 3], [3, 2], [15, 31], [31, 31], [15, 31], [7, 15], [31, 15], [15, 31],
                  [15, 31], [31, 31], [23, 31], [31, 31], [31, 31], [31, 31], [31, 15],
                  [31, 7], [5, 31], [31, 15], [15, 11], [1, 1], [7, 15], [9, 19], [23, 15],
                  [15, 15]],
        "draws": [[[2.990291, 0.843494], [3.216634, 1.404564]],
                  [[2.490167, 1.030374], [3.792274, 1.376475]],
                  [[2.3668, 1.686158], [0.941112, 1.845128]],
                  [[4.886397, 1.590666], [-0.690094, 1.677638]]],
    },
    "nuts_dense": {
        "steps": [[7, 3], [3, 2], [15, 31], [31, 31], [15, 31], [7, 15], [31, 15], [15, 31],
                  [15, 31], [31, 31], [23, 31], [31, 31], [31, 31], [31, 31], [31, 15],
                  [31, 7], [5, 31], [31, 15], [1, 1], [1, 1], [15, 1], [2, 1], [3, 7], [3, 3]],
        "draws": [[[4.665504, 0.750751], [0.456096, 0.752859]],
                  [[4.665504, 0.750751], [0.456096, 0.752859]],
                  [[2.957177, 0.325528], [1.073886, -0.068545]],
                  [[2.957177, 0.325528], [1.073886, -0.068545]]],
    },
    "hmc": {
        "steps": [[8, 2], [1, 1], [3, 8], [2, 8], [1, 7], [15, 5], [9, 4], [5, 2], [3, 7],
                  [1, 4], [14, 2], [7, 27], [4, 14], [2, 7], [26, 4], [13, 2], [7, 16], [3, 8],
                  [1, 1], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1]],
        "draws": [[[1.761034, 0.14005], [0.10762, 0.576766]],
                  [[1.593675, -0.067399], [0.10762, 0.576766]],
                  [[1.682881, -0.116357], [0.642566, 0.408809]],
                  [[1.599497, 0.00473], [0.642566, 0.408809]]],
    },
}
# fmt: on

KERNELS = {
    "nuts": lambda: NUTS(schools_centred, max_tree_depth=5),
    "nuts_dense": lambda: NUTS(schools_centred, full_mass=True, max_tree_depth=5),
    "hmc": lambda: HMC(schools_centred, trajectory_length=1.0),
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_draws_match_the_pinned_run(name):
    steps, draws = run_pinned(KERNELS[name]())
    assert steps == PINNED[name]["steps"]
    assert torch.allclose(torch.tensor(draws), torch.tensor(PINNED[name]["draws"]), atol=1e-5)
