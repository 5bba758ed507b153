"""SMCFilter (sequential importance resampling) against the Kalman filter on a linear-Gaussian
state-space model, systematic resampling's exact counts, and the filter's errors."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.errors import ArgumentError, ShapeError, SMCFailed, SMCStateError
from engine.infer import SMCFilter
from engine.infer.smcfilter import SMCState, systematic_resample

# Three independent AR(1) series seen through noise:
#   x_0 ~ N(0, PRIOR_SD^2),  x_t = DECAY x_{t-1} + N(0, MOVE_SD^2),  y_t = x_t + N(0, NOISE_SD^2)
SERIES, DECAY, PRIOR_SD, MOVE_SD, NOISE_SD = 2, 0.9, 1.0, 0.6, 1.0


class Tracker:
    """The model: its state is the current position of each series."""

    def init(self, state):
        with pyro.plate("series", SERIES):
            state["x"] = pyro.sample("x_init", dist.Normal(0.0, PRIOR_SD))

    def step(self, state, y=None):
        with pyro.plate("series", SERIES):
            state["x"] = pyro.sample("x", dist.Normal(DECAY * state["x"], MOVE_SD))
            return pyro.sample("y", dist.Normal(state["x"], NOISE_SD), obs=y)


class Bootstrap:
    """A proposal from the model's own transition (the bootstrap filter): ``p / q`` is then
    the likelihood of the observation alone."""

    def init(self, state):
        with pyro.plate("series", SERIES):
            pyro.sample("x_init", dist.Normal(0.0, PRIOR_SD))

    def step(self, state, y=None):
        with pyro.plate("series", SERIES):
            pyro.sample("x", dist.Normal(DECAY * state["x"], MOVE_SD))


class LookAhead:
    """The locally optimal proposal ``p(x_t | x_{t-1}, y_t)``, Gaussian here: the weights then
    hold ``p(x_t) p(y_t | x_t) / q(x_t)``, so the guide's density enters them too."""

    def init(self, state):
        with pyro.plate("series", SERIES):
            pyro.sample("x_init", dist.Normal(0.0, PRIOR_SD))

    def step(self, state, y):
        precision = 1 / MOVE_SD**2 + 1 / NOISE_SD**2
        mean = (DECAY * state["x"] / MOVE_SD**2 + y / NOISE_SD**2) / precision
        with pyro.plate("series", SERIES):
            pyro.sample("x", dist.Normal(mean, precision**-0.5))


def _kalman(ys):
    """The exact filtering means and variances of every step (closed form)."""
    mean, var = torch.zeros(SERIES), torch.full((SERIES,), PRIOR_SD**2)
    means, variances = [], []
    for y in ys:
        mean, var = DECAY * mean, DECAY**2 * var + MOVE_SD**2  # predict
        gain = var / (var + NOISE_SD**2)
        mean, var = mean + gain * (y - mean), (1 - gain) * var  # update
        means.append(mean)
        variances.append(var)
    return torch.stack(means), torch.stack(variances)


@pytest.mark.parametrize("proposal", [LookAhead, Bootstrap])
def test_filtering_means_and_variances_match_the_kalman_filter(proposal):
    num_steps, num_particles, reps = 12, 1000, 16
    truth, state = Tracker(), {}
    truth.init(state)
    ys = torch.stack([truth.step(state) for _ in range(num_steps)])
    kalman_mean, kalman_var = _kalman(ys)

    means, variances = [], []
    for rep in range(reps):
        pyro.set_rng_seed(100 + rep)
        smc = SMCFilter(Tracker(), proposal(), num_particles, max_plate_nesting=1)
        smc.init()
        run_means, run_vars = [], []
        for y in ys:
            smc.step(y)
            empirical = smc.get_empirical()["x"]
            assert empirical.mean.shape == (SERIES,)
            run_means.append(empirical.mean)
            run_vars.append(empirical.variance)
        means.append(torch.stack(run_means))
        variances.append(torch.stack(run_vars))
    means, variances = torch.stack(means), torch.stack(variances)  # (reps, steps, series)

    # Each run's estimate is a Monte Carlo estimate; across 16 independent runs, the mean's
    # error divided by its standard error s / sqrt(16) follows Student's t with 15 dof (the
    # filter's O(1 / ESS) bias is a small fraction of that error: with 80 runs the largest
    # |t| stays below 3). P(|t_15| > 6) is about 2.5e-5, so none of the 2 x 24 comparisons
    # below fails by chance (odds about 1e-3; the runs' estimates have heavier tails than a
    # normal's, the largest |t| seen over 150 such comparisons was 4.3).
    for estimates, exact in ((means, kalman_mean), (variances, kalman_var)):
        standard_error = estimates.std(0) / math.sqrt(reps)
        assert ((estimates.mean(0) - exact).abs() < 6 * standard_error).all()
    # And the test is not vacuous: each run lies within a fraction of a posterior sd of the
    # Kalman mean (about sqrt(1 / ESS) of one, 0.1 at most in the runs seen), so the
    # comparison above resolves the mean to a small fraction of the posterior's width.
    assert (means.std(0) < 0.25 * kalman_var.sqrt()).all()


@pytest.mark.parametrize("size", [1, 2, 7, 50])
def test_systematic_resampling_draws_each_index_floor_or_ceil_of_n_p_times(size):
    probs = torch.rand(200, size) ** 3
    probs[:, 0] = 0.0 if size > 1 else 1.0  # an index of probability 0 is never drawn
    probs = probs / probs.sum(-1, keepdim=True)
    index = systematic_resample(probs)
    assert index.shape == (200, size) and index.dtype == torch.long
    counts = torch.zeros_like(probs).scatter_add_(-1, index, torch.ones_like(probs))
    expected = size * probs
    # Evenly spaced points put exactly floor or ceil of N p_i points in each slot (up to the
    # float rounding of the cumulative sum).
    assert (counts >= expected.floor() - 1e-6).all() and (counts <= expected.ceil() + 1e-6).all()
    if size > 1:
        assert (counts[:, 0] == 0).all()


