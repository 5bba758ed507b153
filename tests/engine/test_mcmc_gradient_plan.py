"""The recorded plan of the MCMC potential's gradient against the full path it replaces.

The plan must give the full path's energy and gradient (to float rounding) at points other than
the one it was recorded at, for every kind of site and way of batching chains; it must never
serve a model whose sites depend on a value or change between runs, nor an evaluation made while
distributions check values.
"""

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.distributions.validation import trusted_run
from engine.errors import PPLError
from engine.infer import MCMC, NUTS, config_enumerate
from engine.infer.autoguide import init_to_value
from engine.infer.mcmc.flat_layout import FlatLayout
from engine.infer.mcmc.gradient_plan import PlannedGradient
from engine.infer.mcmc.potential import Potential
from tests.eight_schools import SIGMA, Y, schools_centred, schools_noncentred


def logistic(x, y):
    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=x @ w + b), obs=y)


def simplex(choices):
    p = pyro.sample("p", dist.Dirichlet(torch.ones(3)))
    with pyro.plate("data", len(choices)):
        pyro.sample("choices", dist.Categorical(p), obs=choices)


def factored():
    x = pyro.sample("x", dist.Normal(0.0, 2.0))
    pyro.factor("penalty", -((x - 1.0) ** 2))


def scaled_and_masked(data):
    mu = pyro.sample("mu", dist.Normal(0.0, 3.0))
    s = pyro.sample("s", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", len(data)), poutine.scale(scale=2.5):
        pyro.sample("obs", dist.Normal(mu, s), obs=data)
    with poutine.mask(mask=torch.tensor([True, False, True])), pyro.plate("more", 3):
        pyro.sample("extra", dist.Cauchy(mu, s), obs=torch.tensor([0.5, 9.0, -0.2]))


def mixing():
    w = pyro.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    # w.mean() would mix the chains under the chain plate: this model is batched by vmap.
    pyro.sample("y", dist.Normal(w.mean(), 1.0), obs=torch.tensor(1.0))


def in_place():
    x = pyro.sample("x", dist.Normal(0.0, 1.0))
    offset = torch.tensor(1.0)
    offset.mul_(2.0)  # a plan that shared this literal between calls would double it each time
    pyro.sample("y", dist.Normal(x + offset, 1.0), obs=torch.tensor(2.5))


@config_enumerate
def mixture(data):
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    with pyro.plate("data", len(data)):
        shifted = pyro.sample("shifted", dist.Bernoulli(0.4))
        pyro.sample("obs", dist.Normal(mu + 3.0 * shifted, 1.0), obs=data)


def logistic_data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=generator)
    y = torch.bernoulli(torch.sigmoid(x @ torch.tensor([1.0, -2.0, 0.5])), generator=generator)
    return x, y


MODELS = {
    "schools-centred": (schools_centred, (Y, SIGMA), "plate"),
    "schools-noncentred": (schools_noncentred, (Y, SIGMA), "plate"),
    "logistic": (logistic, logistic_data(), "vmap"),  # x @ w: only vmap batches it
    "simplex": (simplex, (torch.tensor([0, 2, 1, 1, 2, 1]),), "plate"),
    "factor": (factored, (), "plate"),
    "scale-mask": (scaled_and_masked, (torch.tensor([0.3, -1.2, 2.0, 0.7]),), "plate"),
    "vmap": (mixing, (), "vmap"),
    "in-place": (in_place, (), "plate"),
    "enumerated": (mixture, (torch.tensor([-0.4, 0.3, 2.9, 3.6]),), "plate"),
}


def drive_to_plan(potential: Potential, z: torch.Tensor) -> None:
    """Evaluate ``z`` as often as the planner waits for before it records a plan."""
    for _ in range(PlannedGradient.record_after):
        potential.energy_and_grad(z)


def full_path(potential: Potential, z: torch.Tensor):
    return FlatLayout.energy_and_grad(potential, z)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("chains", [1, 4])
