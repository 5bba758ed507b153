"""Pyro's kernel protocol (``MCMCKernel``: ``setup``, ``initial_params``, ``sample``), kernels
written by a user, ``RandomWalkKernel``, the automatic enumeration of discrete latent sites,
and the other Pyro arguments of the samplers (``step_size=None``, ``mp_context``).

Posterior checks compare with closed forms. Their tolerance is ``4 · sd / sqrt(ESS)``: four
Monte Carlo standard errors of the mean, with ``sd`` the exact posterior standard deviation and
``ESS`` the effective sample size of the draws themselves (the classic multi-chain estimate), so
a correct sampler fails with probability about 6e-5 at a fixed seed, and a wrong one (a wrong
acceptance ratio, a missed Jacobian) shifts the mean by far more than that.
"""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.errors import MCMCError
from engine.infer import HMC, MCMC, NUTS, RandomWalkKernel, config_enumerate
from engine.infer.mcmc.mcmc_kernel import MCMCKernel
from engine.infer.mcmc.potential import Potential
from engine.infer.mcmc.util import diagnostics, initialize_model


def assert_mean_close(draws: torch.Tensor, mean: float, sd: float) -> None:
    """``draws`` (chains, draws) have mean ``mean`` within four Monte Carlo standard errors."""
    ess = float(diagnostics({"x": draws})["x"]["n_eff"])
    assert ess > 50, f"too few effective draws to judge: {ess}"
    tolerance = 4 * sd / math.sqrt(ess)
    assert abs(float(draws.mean()) - mean) < tolerance, (float(draws.mean()), mean, tolerance)


def gamma_model():
    pyro.sample("s", dist.Gamma(3.0, 2.0))  # mean 1.5, sd sqrt(3)/2


class LogRandomWalk(MCMCKernel):
    """A user's Metropolis kernel on the unconstrained values of ``initialize_model``."""

    def __init__(self, model, scale=1.0):
        self.model = model
        self.scale = scale
        self._initial_params = None
        self.transforms = None
        self.stages = []

    def setup(self, warmup_steps, *args, **kwargs):
        params, self.potential_fn, self.transforms, _ = initialize_model(self.model, args, kwargs)
        if self._initial_params is None:
            self._initial_params = params
        self.accepted = 0

    @property
    def initial_params(self):
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params):
        self._initial_params = params

    def sample(self, params):
        proposal = {k: v + self.scale * torch.randn_like(v) for k, v in params.items()}
        log_ratio = self.potential_fn(params) - self.potential_fn(proposal)
        if torch.rand(()).log() < log_ratio:
            self.accepted += 1
            return proposal
        return params

    def diagnostics(self):
        return {"accepted": self.accepted}


def test_a_user_kernel_runs_its_chains_under_mcmc():
    pyro.set_rng_seed(0)
    kernel = LogRandomWalk(gamma_model)
    stages = []
    mcmc = MCMC(
        kernel,
        num_samples=2000,
        warmup_steps=100,
        num_chains=2,
        hook_fn=lambda kernel, params, stage, i: stages.append(stage),
    )
    mcmc.run()
    draws = mcmc.get_samples(group_by_chain=True)["s"]
    assert draws.shape == (2, 2000)
    assert bool((draws > 0).all())  # mapped back onto the support by the kernel's transforms
    assert_mean_close(draws, 1.5, math.sqrt(3) / 2)
    assert stages.count("Warmup") == 200 and stages.count("Sample") == 4000
    accepted = mcmc.diagnostics()["accepted"]
    assert sorted(accepted) == ["chain 0", "chain 1"] and all(n > 0 for n in accepted.values())
    assert mcmc.get_samples(num_samples=10)["s"].shape == (10,)


def test_transforms_given_to_mcmc_map_a_user_kernels_draws():
    kernel = LogRandomWalk(gamma_model)
    exp = torch.distributions.transforms.ExpTransform()
    mcmc = MCMC(kernel, num_samples=5, warmup_steps=0, transforms={"s": exp})
    mcmc.run()
    # exp.inv is the log: the draws come back as the log of the kernel's (log-scale) values.
    assert mcmc.get_samples()["s"].shape == (5,)
    with pytest.raises(ValueError, match="transforms"):
        MCMC(NUTS(gamma_model), num_samples=5, transforms={"s": exp})


def test_mcmc_refuses_what_is_not_a_kernel():
    with pytest.raises(TypeError, match="MCMCKernel"):
        MCMC(gamma_model, num_samples=5)