def test_systematic_resampling_is_unbiased():
    probs = torch.tensor([0.05, 0.3, 0.15, 0.5])
    index = systematic_resample(probs.expand(20000, 4))
    frequency = torch.zeros(4).scatter_add_(0, index.reshape(-1), torch.ones(80000)) / 80000
    # Each count is floor(4 p) or +1 with P = frac(4 p): its sd is at most 0.5 per row, so the
    # frequency's standard error is at most 0.5 / 4 / sqrt(20000) < 0.001; 0.005 is 5 of them.
    assert torch.allclose(frequency, probs, atol=0.005)


def _walk_filter(ess_threshold):
    class Walk:
        def init(self, state):
            state["x"] = pyro.sample("x", dist.Normal(0.0, 1.0))

        def step(self, state, y):
            state["x"] = pyro.sample("x", dist.Normal(state["x"], 1.0))
            pyro.sample("y", dist.Normal(state["x"], 0.3), obs=y)

    class Prior:
        def init(self, state):
            pyro.sample("x", dist.Normal(0.0, 1.0))

        def step(self, state, y):
            pyro.sample("x", dist.Normal(state["x"], 1.0))

    smc = SMCFilter(Walk(), Prior(), 100, 0, ess_threshold=ess_threshold)
    smc.init()
    return smc


def test_resampling_follows_the_ess_threshold():
    never = _walk_filter(0.0)
    never.step(torch.tensor(1.0))
    weights = never.state.log_weights
    assert torch.logsumexp(weights, 0).abs() < 1e-5  # normalised
    assert weights.std() > 0.1  # unequal: kept, not resampled

    always = _walk_filter(1.0)
    before = always.state["x"].clone()
    always.step(torch.tensor(1.0))
    assert torch.allclose(always.state.log_weights, torch.full((100,), -math.log(100)))
    # The positions after resampling are copies of some proposed positions: fewer distinct
    # values than particles, since the heavy ones were duplicated.
    assert len(always.state["x"].unique()) < 100
    assert not torch.equal(always.state["x"], before)


def test_the_guide_may_not_write_the_state():
    class Writer:
        def init(self, state):
            state["x"] = pyro.sample("x", dist.Normal(0.0, 1.0))

        def step(self, state):
            pass

    smc = SMCFilter(Writer(), Writer(), 10, 0)
    with pytest.raises(SMCStateError, match=r"guide's init set state\['x'\]"):
        smc.init()


def test_state_values_need_the_particle_dim():
    state = SMCState(4)
    with pytest.raises(ShapeError, match=r"state\['w'\] has shape \(3,\).*4 particles"):
        state["w"] = torch.zeros(3)
    with pytest.raises(ArgumentError, match="not a float"):
        state["w"] = 1.5
    with pytest.raises(ShapeError):
        state.update(w=torch.zeros(5))
    state.update(w=torch.zeros(4, 2))
    assert state["w"].shape == (4, 2)


def test_step_before_init_and_objects_without_methods_are_refused():
    smc = _walk_filter(0.5)
    fresh = SMCFilter(smc.model, smc.guide, 10, 0)
    with pytest.raises(ArgumentError, match=r"before SMCFilter\.init"):
        fresh.step(torch.tensor(0.0))
    with pytest.raises(ArgumentError, match=r"model .*no method init or step"):
        SMCFilter(lambda state: None, smc.guide, 10, 0)
    with pytest.raises(ArgumentError, match="ess_threshold=2"):
        SMCFilter(smc.model, smc.guide, 10, 0, ess_threshold=2)


def test_no_particle_left_raises_smc_failed_and_keeps_the_state():
    class Exact:  # the data pin x exactly: a continuous proposal never hits it
        def init(self, state):
            state["x"] = pyro.sample("x", dist.Normal(0.0, 1.0))

        def step(self, state, y):
            pyro.sample("y", dist.Delta(state["x"]), obs=y)

    class Proposal:
        def init(self, state):
            pyro.sample("x", dist.Normal(0.0, 1.0))

        def step(self, state, y):
            pass

    smc = SMCFilter(Exact(), Proposal(), 50, 0)
    smc.init()
    x, weights = smc.state["x"], smc.state.log_weights
    with pytest.raises(SMCFailed, match="no particle has a nonzero weight"):
        smc.step(torch.tensor(0.25))
    assert smc.state["x"] is x and smc.state.log_weights is weights


def test_a_failing_model_leaves_the_state_as_it_was():
    class Fragile:
        def init(self, state):
            state["x"] = pyro.sample("x", dist.Normal(0.0, 1.0))

        def step(self, state, y):
            state["x"] = pyro.sample("x", dist.Normal(state["x"], 1.0))
            raise RuntimeError("the model broke after writing the state")

    class Proposal:
        def init(self, state):
            pyro.sample("x", dist.Normal(0.0, 1.0))

        def step(self, state, y):
            pyro.sample("x", dist.Normal(state["x"], 1.0))

    smc = SMCFilter(Fragile(), Proposal(), 20, 0)
    smc.init()
    x = smc.state["x"]
    with pytest.raises(RuntimeError, match="broke"):
        smc.step(torch.tensor(0.0))
    assert smc.state["x"] is x