def test_the_plan_gives_the_full_paths_energy_and_gradient(name, chains):
    model, args, batching = MODELS[name]
    pyro.set_rng_seed(1)
    potential = Potential(model, args)
    assert potential.batching == batching
    generator = torch.Generator().manual_seed(2)
    with trusted_run():
        drive_to_plan(potential, torch.randn(chains, potential.num_latent, generator=generator))
        assert len(potential._planned_gradient.plans) == 1, potential._planned_gradient.refused
        for _ in range(5):  # points other than the one recorded at
            z = 1.5 * torch.randn(chains, potential.num_latent, generator=generator)
            energy, grad = potential.energy_and_grad(z)
            full_energy, full_grad = full_path(potential, z)
            torch.testing.assert_close(energy, full_energy, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(grad, full_grad, rtol=1e-5, atol=1e-5)


def test_the_plan_does_not_run_the_model():
    runs = []

    def counted(y, sigma):
        runs.append(1)
        schools_noncentred(y, sigma)

    potential = Potential(counted, (Y, SIGMA))
    z = torch.zeros(4, potential.num_latent)
    with trusted_run():
        drive_to_plan(potential, z)
        before = len(runs)
        for _ in range(10):
            potential.energy_and_grad(z)
    assert len(runs) == before


def test_a_model_that_branches_on_a_value_keeps_the_full_path():
    def branching(data):
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        if x > 0:  # the sites of a run depend on where x is
            pyro.sample("obs", dist.Normal(x, 1.0), obs=data)
        else:
            pyro.factor("below", 2.0 * x)

    potential = Potential(branching, (torch.tensor(0.5),))
    assert potential.batching == "none"
    positive, negative = torch.tensor([[0.8], [1.3]]), torch.tensor([[-0.7], [-0.2]])
    with trusted_run():
        drive_to_plan(potential, positive)
        assert potential._planned_gradient.plans == {}
        assert potential._planned_gradient.refused
        # U(x) = x²/2 - log N(0.5; x, 1) above 0, x²/2 - 2x below (constants aside), so the
        # gradient is 2x - 0.5 above 0 and x - 2 below: a plan recorded above would be wrong here.
        _, grad_positive = potential.energy_and_grad(positive)
        _, grad_negative = potential.energy_and_grad(negative)
    torch.testing.assert_close(grad_positive, 2 * positive - 0.5)
    torch.testing.assert_close(grad_negative, negative - 2.0)


def test_a_model_whose_sites_change_between_runs_is_refused():
    runs = []

    def restless():
        runs.append(1)
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        if len(runs) % 2:  # Python state, not a value: the recording cannot see it
            pyro.factor("sometimes", -x)

    potential = Potential(restless)
    with trusted_run():
        drive_to_plan(potential, torch.zeros(2, 1))
    assert potential._planned_gradient.plans == {}
    assert "other sites" in next(iter(potential._planned_gradient.refused.values()))


def test_a_plan_is_dropped_when_the_model_changes_after_the_recording():
    late = {"factor": False}

    def changes_later():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        if late["factor"]:  # Python state the recording cannot see
            pyro.factor("late", -3.0 * x)

    potential = Potential(changes_later)
    z = torch.tensor([[0.5], [-1.0]])
    with trusted_run():
        drive_to_plan(potential, z)
        assert len(potential._planned_gradient.plans) == 1
        late["factor"] = True
        for _ in range(PlannedGradient.audit_every):  # the last one runs the full path too
            potential.energy_and_grad(z)
        assert potential._planned_gradient.plans == {}
        assert "changed after" in next(iter(potential._planned_gradient.refused.values()))
        _, grad = potential.energy_and_grad(z)
    torch.testing.assert_close(grad, z + 3.0)  # U(x) = x²/2 + 3x + const


def test_value_checks_keep_the_full_path():
    def scale_can_be_negative():
        s = pyro.sample("s", dist.Normal(1.0, 1.0))
        pyro.sample("y", dist.Normal(0.0, s), obs=torch.tensor(0.3))

    potential = Potential(scale_can_be_negative, init_strategy=init_to_value(values={"s": 1.0}))
    with trusted_run():
        drive_to_plan(potential, torch.ones(1, 1))
        assert len(potential._planned_gradient.plans) == 1
        # Unchecked, a negative scale gives a NaN density, as the full path's does.
        energy, _ = potential.energy_and_grad(torch.tensor([[-1.0]]))
    assert torch.isnan(energy).all()
    # Checked (validation on, outside the sampler), the model runs and its distribution refuses.
    with pytest.raises(PPLError, match=r"'scale'.* must be positive"):
        potential.energy_and_grad(torch.tensor([[-1.0]]))


def test_a_distribution_that_checks_values_in_the_sampler_is_planned_with_its_checks():
    def heavy_tailed(data):
        mu = pyro.sample("mu", dist.Normal(0.0, 3.0))
        with pyro.plate("data", len(data)):
            # torch's StudentT builds a Chi2 that checks its arguments even in the sampler's
            # unchecked runs: the plan records that check as one of its outputs.
            pyro.sample("obs", dist.StudentT(4.0, mu, 1.0), obs=data)

    potential = Potential(heavy_tailed, (torch.tensor([0.5, -1.0, 2.0]),))
    z = torch.tensor([[0.3], [1.0], [-2.0]])
    with trusted_run():
        drive_to_plan(potential, z)
        assert len(potential._planned_gradient.plans) == 1, potential._planned_gradient.refused
        energy, _ = potential.energy_and_grad(z * 0.5)
    torch.testing.assert_close(
        energy,
        -torch.stack(
            [
                dist.Normal(0.0, 3.0).log_prob(m)
                + dist.StudentT(4.0, m, 1.0).log_prob(torch.tensor([0.5, -1.0, 2.0])).sum()
                for m in z[:, 0] * 0.5
            ]
        ),
    )


def test_a_point_that_fails_a_check_recorded_in_the_plan_goes_to_the_full_path():
    def learnt_tails(data):
        df = pyro.sample("df", dist.Gamma(2.0, 0.5))
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.StudentT(df, 0.0, 1.0), obs=data)

    potential = Potential(learnt_tails, (torch.tensor([0.5, -1.0, 2.0]),))
    z = torch.tensor([[0.3], [1.0], [-2.0]])
    with trusted_run():
        drive_to_plan(potential, z)
        assert len(potential._planned_gradient.plans) == 1, potential._planned_gradient.refused
        nan_df = torch.tensor([[0.3], [float("nan")], [-2.0]])
        with pytest.raises(PPLError) as planned:
            potential.energy_and_grad(nan_df)
        with pytest.raises(PPLError) as full:
            potential._planned_gradient.full(nan_df)
    assert str(planned.value) == str(full.value)
    assert "df" in str(full.value)


def test_nuts_draws_the_same_chains_with_and_without_the_plan(monkeypatch):
    def run():
        pyro.set_rng_seed(5)
        mcmc = MCMC(NUTS(schools_noncentred), num_samples=60, warmup_steps=60, num_chains=3)
        mcmc.run(Y, SIGMA)
        return mcmc

    planned = run()
    assert len(planned.kernel.potential._planned_gradient.plans) == 1
    monkeypatch.setattr(PlannedGradient, "max_plans", 0)
    full = run()
    assert full.kernel.potential._planned_gradient.plans == {}
    # The plan replays the same operations and draws no random numbers: the same chains.
    for name, draws in planned.get_samples().items():
        torch.testing.assert_close(draws, full.get_samples()[name], rtol=1e-4, atol=1e-4)