def test_hmc_driven_by_hand_samples_a_potential_fn():
    pyro.set_rng_seed(1)

    def potential(params):  # N(5, 2²)
        return 0.5 * (((params["z"] - 5.0) / 2.0) ** 2).sum()

    kernel = HMC(potential_fn=potential, trajectory_length=3.0)
    kernel.initial_params = {"z": torch.tensor(0.0)}
    kernel.setup(300)
    params = kernel.initial_params
    draws = []
    for i in range(1300):
        kernel.clear_cache()
        params = kernel(params)
        if i >= 300:
            draws.append(params["z"])
    assert params["z"].shape == ()
    assert_mean_close(torch.stack(draws).unsqueeze(0), 5.0, 2.0)
    assert kernel.transforms == {}
    assert set(kernel.logging()) == {"step size", "acc. prob"}


def test_nuts_driven_by_hand_from_a_model_and_a_given_start():
    kernel = NUTS(gamma_model)
    kernel.initial_params = {"s": torch.tensor(2.0)}  # unconstrained: s = e²
    kernel.setup(0)
    assert float(kernel.transforms["s"].inv(kernel.initial_params["s"])) == pytest.approx(
        math.exp(2.0)
    )
    params = kernel.sample({"s": torch.tensor(-1.0)})  # any point, not only the last
    assert set(params) == {"s"} and params["s"].shape == ()
    assert set(kernel.diagnostics()) == {"divergences", "acceptance rate"}


def test_sample_before_setup_is_an_error():
    with pytest.raises(MCMCError, match="setup"):
        NUTS(gamma_model).sample({"s": torch.tensor(0.0)})


def beta_bernoulli(data):
    p = pyro.sample("p", dist.Beta(2.0, 2.0))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Bernoulli(p), obs=data)


# 14 ones in 20: the posterior is Beta(16, 8), mean 2/3, sd sqrt(16·8 / (24² · 25)).
COINS = torch.tensor([1.0] * 14 + [0.0] * 6)
POSTERIOR_MEAN, POSTERIOR_SD = 16 / 24, math.sqrt(16 * 8 / (24**2 * 25))


def test_random_walk_kernel_finds_the_conjugate_posterior():
    pyro.set_rng_seed(2)
    mcmc = MCMC(RandomWalkKernel(beta_bernoulli), num_samples=1500, warmup_steps=500, num_chains=3)
    mcmc.run(COINS)
    draws = mcmc.get_samples(group_by_chain=True)["p"]
    assert draws.shape == (3, 1500)
    assert_mean_close(draws, POSTERIOR_MEAN, POSTERIOR_SD)
    # Warm-up moved the step size off its start, towards the target acceptance of 0.234.
    step_sizes = mcmc.diagnostics()["step size"]
    assert all(step != pytest.approx(0.1) for step in step_sizes.values())


@pytest.mark.parametrize("kernel", [RandomWalkKernel, NUTS])
def test_samplers_work_in_float64(kernel):
    pyro.set_rng_seed(3)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        mcmc = MCMC(kernel(beta_bernoulli), num_samples=600, warmup_steps=300, num_chains=2)
        mcmc.run(COINS.double())
    finally:
        torch.set_default_dtype(old)
    draws = mcmc.get_samples(group_by_chain=True)["p"]
    assert draws.dtype == torch.float64
    assert_mean_close(draws, POSTERIOR_MEAN, POSTERIOR_SD)


def switch_model(y):
    x = pyro.sample("x", dist.Normal(0.0, 1.0))
    k = pyro.sample("k", dist.Bernoulli(0.3))  # not marked for enumeration
    pyro.sample("y", dist.Normal(x + 2.0 * k, 1.0), obs=y)


def test_unmarked_discrete_sites_are_enumerated_as_marked_ones_are():
    y = torch.tensor(1.5)
    plain = Potential(switch_model, (y,))
    marked = Potential(config_enumerate(switch_model), (y,))
    assert [slot.name for slot in plain.slots] == ["x"]
    z = torch.linspace(-2.0, 2.0, 5).unsqueeze(-1)
    assert torch.equal(plain.energy(z), marked.energy(z))


def test_nuts_marginalises_an_unmarked_discrete_site():
    # x | y is a two-component mixture: for k in {0, 1}, weight ∝ P(k) N(y; 2k, 2), component
    # N((y - 2k)/2, 1/2).
    y = 1.5
    weights = torch.tensor([0.7 * math.exp(-(y**2) / 4), 0.3 * math.exp(-((y - 2) ** 2) / 4)])
    weights = weights / weights.sum()
    means = torch.tensor([y / 2, (y - 2) / 2])
    mean = float((weights * means).sum())
    sd = math.sqrt(float((weights * (0.5 + means**2)).sum()) - mean**2)
    pyro.set_rng_seed(4)
    mcmc = MCMC(NUTS(switch_model), num_samples=800, warmup_steps=300, num_chains=2)
    mcmc.run(torch.tensor(y))
    assert set(mcmc.get_samples()) == {"x"}
    assert_mean_close(mcmc.get_samples(group_by_chain=True)["x"], mean, sd)


