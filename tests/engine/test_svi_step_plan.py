"""SVI steps replayed from a recorded plan against the full path they replace.

Two SVI objects start from the same params and the same random state, one with
``plan_steps=False``: every loss and the params after the run must agree (the plan calls the same
operations in the same order, so only rounding may differ). Each test also checks that a plan
was in fact recorded and used, or, for the models a plan must not serve, that none was.
"""

from __future__ import annotations

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.distributions import constraints
from engine.errors import PPLError
from engine.infer import (
    SVI,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceGraph_ELBO,
    TraceMeanField_ELBO,
    config_enumerate,
)
from engine.infer.autoguide import AutoDelta, AutoDiagonalNormal, AutoNormal
from engine.infer.svi_step_plan import PlannedSteps
from engine.optim import Adam
from engine.params import ParamStoreDict

STEPS = PlannedSteps.record_after + 40


def regression(x, y):
    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0]):
        # Written to broadcast over leading dims (vectorised particles): not x @ w.
        mean = (x * w).sum(-1) + b
        pyro.sample("y", dist.Normal(mean, sigma), obs=y)


def regression_data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=generator)
    return x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3 * torch.randn(30, generator=generator)


def coin_model(flips):
    p = pyro.sample("p", dist.Beta(2.0, 2.0))
    with pyro.plate("flips", len(flips)):
        pyro.sample("obs", dist.Bernoulli(p), obs=flips)


def coin_guide(flips):
    a = pyro.param("a", torch.tensor(3.0), constraint=constraints.positive)
    b = pyro.param("b", torch.tensor(3.0), constraint=constraints.positive)
    pyro.sample("p", dist.Beta(a, b))


def switch_model(data):
    # A discrete latent drawn by the guide: its gradient is the score-function estimator's.
    switch = pyro.sample("switch", dist.Bernoulli(0.5))
    loc = pyro.sample("loc", dist.Normal(0.0, 3.0))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(loc + 2.0 * switch, 1.0), obs=data)


def switch_guide(data):
    prob = pyro.param("prob", torch.tensor(0.5), constraint=constraints.unit_interval)
    mean = pyro.param("mean", torch.tensor(0.0))
    pyro.sample("switch", dist.Bernoulli(prob))
    pyro.sample("loc", dist.Normal(mean, 0.5))


@config_enumerate
def mixture(data):
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(2)))
    locs = pyro.sample("locs", dist.Normal(0.0, 5.0).expand([2]).to_event(1))
    with pyro.plate("data", len(data)):
        which = pyro.sample("which", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[which], 1.0), obs=data)


MIXTURE_DATA = torch.randn(40, generator=torch.Generator().manual_seed(1)) + torch.tensor(
    [-3.0, 3.0]
).repeat_interleave(20)


def cases():
    data = regression_data()
    flips = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    switch_data = torch.tensor([2.5, 1.8, 2.2, 3.1])
    return {
        "autonormal": (regression, lambda: AutoNormal(regression), Trace_ELBO(), data),
        "diagonal, meanfield": (
            regression,
            lambda: AutoDiagonalNormal(regression),
            TraceMeanField_ELBO(),
            data,
        ),
        "hand-written guide": (coin_model, lambda: coin_guide, Trace_ELBO(), (flips,)),
        "score function": (switch_model, lambda: switch_guide, Trace_ELBO(), (switch_data,)),
        "particles": (
            regression,
            lambda: AutoNormal(regression),
            Trace_ELBO(num_particles=3),
            data,
        ),
        "vectorized particles": (
            regression,
            lambda: AutoNormal(regression),
            Trace_ELBO(num_particles=3, vectorize_particles=True),
            data,
        ),
        "enumeration": (
            mixture,
            lambda: AutoNormal(pyro.poutine.block(mixture, hide=["which"])),
            TraceEnum_ELBO(max_plate_nesting=1),
            (MIXTURE_DATA,),
        ),
    }


def paired_runs(model, make_guide, elbo, args, steps=STEPS, seed=0):
    """The losses and final params of ``steps`` steps with and without plans, from one start."""
    results = {}
    for plan_steps in (False, True):
        pyro.set_rng_seed(seed)
        store = ParamStoreDict()
        svi = SVI(
            model,
            make_guide(),
            Adam({"lr": 0.02}),
            elbo,
            plan_steps=plan_steps,
            param_store=store,
        )
        losses = [svi.step(*args) for _ in range(steps)]
        params = {name: value.detach().clone() for name, value in store.items()}
        results[plan_steps] = (losses, params, svi)
    return results


@pytest.mark.parametrize("case", list(cases()))
def test_planned_steps_give_the_full_paths_losses_and_params(case):
    model, make_guide, elbo, args = cases()[case]
    results = paired_runs(model, make_guide, elbo, args)
    (full_losses, full_params, _), (planned_losses, planned_params, svi) = (
        results[False],
        results[True],
    )
    assert svi.planned_steps.plans, svi.planned_steps.refused
    plan = next(iter(svi.planned_steps.plans.values()))
    assert plan.replays == STEPS - PlannedSteps.record_after
    torch.testing.assert_close(
        torch.tensor(planned_losses), torch.tensor(full_losses), rtol=1e-5, atol=1e-4
    )
    assert planned_params.keys() == full_params.keys()
    for name in full_params:
        torch.testing.assert_close(planned_params[name], full_params[name], rtol=1e-5, atol=1e-5)


