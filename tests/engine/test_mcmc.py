"""HMC and NUTS against known answers, and MCMC's results, errors, progress and interruption.

Tolerances come from the draws themselves: a posterior mean is compared within a few Monte Carlo
standard errors (``mcse_mean``, which accounts for autocorrelation), a posterior sd within a few
of its own standard errors (about sd / sqrt(2 ESS)).
"""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.errors import MCMCError
from engine.infer import HMC, MCMC, NUTS, Predictive
from engine.infer.autoguide import init_to_value
from engine.infer.mcmc import Potential
from engine.infer.mcmc.adaptation import adaptation_windows
from engine.infer.mcmc.diagnostics import ess_bulk, mcse_mean, split_rhat
from engine.infer.mcmc.mass_matrix import WelfordCovariance
from tests.eight_schools import (
    SIGMA,
    Y,
    assert_matches_the_reference_posterior,
    schools_noncentred,
)

DATA = torch.tensor([1.2, 0.4, 2.3, 1.9, 0.8, 1.5, 1.1, 2.0, 0.2, 1.7])
PRIOR_SD = 3.0


def conjugate_model(data):
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=data)


def exact_posterior(data):
    precision = 1 / PRIOR_SD**2 + len(data)
    return data.sum().item() / precision, 1 / math.sqrt(precision)


def assert_matches(draws, mean, sd, mean_se=4.0, sd_se=4.0):
    """``draws`` (chains, draws) against a known mean and sd."""
    mcse = mcse_mean(draws).item()
    assert abs(draws.mean().item() - mean) < mean_se * mcse, (draws.mean(), mean, mcse)
    ess = ess_bulk(draws).item()
    sd_error = sd / math.sqrt(2 * ess)
    assert abs(draws.std().item() - sd) < sd_se * sd_error, (draws.std(), sd, sd_error)


@pytest.mark.parametrize(
    "kernel",
    [
        lambda: NUTS(conjugate_model),
        # Not a trajectory near half a period of this Gaussian (then x -> -x, and HMC stalls).
        lambda: HMC(conjugate_model, trajectory_length=1.0),
        lambda: NUTS(conjugate_model, full_mass=True),
    ],
    ids=["nuts", "hmc", "nuts-dense"],
)
def test_conjugate_normal_posterior(kernel):
    pyro.set_rng_seed(0)
    mcmc = MCMC(kernel(), num_samples=600, warmup_steps=300, num_chains=3)
    mcmc.run(DATA)
    mu = mcmc.get_samples(group_by_chain=True)["mu"]
    assert mu.shape == (3, 600)
    mean, sd = exact_posterior(DATA)
    assert_matches(mu, mean, sd)
    assert split_rhat(mu).item() < 1.01
    assert mcmc.kernel.potential.batching == "plate"  # all chains in one run of the model


def test_acceptance_rate_is_adapted_toward_the_target():
    pyro.set_rng_seed(1)
    mcmc = MCMC(NUTS(conjugate_model, target_accept_prob=0.8), 500, 300, num_chains=2)
    mcmc.run(DATA)
    rates = mcmc.diagnostics()["acceptance rate"]
    # Dual averaging aims the *warm-up* average at 0.8; with the averaged step size sampling
    # typically runs a little above it.
    assert all(0.7 < rate < 0.97 for rate in rates.values()), rates


def test_correlated_gaussian_with_dense_mass_matrix():
    cov = torch.tensor([[1.0, 0.95], [0.95, 1.0]]) * torch.tensor([[1.0, 3.0], [3.0, 9.0]])
    loc = torch.tensor([1.0, -2.0])

    def model():
        pyro.sample("x", dist.MultivariateNormal(loc, cov))

    pyro.set_rng_seed(2)
    kernel = NUTS(model, full_mass=True)
    mcmc = MCMC(kernel, num_samples=800, warmup_steps=500, num_chains=2)
    mcmc.run()
    x = mcmc.get_samples(group_by_chain=True)["x"]
    for i in range(2):
        assert_matches(x[..., i], loc[i].item(), cov[i, i].sqrt().item())
    # Warm-up learnt the covariance: the inverse mass of each chain has the target correlation.
    inverse = kernel.mass.inverse
    correlation = inverse[:, 0, 1] / (inverse[:, 0, 0] * inverse[:, 1, 1]).sqrt()
    assert torch.all((correlation - 0.95).abs() < 0.05), correlation
    assert torch.allclose(inverse[:, 1, 1] / inverse[:, 0, 0], torch.tensor(9.0), rtol=0.35)


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager", "compiled"])
def test_eight_schools_matches_the_reference_posterior(jit_compile):
    pyro.set_rng_seed(3)
    mcmc = MCMC(NUTS(schools_noncentred, jit_compile=jit_compile), 1000, 500, num_chains=4)
    mcmc.run(Y, SIGMA)
    assert_matches_the_reference_posterior(mcmc.get_samples(group_by_chain=True))