def test_a_model_with_a_param_gives_draws_without_autograd_history():
    def model(y):
        centre = pyro.param("centre", torch.zeros(2))
        b = pyro.sample("b", dist.Normal(centre, 1.0).to_event(1))
        pyro.sample("y", dist.Normal(b.sum(-1), 1.0), obs=y)

    pyro.clear_param_store()
    mcmc = MCMC(HMC(model, step_size=0.2, num_steps=3), num_samples=30, warmup_steps=20)
    mcmc.run(torch.tensor(1.0))
    assert not mcmc.kernel.z.requires_grad
    assert not mcmc.get_samples()["b"].requires_grad


def test_pyro_arguments_step_size_none_and_mp_context_are_accepted():
    kernel = HMC(gamma_model, step_size=None, num_steps=3)
    assert kernel.initial_step_size == 1.0 and kernel.trajectory_length == 3.0
    # mp_context names a multiprocessing start method in Pyro; chains run batched here.
    mcmc = MCMC(NUTS(gamma_model), num_samples=5, warmup_steps=5, num_chains=2, mp_context="spawn")
    mcmc.run()
    assert mcmc.get_samples(group_by_chain=True)["s"].shape == (2, 5)


def correlated_pair():
    # (x, y): variances 4 and 4, covariance 3.2 (correlation 0.8); w alone, variance 9.
    x = pyro.sample("x", dist.Normal(0.0, 2.0))
    pyro.sample("y", dist.Normal(0.8 * x, 1.2))
    pyro.sample("w", dist.Normal(0.0, 3.0))


def test_full_mass_blocks_adapt_a_dense_block_and_a_diagonal_rest():
    pyro.set_rng_seed(5)
    kernel = NUTS(correlated_pair, full_mass=[("x", "y")])
    MCMC(kernel, num_samples=1, warmup_steps=400).run()
    blocks = kernel.inverse_mass_matrix
    assert list(blocks) == [("x", "y"), ("w",)]
    pair, rest = blocks[("x", "y")], blocks[("w",)]
    assert pair.shape == (2, 2) and rest.shape == (1,)
    # The last window holds about 200 nearly independent draws: the estimated correlation has a
    # standard error of about (1 - 0.8²) / sqrt(200) = 0.025; four of them is 0.1.
    correlation = pair[0, 1] / (pair[0, 0] * pair[1, 1]).sqrt()
    assert abs(float(correlation) - 0.8) < 0.1
    # Nothing outside the block: w's row of the whole matrix is zero off the diagonal.
    assert torch.count_nonzero(kernel.mass.inverse[0, 2, :2]) == 0
    with pytest.raises(MCMCError, match="'v'"):
        MCMC(NUTS(correlated_pair, full_mass=[("x", "v")]), num_samples=1).run()


def test_nuts_accepts_use_multinomial_sampling_false():
    pyro.set_rng_seed(6)
    mcmc = MCMC(NUTS(gamma_model, use_multinomial_sampling=False), num_samples=5, warmup_steps=5)
    mcmc.run()
    assert mcmc.get_samples()["s"].shape == (5,)


@pytest.mark.parametrize("num_chains, shape", [(1, ()), (2, (2,))])
def test_hook_fn_gets_each_sites_shape_with_one_chain(num_chains, shape):
    seen = []
    mcmc = MCMC(
        NUTS(gamma_model),
        num_samples=3,
        warmup_steps=2,
        num_chains=num_chains,
        hook_fn=lambda kernel, params, stage, i: seen.append((stage, i, params["s"].shape)),
    )
    mcmc.run()
    assert [(stage, i) for stage, i, _ in seen] == [
        ("Warmup", 0),
        ("Warmup", 1),
        ("Sample", 0),
        ("Sample", 1),
        ("Sample", 2),
    ]
    assert {s for _, _, s in seen} == {torch.Size(shape)}


def test_save_params_keeps_the_named_sites_only():
    mcmc = MCMC(NUTS(correlated_pair), num_samples=4, warmup_steps=2, save_params=["w", "x"])
    mcmc.run()
    assert set(mcmc.get_samples()) == {"w", "x"}
    assert {"w", "x"} == {name for name in mcmc.diagnostics() if name in "wxy"}
    with pytest.raises(MCMCError, match="'v'"):
        bad = MCMC(NUTS(correlated_pair), num_samples=2, warmup_steps=0, save_params=["v"])
        bad.run()
        bad.get_samples()


def test_potential_fn_with_the_transforms_of_initialize_model_gives_constrained_draws():
    params, potential_fn, transforms, _ = initialize_model(gamma_model)
    kernel = HMC(potential_fn=potential_fn, transforms=transforms, num_steps=4, step_size=0.3)
    mcmc = MCMC(kernel, num_samples=20, warmup_steps=10, initial_params=params)
    mcmc.run()
    assert bool((mcmc.get_samples()["s"] > 0).all())  # on the Gamma's support, not its log
    with pytest.raises(ValueError, match="transforms"):
        HMC(gamma_model, transforms=transforms)
