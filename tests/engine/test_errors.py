"""Every user error of the engine core: a clear exception naming site, plates, shapes and fix."""

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.distributions import constraints
from engine.errors import (
    DistributionArgumentError,
    ParamError,
    PlateError,
    ShapeError,
    SiteNameError,
    SupportError,
)


def test_batch_shape_that_does_not_fit_the_plate():
    def model():
        with pyro.plate("data", 5):
            pyro.sample("x", dist.Normal(torch.zeros(3), 1.0))

    with pytest.raises(ShapeError) as info:
        model()
    message = str(info.value)
    for fragment in ["'x'", "plate 'data'", "(3,)", "size 5", "dim -1", "Fix"]:
        assert fragment in message
    assert isinstance(info.value, ValueError)


def test_subsampled_plate_mismatch_hints_at_indexing():
    data = torch.zeros(100)

    def model():
        with pyro.plate("data", 100, subsample_size=10):
            pyro.sample("obs", dist.Normal(0.0, 1.0), obs=data)

    with pytest.raises(ShapeError, match=r"data\[idx\]"):
        model()


def test_observation_that_would_broadcast_into_a_matrix():
    y = torch.zeros(4, 1)

    def model():
        with pyro.plate("data", 4):
            pyro.sample("y", dist.Normal(torch.zeros(4), 1.0), obs=y)

    with pytest.raises(ShapeError) as info:
        poutine.trace(model).get_trace()
    message = str(info.value)
    for fragment in ["'y'", "plate 'data'", "(4, 1)", "(4,)", "(4, 4)", "squeeze(-1)"]:
        assert fragment in message


def test_observation_with_extra_leading_dims_outside_a_plate_is_refused_by_the_elbo():
    # Scored as 10 independent draws by a trace (as Pyro does), but the ELBO asks for the plate
    # that says so: TraceGraph and enumeration would otherwise misread the dim.
    def model():
        pyro.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(10))

    trace = poutine.trace(model).get_trace()
    assert trace.log_prob_sum().item() == pytest.approx(
        10 * dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.0)).item()
    )
    with pytest.raises(ShapeError, match="belongs to no plate"):
        pyro.infer.Trace_ELBO().loss(model, lambda: None)


def test_observation_with_a_wrong_event_shape():
    def model():
        pyro.sample("v", dist.MultivariateNormal(torch.zeros(3), torch.eye(3)), obs=torch.zeros(2))

    with pytest.raises(ShapeError, match="event shape"):
        poutine.trace(model).get_trace()


def test_observations_that_fit_are_accepted():
    def model():
        with pyro.plate("data", 4):
            pyro.sample("a", dist.Normal(torch.zeros(4), 1.0), obs=torch.zeros(4))
            pyro.sample("b", dist.Normal(torch.zeros(4), 1.0), obs=torch.tensor(0.0))
            pyro.sample("c", dist.Normal(0.0, 1.0).expand([2, 4]), obs=torch.zeros(4))

    poutine.trace(model).get_trace()


def test_duplicate_site_name():
    def model():
        for _ in range(2):
            pyro.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(SiteNameError) as info:
        poutine.trace(model).get_trace()
    assert "'x'" in str(info.value) and 'f"x_{i}"' in str(info.value)


def test_sample_and_param_sharing_a_name():
    def model():
        pyro.param("z", torch.zeros(()))
        pyro.sample("z", dist.Normal(0.0, 1.0))

    with pytest.raises(SiteNameError, match="param site"):
        poutine.trace(model).get_trace()


def test_a_subsampled_plate_built_twice():
    def model():
        with pyro.plate("data", 100, subsample_size=5):
            pass
        with pyro.plate("data", 100, subsample_size=5):
            pass

    with pytest.raises(SiteNameError, match="re-enter"):
        poutine.trace(model).get_trace()


def test_plate_dim_collision():
    def model():
        with pyro.plate("rows", 3, dim=-1), pyro.plate("cols", 4, dim=-1):
            pass

    with pytest.raises(PlateError) as info:
        model()
    assert "'cols'" in str(info.value) and "'rows'" in str(info.value)
    assert "dim -1" in str(info.value)


def test_nested_plates_with_the_same_name():
    with pytest.raises(PlateError, match="same name"), pyro.plate("p", 3), pyro.plate("p", 3):
        pass