def test_deterministic_sites_and_supports_are_respected():
    def model():
        scale = pyro.sample("scale", dist.HalfNormal(1.0))
        weights = pyro.sample("weights", dist.Dirichlet(torch.ones(3)))
        pyro.deterministic("double", 2 * scale)
        pyro.deterministic("constant", torch.tensor([1.0, 2.0]))
        pyro.sample("obs", dist.Normal(weights[0], scale), obs=torch.tensor(0.3))

    pyro.set_rng_seed(4)
    mcmc = MCMC(NUTS(model), num_samples=100, warmup_steps=50, num_chains=2)
    mcmc.run()
    samples = mcmc.get_samples()
    assert samples["scale"].shape == (200,) and bool((samples["scale"] > 0).all())
    assert samples["weights"].shape == (200, 3)
    assert torch.allclose(samples["weights"].sum(-1), torch.ones(200), atol=1e-5)
    assert torch.allclose(samples["double"], 2 * samples["scale"])
    assert samples["constant"].shape == (200, 2)
    # ``weights[0]`` would index the chain dim of a plate-batched run: vmap batches it instead.
    assert mcmc.kernel.potential.batching == "vmap"


def test_get_samples_shapes_and_subsets():
    pyro.set_rng_seed(5)
    mcmc = MCMC(NUTS(conjugate_model), num_samples=50, warmup_steps=20, num_chains=2)
    mcmc.run(DATA)
    assert mcmc.get_samples()["mu"].shape == (100,)
    assert mcmc.get_samples(group_by_chain=True)["mu"].shape == (2, 50)
    subset = mcmc.get_samples(num_samples=30)["mu"]
    assert subset.shape == (30,)
    assert set(subset.tolist()) <= set(mcmc.get_samples()["mu"].tolist())


def test_summary_diagnostics_and_arviz(capsys):
    az = pytest.importorskip("arviz")
    pyro.set_rng_seed(6)
    mcmc = MCMC(NUTS(conjugate_model), num_samples=200, warmup_steps=100, num_chains=2)
    mcmc.run(DATA)
    table = mcmc.summary(prob=0.8)
    printed = capsys.readouterr().out
    assert "mu" in printed and "10.0%" in printed and "r_hat" in printed
    assert set(table["mu"]) >= {"mean", "std", "median", "10.0%", "90.0%", "ess_bulk", "r_hat"}
    diagnostics = mcmc.diagnostics()
    assert set(diagnostics["divergences"]) == {"chain 0", "chain 1"}
    assert diagnostics["mu"]["r_hat"].item() < 1.05
    assert all(depth >= 1 for depth in diagnostics["tree depth"].values())
    data = mcmc.to_arviz()
    assert data.posterior["mu"].shape == (2, 200)
    assert {"diverging", "step_size", "tree_depth", "acceptance_rate", "energy"} <= set(
        data.sample_stats.data_vars
    )
    assert "mu" in az.summary(data).index


def test_predictive_on_mcmc_draws():
    pyro.set_rng_seed(7)
    mcmc = MCMC(NUTS(conjugate_model), num_samples=100, warmup_steps=50)
    mcmc.run(DATA)
    predictive = Predictive(conjugate_model, posterior_samples=mcmc.get_samples())
    obs = predictive(DATA)["obs"]
    assert obs.shape == (100, len(DATA))
    mean, _ = exact_posterior(DATA)
    assert abs(obs.mean().item() - mean) < 0.5