def test_an_elbo_with_state_between_steps_or_a_custom_loss_is_not_planned():
    guide = AutoNormal(regression)
    assert SVI(regression, guide, Adam({"lr": 0.1}), TraceGraph_ELBO()).planned_steps is None
    custom = SVI(regression, guide, Adam({"lr": 0.1}), Trace_ELBO().differentiable_loss)
    assert custom.planned_steps is None


def test_a_scale_param_that_becomes_invalid_in_a_replayed_step_raises_the_full_paths_error():
    def model(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 5.0))
        width = pyro.param("width", torch.tensor(1.0))  # unconstrained: may turn negative
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Normal(loc, width), obs=data)

    def guide(data):
        pyro.sample("loc", dist.Normal(pyro.param("mean", torch.tensor(0.0)), 0.3))

    data = torch.tensor([0.5, 1.5, 1.0])
    store = ParamStoreDict()
    svi = SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO(), param_store=store)
    for _ in range(STEPS):
        svi.step(data)
    assert svi.planned_steps.plans
    store["width"] = torch.tensor(-0.5)
    before = {name: value.detach().clone() for name, value in store.items()}
    with pytest.raises(PPLError) as planned:
        svi.step(data)
    with pytest.raises(PPLError) as full:
        SVI(
            model, guide, Adam({"lr": 0.01}), Trace_ELBO(), plan_steps=False, param_store=store
        ).step(data)
    assert str(planned.value) == str(full.value)
    assert "obs" in str(planned.value) and "scale" in str(planned.value)
    assert {name: value.detach() for name, value in store.items()}.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(store[name].detach(), value)


def test_data_outside_the_support_in_a_replayed_step_raises_the_full_paths_error():
    def model(counts):
        rate = pyro.sample("rate", dist.LogNormal(0.0, 1.0))
        with pyro.plate("data", len(counts)):
            pyro.sample("obs", dist.Poisson(rate), obs=counts)

    guide = AutoNormal(model)
    svi = SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO(), param_store=ParamStoreDict())
    for _ in range(STEPS):
        svi.step(torch.tensor([1.0, 3.0, 2.0]))
    assert svi.planned_steps.plans
    # The same kind of argument (shape, dtype), other values: a count of 2.5 is not a count.
    with pytest.raises(PPLError) as error:
        svi.step(torch.tensor([1.0, 2.5, 2.0]))
    assert "obs" in str(error.value) and "2.5" in str(error.value)


DATA = {"y": torch.tensor([0.3, -0.2, 0.9])}


def global_data_model():
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    with pyro.plate("data", 3):
        pyro.sample("obs", dist.Normal(loc, 1.0), obs=DATA["y"])


def test_a_model_that_reads_a_global_tensor_keeps_the_full_path():
    guide = AutoNormal(global_data_model)
    svi = SVI(
        global_data_model, guide, Adam({"lr": 0.05}), Trace_ELBO(), param_store=ParamStoreDict()
    )
    for _ in range(STEPS):
        svi.step()
    assert not svi.planned_steps.plans
    assert "global" in next(iter(svi.planned_steps.refused.values()))


def test_a_model_that_branches_on_a_value_keeps_the_full_path():
    def model(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        if loc > 0:  # reads the draw's value: the structure may change from step to step
            pyro.sample("extra", dist.Normal(loc, 1.0), obs=torch.tensor(0.0))
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)

    guide = AutoNormal(pyro.poutine.block(model, hide=["extra"]))
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO(), param_store=ParamStoreDict())
    for _ in range(STEPS):
        svi.step(torch.tensor([0.5, 0.1]))
    assert not svi.planned_steps.plans
    assert "data-dependent" in next(iter(svi.planned_steps.refused.values())).lower()


def test_a_recording_over_its_budget_keeps_the_full_path_and_its_losses():
    # A long model (a guide enumerating a long chain) would take minutes to record; a budget of
    # 0 s stands in for it here: the recording stops at its first operation.
    results = {}
    for budget in (PlannedSteps.recording_budget_s, 0.0):
        pyro.set_rng_seed(0)
        svi = SVI(
            regression,
            AutoNormal(regression),
            Adam({"lr": 0.02}),
            Trace_ELBO(),
            param_store=ParamStoreDict(),
        )
        svi.planned_steps.recording_budget_s = budget
        results[budget] = ([svi.step(*regression_data()) for _ in range(STEPS)], svi)
    (planned_losses, planned), (full_losses, refused) = results.values()
    assert planned.planned_steps.plans and not refused.planned_steps.plans
    assert "budget of 0 s" in next(iter(refused.planned_steps.refused.values()))
    torch.testing.assert_close(
        torch.tensor(full_losses), torch.tensor(planned_losses), rtol=1e-5, atol=1e-4
    )