def test_same_plate_name_with_two_sizes():
    def model():
        with pyro.plate("data", 3):
            pyro.sample("a", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 4):
            pyro.sample("b", dist.Normal(0.0, 1.0))

    with pytest.raises(PlateError) as info:
        poutine.trace(model).get_trace()
    for fragment in ["'data'", "size 3", "'a'", "size 4", "'b'"]:
        assert fragment in str(info.value)


def test_same_plate_name_and_size_twice_is_fine():
    def model():
        with pyro.plate("data", 3):
            pyro.sample("a", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3):
            pyro.sample("b", dist.Normal(0.0, 1.0))

    assert poutine.trace(model).get_trace().stochastic_nodes == ["a", "b"]


def test_invalid_distribution_arguments_when_validation_is_on():
    with pytest.raises(DistributionArgumentError, match="scale"):
        dist.Normal(0.0, -1.0)
    with pyro.validation_enabled(False):
        dist.Normal(0.0, -1.0)


def test_observation_outside_the_support():
    def model():
        with pyro.plate("flips", 3):
            pyro.sample("flip", dist.Bernoulli(0.5), obs=torch.tensor([0.0, 2.0, 1.0]))

    trace = poutine.trace(model).get_trace()
    with pytest.raises(SupportError) as info:
        trace.log_prob_sum()
    for fragment in ["Observed site 'flip'", "plate 'flips'", "1 of 3", "Bernoulli", "2"]:
        assert fragment in str(info.value)


def test_observation_outside_an_event_support():
    def model():
        pyro.sample("p", dist.Dirichlet(torch.ones(3)), obs=torch.tensor([0.5, 0.6, 0.1]))

    with pytest.raises(SupportError, match=r"Observed site 'p'.*Dirichlet"):
        poutine.trace(model).get_trace().compute_log_prob()


def test_latent_value_outside_the_models_support_names_the_site():
    def model():
        pyro.sample("scale", dist.HalfNormal(1.0))

    def guide():
        pyro.sample("scale", dist.Normal(-5.0, 0.1))

    guide_trace = poutine.trace(guide).get_trace()
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace()
    with pytest.raises(SupportError, match="Sample site 'scale' \\(no plate\\)"):
        model_trace.log_prob_sum()


def test_param_redeclared_with_another_constraint():
    pyro.param("s", torch.tensor(1.0), constraint=constraints.positive)
    with pytest.raises(ParamError) as info:
        pyro.param("s", torch.tensor(1.0), constraint=constraints.unit_interval)
    assert "'s'" in str(info.value)
    assert pyro.param("s").item() == pytest.approx(1.0)


def test_shape_errors_inside_trace_carry_the_site_table():
    def model():
        pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 5):
            pyro.sample("x", dist.Normal(torch.zeros(3), 1.0))

    with pytest.raises(ShapeError) as info:
        poutine.trace(model).get_trace()
    message = str(info.value)
    assert "Sites recorded before the error" in message
    assert "Trace shapes" in message and "mu" in message.split("Trace shapes")[1]


def test_foreign_errors_inside_trace_get_the_site_table_as_a_note():
    def model():
        w = pyro.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        return torch.ones(4, 2) @ w  # a torch shape error in user code

    with pytest.raises(RuntimeError) as info:
        poutine.trace(model).get_trace()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "Sites recorded before the error" in notes and "w" in notes


def test_escape_exits_carry_no_site_table():
    def model():
        pyro.sample("a", dist.Normal(0.0, 1.0))
        pyro.sample("b", dist.Normal(0.0, 1.0))

    escaped = poutine.escape(model, escape_fn=lambda msg: msg["name"] == "b")
    with pytest.raises(poutine.NonlocalExit) as info:
        poutine.trace(escaped).get_trace()
    assert not getattr(info.value, "__notes__", None)


def test_failed_calls_leave_the_param_store_unchanged():
    pyro.param("a", torch.tensor([1.0, 2.0]), constraint=constraints.positive)
    before = {name: value.detach().clone() for name, value in pyro.get_param_store().items()}

    def model():
        pyro.param("a", torch.ones(2), constraint=constraints.real)

    with pytest.raises(ParamError):
        poutine.trace(model).get_trace()
    with pytest.raises(SupportError, match="'b'"):
        pyro.param("b", torch.tensor(-1.0), constraint=constraints.positive)
    after = {name: value.detach() for name, value in pyro.get_param_store().items()}
    assert after.keys() == before.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