def test_potential_fn_and_initial_params():
    def potential(params):
        return 0.5 * (params["x"] ** 2).sum()

    pyro.set_rng_seed(8)
    initial = {"x": torch.zeros(2, 2)}  # two chains, two dims
    mcmc = MCMC(NUTS(potential_fn=potential), 400, 200, num_chains=2, initial_params=initial)
    mcmc.run()
    x = mcmc.get_samples(group_by_chain=True)["x"]
    assert x.shape == (2, 400, 2)
    for i in range(2):
        assert_matches(x[..., i], 0.0, 1.0)


@pytest.mark.parametrize("kernel_class", [HMC, NUTS])
def test_a_potential_fn_returning_one_number_with_a_size_one_dim(kernel_class):
    # Pyro accepts `energy[None]`; it used to be broadcast against the chains and the sampler
    # never finished.
    target = torch.distributions.Normal(torch.tensor([3.0, -1.0]), torch.tensor([1.0, 0.5]))

    def potential(params):
        return -target.log_prob(params["x"]).sum()[None]

    pyro.set_rng_seed(10)
    initial = {"x": torch.zeros(2)}
    mcmc = MCMC(kernel_class(potential_fn=potential), 400, 200, initial_params=initial)
    mcmc.run()
    x = mcmc.get_samples(group_by_chain=True)["x"]
    assert x.shape == (1, 400, 2)
    assert_matches(x[..., 0], 3.0, 1.0)
    assert_matches(x[..., 1], -1.0, 0.5)


def test_a_potential_fn_returning_several_numbers_is_refused():
    def potential(params):
        return 0.5 * params["x"] ** 2  # one energy per coordinate: the sum was forgotten

    mcmc = MCMC(NUTS(potential_fn=potential), 10, 10, initial_params={"x": torch.zeros(2)})
    with pytest.raises(MCMCError, match=r"shape \(2,\).*one number.*\.sum\(\)"):
        mcmc.run()


def test_compiled_potential_gives_the_same_posterior():
    pyro.set_rng_seed(9)
    kernel = NUTS(conjugate_model, jit_compile=True, jit_options={"backend": "aot_eager"})
    mcmc = MCMC(kernel, num_samples=500, warmup_steps=300, num_chains=2)
    mcmc.run(DATA)
    mean, sd = exact_posterior(DATA)
    assert_matches(mcmc.get_samples(group_by_chain=True)["mu"], mean, sd)


def test_progress_events_report_every_chain():
    events = []
    mcmc = MCMC(NUTS(conjugate_model), num_samples=15, warmup_steps=10, num_chains=2)
    mcmc.progress.subscribe(events.append)
    mcmc.run(DATA)
    assert [event.step for event in events[:-1]] == list(range(1, 26))
    phases = ["warmup"] * 10 + ["sample"] * 15 + ["done"]
    assert [event.info["phase"] for event in events] == phases
    chains = events[-2].info["chains"]
    assert set(chains) >= {"step_size", "tree_depth", "divergences", "accept_prob"}
    assert all(len(values) == 2 for values in chains.values())


def test_keyboard_interrupt_keeps_the_draws_so_far():
    def stop_at_draw_10(kernel, params, stage, iteration):
        if stage == "Sample" and iteration == 10:
            raise KeyboardInterrupt

    mcmc = MCMC(NUTS(conjugate_model), 100, 20, num_chains=2, hook_fn=stop_at_draw_10)
    with pytest.warns(RuntimeWarning, match="interrupted after 11 of 100"):
        mcmc.run(DATA)
    assert mcmc.interrupted
    assert mcmc.get_samples(group_by_chain=True)["mu"].shape == (2, 11)


def test_a_model_that_reduces_over_a_batch_dim_is_batched_by_vmap():
    def mixing():
        w = pyro.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        # Under the chain plate w.mean() would average over the chains too; vmap keeps them apart.
        pyro.sample("y", dist.Normal(w.mean(), 1.0), obs=torch.tensor(1.0))

    potential = Potential(mixing)
    assert potential.batching == "vmap"
    z = torch.randn(2, 3)
    alone = torch.cat([potential.energy(row[None]) for row in z])
    assert torch.allclose(potential.energy(z), alone)