def test_a_plan_whose_model_changed_its_sites_is_dropped_at_the_next_audit():
    settings = {"extra": False}

    def model(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        if settings["extra"]:
            pyro.sample("extra", dist.Normal(loc, 1.0), obs=torch.tensor(2.0))
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)

    guide = AutoNormal(pyro.poutine.block(model, hide=["extra"]))
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO(), param_store=ParamStoreDict())
    data = torch.tensor([0.5, 0.1])
    for _ in range(STEPS):
        svi.step(data)
    assert svi.planned_steps.plans
    settings["extra"] = True
    for _ in range(PlannedSteps.audit_every):
        svi.step(data)
    assert not svi.planned_steps.plans
    assert "changed" in next(iter(svi.planned_steps.refused.values()))


def test_each_kind_of_arguments_has_a_plan_and_a_changing_float_keeps_the_full_path():
    def model(data, annealing=1.0):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(data)), pyro.poutine.scale(scale=annealing):
            pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)

    guide = AutoNormal(model)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO(), param_store=ParamStoreDict())
    for _ in range(STEPS):
        svi.step(torch.zeros(3))
        svi.step(torch.zeros(5))
    assert len(svi.planned_steps.plans) == 2
    planned = dict(svi.planned_steps.plans)
    for step in range(STEPS):
        svi.step(torch.zeros(3), annealing=(step + 1) / STEPS)
    assert svi.planned_steps.plans == planned


def test_a_param_the_loss_does_not_reach_keeps_the_full_path():
    def guide(data):
        pyro.param("unused", torch.zeros(2))
        pyro.sample("loc", dist.Normal(pyro.param("mean", torch.tensor(0.0)), 1.0))

    def model(data):
        pyro.sample("loc", dist.Normal(0.0, 1.0))

    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO(), param_store=ParamStoreDict())
    for _ in range(STEPS):
        svi.step(torch.zeros(1))
    assert not svi.planned_steps.plans
    assert "no gradient" in next(iter(svi.planned_steps.refused.values()))


def test_a_param_deleted_after_the_recording_sends_the_step_to_the_full_path():
    store = ParamStoreDict()
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.05}), Trace_ELBO(), param_store=store)
    flips = torch.tensor([1.0, 0.0, 1.0])
    for _ in range(STEPS):
        svi.step(flips)
    assert svi.planned_steps.plans
    del store["a"]
    svi.step(flips)  # the guide creates "a" afresh at 3, as on the full path
    # Adam's first step moves the unconstrained log(a) by at most the learning rate.
    assert abs(math.log(store["a"].item()) - math.log(3.0)) <= 0.05 + 1e-6


def test_the_recording_never_puts_its_stand_ins_into_the_real_store():
    # A notebook may read a run's params from another thread while a step is being recorded.
    store = ParamStoreDict()
    seen_by_a_reader = []

    def guide(flips):
        seen_by_a_reader.append({type(leaf) for leaf in store.leaves(list(store.keys()))})
        coin_guide(flips)

    svi = SVI(coin_model, guide, Adam({"lr": 0.05}), Trace_ELBO(), param_store=store)
    for _ in range(STEPS):
        svi.step(torch.tensor([1.0, 0.0]))
    assert svi.planned_steps.plans
    assert len(seen_by_a_reader) == PlannedSteps.record_after + 1  # the recording ran it too
    assert all(types <= {torch.nn.Parameter, torch.Tensor} for types in seen_by_a_reader)


def test_a_guide_or_model_given_to_the_svi_after_the_plan_is_recorded_is_the_one_that_runs():
    # Pyro's SVI reads svi.model and svi.guide at every step; a recorded plan of the old pair
    # must not go on training the old guide in their place.
    def model(data):
        centre = pyro.sample("centre", dist.Normal(0.0, 1.0))
        with pyro.plate("data", data.shape[0]):
            pyro.sample("obs", dist.Normal(centre, 1.0), obs=data)

    data = torch.arange(10.0)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = SVI(model, AutoNormal(model), Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(30):
        svi.step(data)
    assert next(iter(svi.planned_steps.plans.values())).replays > 0
    store = pyro.get_param_store()
    before = {name: value.detach().clone() for name, value in store.items()}
    svi.guide = AutoDelta(model)
    for _ in range(30):
        svi.step(data)
    for name, value in before.items():
        assert torch.equal(store[name].detach(), value), name
    assert float(store["AutoDelta.centre"].detach()) > 1.0  # trained towards the data's mean, 4.5

    def tighter_model(data):
        centre = pyro.sample("centre", dist.Normal(0.0, 1.0))
        with pyro.plate("data", data.shape[0]):
            pyro.sample("obs", dist.Normal(centre, 0.1), obs=data)

    svi.model = tighter_model
    expected = -(
        dist.Normal(0.0, 1.0).log_prob(store["AutoDelta.centre"].detach())
        + dist.Normal(store["AutoDelta.centre"].detach(), 0.1).log_prob(data).sum()
    )
    assert math.isclose(svi.evaluate_loss(data), float(expected), rel_tol=1e-5)
    assert math.isclose(svi.step(data), float(expected), rel_tol=1e-5)
