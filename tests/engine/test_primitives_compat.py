"""Primitives and runtime questions Pyro users rely on: plate_stack, the warning for an
observation nobody scores, get_mask/get_plates, and where a failing log_prob happened."""

import pickle
import warnings

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import ArgumentError, SupportError
from engine.poutine.runtime import get_mask, get_plates


def test_plate_stack_gives_a_site_the_batch_shape_of_its_sizes():
    def model():
        with pyro.plate_stack("cells", (4, 2, 3)):
            return pyro.sample("w", dist.Normal(0.0, 1.0))

    trace = poutine.trace(model).get_trace()
    assert trace.nodes["w"]["value"].shape == (4, 2, 3)
    frames = {f.name: (f.size, f.dim) for f in trace.nodes["w"]["cond_indep_stack"]}
    assert frames == {"cells_0": (3, -1), "cells_1": (2, -2), "cells_2": (4, -3)}


def test_plate_stack_from_another_rightmost_dim_leaves_the_event_dims_alone():
    def model():
        with pyro.plate_stack("rows", (5,), rightmost_dim=-2):
            return pyro.sample("v", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    value = poutine.trace(model).get_trace().nodes["v"]["value"]
    # the event dim is the rightmost; the batch dims are (5, 1): the plate at -2, -1 left free
    assert value.shape == (5, 1, 3)
    with pyro.plate_stack("rows", (5,), rightmost_dim=-2):
        assert [(f.size, f.dim) for f in get_plates()] == [(5, -2)]


def test_plate_stack_refuses_a_non_negative_dim():
    stack = pyro.plate_stack("rows", (2,), rightmost_dim=0)
    with pytest.raises(ArgumentError, match="rightmost_dim must be negative"):
        stack.__enter__()


def test_observing_outside_any_inference_warns_and_returns_the_value():
    value = torch.tensor(0.25)
    with pytest.warns(RuntimeWarning, match="'y'.*outside of any inference"):
        assert pyro.sample("y", dist.Normal(0.0, 1.0), obs=value) is value
    with pytest.warns(RuntimeWarning, match="'bonus'"):
        pyro.factor("bonus", torch.tensor(2.0))


def test_no_warning_for_draws_deterministic_sites_or_observations_under_a_handler():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.deterministic("d", torch.tensor(1.0))
        with pyro.plate("data", 2):  # a plate is a handler: Pyro does not warn there either
            pyro.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(2))


def test_get_mask_combines_the_enclosing_masks():
    assert get_mask() is None
    with poutine.mask(mask=False):
        assert get_mask() is False
    first = torch.tensor([True, False, True])
    second = torch.tensor([True, True, False])
    with poutine.mask(mask=first), poutine.mask(mask=second):
        assert torch.equal(get_mask(), torch.tensor([True, False, False]))
    assert poutine.get_mask is get_mask


def test_get_mask_lets_a_model_skip_an_expensive_term():
    calls = []

    def model():
        if get_mask() is not False:
            calls.append(1)
            pyro.factor("expensive", torch.tensor(-3.0))

    assert poutine.trace(model).get_trace().log_prob_sum().item() == -3.0
    trace = poutine.trace(poutine.mask(model, mask=False)).get_trace()
    assert "expensive" not in trace.nodes and len(calls) == 1


def test_get_plates_names_the_enclosing_plates_outermost_first():
    assert get_plates() == ()
    with pyro.plate("outer", 3), pyro.plate("inner", 2, dim=-2):
        assert [(f.name, f.size, f.dim) for f in get_plates()] == [
            ("outer", 3, -1),
            ("inner", 2, -2),
        ]


def _beta_model(value):
    pyro.sample("share", dist.Beta(2.0, 2.0), obs=value)


@pytest.mark.parametrize("method", ["compute_log_prob", "log_prob_sum", "compute_score_parts"])
def test_a_failing_log_prob_names_its_site_and_keeps_its_type(method):
    trace = poutine.trace(_beta_model).get_trace(torch.tensor(1.5))
    what = method.removeprefix("compute_")
    with pytest.raises(
        SupportError, match=f"Error while computing {what} at site 'share':"
    ) as info:
        getattr(trace, method)()
    message = str(info.value)
    assert "Observed site 'share' (no plate)" in message and "Trace shapes" in message


class _Exploding(dist.Normal):
    def log_prob(self, value):
        raise RuntimeError("the density overflowed")


def test_a_foreign_exception_in_log_prob_is_reraised_with_site_and_shapes():
    def model():
        with pyro.plate("items", 3):
            pyro.sample("blast", _Exploding(0.0, 1.0))

    trace = poutine.trace(model).get_trace()
    with pytest.raises(RuntimeError) as info:
        trace.log_prob_sum()
    message = str(info.value)
    assert message.startswith("Error while computing log_prob_sum at site 'blast':")
    assert "the density overflowed" in message and "items" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_score_parts_are_scaled_and_masked_like_log_prob():
    def model():
        with pyro.plate("data", 4, subsample_size=2):
            pyro.sample("x", dist.Normal(0.0, 1.0))

    trace = poutine.trace(model).get_trace()
    trace.compute_score_parts()
    site = trace.nodes["x"]
    expected = 2.0 * dist.Normal(0.0, 1.0).log_prob(site["value"])  # full size 4 / batch 2
    assert torch.allclose(site["score_parts"].log_prob, expected)
    assert torch.allclose(site["log_prob_sum"], expected.sum())


def test_a_trace_pickles_and_scores_the_same_afterwards():
    def model(data):
        scale = pyro.param("scale", torch.tensor(2.0), constraint=dist.constraints.positive)
        loc = pyro.sample("loc", dist.Normal(0.0, scale))
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)

    trace = poutine.trace(model).get_trace(torch.tensor([0.5, -1.0, 2.0]))
    copy = pickle.loads(pickle.dumps(trace))
    assert list(copy.nodes) == list(trace.nodes)
    assert torch.allclose(copy.log_prob_sum(), trace.log_prob_sum())