def test_a_model_that_branches_on_a_value_runs_chain_by_chain():
    def branching():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        scale = 1.0 if x > 0 else 2.0  # a Python branch on a value: nothing can batch this
        pyro.sample("y", dist.Normal(x, scale), obs=torch.tensor(0.5))

    pyro.set_rng_seed(12)
    mcmc = MCMC(NUTS(branching), num_samples=20, warmup_steps=20, num_chains=2)
    with pytest.warns(RuntimeWarning, match="branches on a value"):
        mcmc.run()
    assert mcmc.kernel.potential.batching == "none"
    assert mcmc.get_samples(group_by_chain=True)["x"].shape == (2, 20)


def test_deterministic_values_keep_each_chain_apart():
    def stacked():
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        b = pyro.sample("b", dist.Normal(0.0, 1.0))
        pyro.deterministic("ab", torch.stack([a, b]))

    values = Potential(stacked).site_values(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert torch.equal(values["ab"], torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))


def test_support_that_depends_on_another_site():
    def nested():
        a = pyro.sample("a", dist.Exponential(1.0))
        pyro.sample("b", dist.Uniform(0.0, a))

    # No data: the draws follow the prior, a ~ Exponential(1) and b | a ~ Uniform(0, a), so
    # E[a] = 1 and E[b] = 1/2; b < a in every draw.
    pyro.set_rng_seed(11)
    mcmc = MCMC(NUTS(nested), num_samples=800, warmup_steps=400, num_chains=2)
    mcmc.run()
    samples = mcmc.get_samples(group_by_chain=True)
    assert bool((samples["b"] < samples["a"]).all()) and bool((samples["b"] > 0).all())
    for name, mean in (("a", 1.0), ("b", 0.5)):
        draws = samples[name]
        assert abs(draws.mean().item() - mean) < 4 * mcse_mean(draws).item(), name


def test_interrupt_during_warmup_leaves_empty_draws_with_their_shapes():
    def stop_in_warmup(kernel, params, stage, iteration):
        if stage == "Warmup" and iteration == 3:
            raise KeyboardInterrupt

    mcmc = MCMC(NUTS(conjugate_model), 10, 10, num_chains=2, hook_fn=stop_in_warmup)
    with pytest.warns(RuntimeWarning, match="interrupted after 0 of 10"):
        mcmc.run(DATA)
    assert mcmc.get_samples(group_by_chain=True)["mu"].shape == (2, 0)


def test_an_error_during_sampling_keeps_the_draws_so_far():
    def fail_at_draw_5(kernel, params, stage, iteration):
        assert set(params) == {"mu"} and params["mu"].shape == (2,)  # unconstrained, per chain
        if stage == "Sample" and iteration == 5:
            raise ValueError("listener broke")

    mcmc = MCMC(NUTS(conjugate_model), 20, 5, num_chains=2, hook_fn=fail_at_draw_5)
    with pytest.raises(ValueError, match="listener broke"):
        mcmc.run(DATA)
    assert mcmc.get_samples(group_by_chain=True)["mu"].shape == (2, 6)


def test_progress_events_carry_current_values_when_asked():
    events = []
    mcmc = MCMC(NUTS(conjugate_model), num_samples=3, warmup_steps=2, num_chains=2)
    mcmc.progress.subscribe(events.append, wants_params=True)
    mcmc.run(DATA)
    assert events[-2].params["mu"].shape == (2,)
    assert len(events[-2].info["chains"]["lp"]) == 2


def test_initial_params_with_no_finite_density_name_the_site():
    def model():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Uniform(x - 10.0, x + 10.0), obs=torch.tensor(5.0))

    # At x = 40 the observation lies outside its Uniform's support.
    mcmc = MCMC(NUTS(model), 10, initial_params={"x": torch.tensor(40.0)})
    with pytest.raises(MCMCError, match=r"chain 0.*'obs'"):
        mcmc.run()


def test_pyro_argument_order_and_unsupported_options():
    kernel = NUTS(conjugate_model, None, 0.5, False)  # Pyro: step_size, adapt_step_size
    assert kernel.initial_step_size == 0.5 and not kernel.adapt_step_size
    with pytest.raises(ValueError, match="full_mass"):
        NUTS(conjugate_model, full_mass="mu")


def test_discrete_latent_site_that_cannot_be_enumerated_is_refused_by_name():
    def model():
        pyro.sample("count", dist.Poisson(3.0))  # discrete, and no finite support to sum

    with pytest.raises(MCMCError, match=r"'count'.*discrete"):
        MCMC(NUTS(model), 10).run()


def test_subsampling_plate_is_refused():
    def model():
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 10, subsample_size=5):
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=torch.zeros(5))

    with pytest.raises(MCMCError, match=r"'data'.*subsample_size"):
        MCMC(NUTS(model), 10).run()


def test_start_without_finite_density_names_the_site():
    def model():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(x, 1.0), obs=torch.tensor(float("inf")))

    with pytest.raises(MCMCError, match=r"'obs'.*init_to_value"):
        MCMC(NUTS(model), 10).run()


def test_initial_params_of_the_wrong_shape_are_refused():
    mcmc = MCMC(NUTS(conjugate_model), 10, num_chains=2, initial_params={"mu": torch.zeros(3)})
    with pytest.raises(MCMCError, match=r"'mu'.*\(3,\).*\(2,\)"):
        mcmc.run(DATA)


def test_init_strategy_places_the_chains():
    kernel = NUTS(conjugate_model, init_strategy=init_to_value(values={"mu": 7.0}))
    mcmc = MCMC(kernel, num_samples=1, warmup_steps=0, num_chains=2)
    kernel.setup_chains(2, 0, (DATA,), {})
    assert torch.allclose(kernel.z, torch.full((2, 1), 7.0))
    assert mcmc.kernel is kernel


def test_results_before_run_are_an_error():
    with pytest.raises(RuntimeError, match=r"call mcmc\.run"):
        MCMC(NUTS(conjugate_model), 10).get_samples()


def test_adaptation_windows_follow_stan():
    assert adaptation_windows(500) == [(75, 100), (100, 150), (150, 250), (250, 450)]
    assert adaptation_windows(150) == [(75, 100)]
    assert adaptation_windows(40) == [(6, 36)]
    assert adaptation_windows(10) == []


def test_welford_covariance_matches_torch():
    draws = torch.randn(2, 200, 3) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.2], [0, 0, 2.0]])
    dense = WelfordCovariance(2, 3, dense=True)
    diagonal = WelfordCovariance(2, 3, dense=False)
    for i in range(200):
        dense.update(draws[:, i])
        diagonal.update(draws[:, i])
    for chain in range(2):
        expected = torch.cov(draws[chain].T)
        assert torch.allclose(dense.covariance(regularize=False)[chain], expected, atol=1e-5)
        assert torch.allclose(diagonal.covariance(regularize=False)[chain], expected.diag())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nuts_runs_on_cuda_tensors():
    def model(data):
        # The prior lives where the data lives, so every value does.
        mu = pyro.sample("mu", dist.Normal(torch.zeros((), device=data.device), PRIOR_SD))
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=data)

    pyro.set_rng_seed(10)
    mcmc = MCMC(NUTS(model), num_samples=300, warmup_steps=200, num_chains=2)
    mcmc.run(DATA.cuda())
    mu = mcmc.get_samples(group_by_chain=True)["mu"]
    assert mu.is_cuda
    mean, sd = exact_posterior(DATA)
    assert_matches(mu.cpu(), mean, sd)


def test_mcmc_run_inside_an_outer_trace_leaves_it_empty():
    # The sampler's runs of the model are its own business (as in Pyro): an enclosing
    # poutine.trace records none of their sites, so two runs there raise no duplicate names.
    from engine import poutine
    from engine.infer.mcmc.rwkernel import RandomWalkKernel

    kernels = [
        NUTS(conjugate_model),  # a batched kernel
        RandomWalkKernel(conjugate_model),  # a one-chain kernel
    ]
    for kernel in kernels:
        with poutine.trace() as outer:
            for _ in range(2):
                mcmc = MCMC(kernel, num_samples=5, warmup_steps=5, disable_progbar=True)
                mcmc.run(DATA)
        assert len(outer.trace.nodes) == 0
        assert mcmc.get_samples()["mu"].shape == (5,)
