"""Mistakes that used to surface as torch's or Python's internal messages ("Subtraction, the `-`
operator, with two bool tensors", "'Tensor' object is not callable", torch's expand message):
each is now an engine error naming the site or distribution, the shapes or dtype, and the fix,
and leaves the param store as it was."""

from __future__ import annotations

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import ArgumentError, ShapeError
from engine.infer import SVI, Trace_ELBO
from engine.optim import Adam
from tests.reliability.support import assert_same_values, values_of


@pytest.fixture
def store_with_params() -> dict[str, torch.Tensor]:
    pyro.param("p", torch.tensor(0.3), constraint=dist.constraints.unit_interval)
    pyro.param("loc", torch.tensor([1.0, 2.0]))
    return values_of()


def score(fn, obs):
    """Trace one observed site and sum its log-density, as every ELBO does."""

    def model():
        pyro.sample("y", fn, obs=obs)

    return poutine.trace(model).get_trace().log_prob_sum()


def trace_of(model):
    return poutine.trace(model).get_trace()


def svi_step_with_bool_data():
    data = torch.tensor([True, False, True])

    def model():
        p = pyro.param("p")
        with pyro.plate("flips", 3):
            pyro.sample("flip", dist.Bernoulli(p), obs=data)

    svi = SVI(model, lambda: None, Adam({"lr": 0.1}), Trace_ELBO())
    svi.step()


REFUSED = [
    # observations of a dtype torch cannot do the density's arithmetic with
    (
        "bernoulli_bool_obs",
        lambda: score(dist.Bernoulli(0.3), torch.tensor(True)),
        ArgumentError,
        ["Observed site 'y'", "Bernoulli", "torch.bool", "data.float()"],
    ),
    (
        "bernoulli_int_obs",
        lambda: score(dist.Bernoulli(0.3).expand([2]), torch.tensor([1, 0])),
        ArgumentError,
        ["'y'", "Bernoulli", "torch.int64", "shape (2,)"],
    ),
    (
        "binomial_bool_obs",
        lambda: score(dist.Binomial(5, 0.3), torch.tensor(True)),
        ArgumentError,
        ["'y'", "Binomial", "torch.bool"],
    ),
    (
        "normal_bool_obs",
        lambda: score(dist.Normal(0.0, 1.0), torch.tensor(False)),
        ArgumentError,
        ["'y'", "Normal", "torch.bool"],
    ),
    (
        "bool_obs_during_svi_step",
        svi_step_with_bool_data,
        ArgumentError,
        ["'flip'", "plate 'flips'", "torch.bool"],
    ),
    # the second argument of sample is not a distribution
    (
        "sample_given_a_tensor",
        lambda: trace_of(lambda: pyro.sample("x", torch.zeros(3))),
        ArgumentError,
        ["'x'", "must be a distribution", "shape (3,)", "obs="],
    ),
    (
        "sample_given_a_tensor_without_handlers",
        lambda: pyro.sample("x", torch.zeros(3)),
        ArgumentError,
        ["'x'", "must be a distribution", "obs="],
    ),
    (
        "sample_given_a_number",
        lambda: trace_of(lambda: pyro.sample("z", 1.5)),
        ArgumentError,
        ["'z'", "float 1.5"],
    ),
    (
        "sample_given_a_distribution_class",
        lambda: trace_of(lambda: pyro.sample("z", dist.Normal)),
        ArgumentError,
        ["'z'", "class Normal", "dist.Normal(...)"],
    ),
    (
        "sample_infer_not_a_dict",
        lambda: trace_of(lambda: pyro.sample("c", dist.Bernoulli(0.5), infer="enumerate")),
        ArgumentError,
        ["'c'", "infer=", "'enumerate'"],
    ),
    (
        "obs_mask_not_bool",
        lambda: trace_of(
            lambda: pyro.sample(
                "y", dist.Normal(0.0, 1.0).expand([2]), obs=torch.zeros(2), obs_mask=torch.ones(2)
            )
        ),
        ArgumentError,
        ["'y'", "obs_mask", "torch.float32"],
    ),
    (
        "deterministic_of_a_number",
        lambda: trace_of(lambda: pyro.deterministic("d", 3.0)),
        ArgumentError,
        ["'d'", "float 3.0", "torch.as_tensor"],
    ),
    # shapes: expand, expand_by, to_event, mask
    (
        "expand_to_a_shape_that_does_not_broadcast",
        lambda: dist.Normal(torch.zeros(3), 1.0).expand([4]),
        ShapeError,
        ["Normal", "batch_shape (3,)", "to (4,)", "on the left", ".expand([4, 3])"],
    ),
    (
        "expand_masked",
        lambda: dist.Normal(torch.zeros(3), 1.0).mask(torch.ones(3, dtype=torch.bool)).expand([4]),
        ShapeError,
        ["MaskedDistribution of Normal", "(3,)", "(4,)"],
    ),
    (
        "expand_to_event",
        lambda: dist.Normal(torch.zeros(3, 2), 1.0).to_event(1).expand([4]),
        ShapeError,
        ["Independent", "batch_shape (3,)", "to (4,)"],
    ),
    (
        "expand_by_an_int",
        lambda: dist.Normal(torch.zeros(3), 1.0).expand_by(2),
        ShapeError,
        ["Normal.expand_by(2)", ".expand_by([2])"],
    ),
    (
        "expand_an_int",
        lambda: dist.Normal(0.0, 1.0).expand(4),
        ShapeError,
        ["Normal.expand(4)", ".expand([4])"],
    ),
    (
        "to_event_fraction",
        lambda: dist.Normal(torch.zeros(3, 2), 1.0).to_event(1.5),
        ArgumentError,
        ["Normal.to_event(1.5)", "int", "(3, 2)"],
    ),
    (
        "to_event_beyond_the_batch_dims",
        lambda: dist.Normal(torch.zeros(3), 1.0).to_event(5),
        ShapeError,
        ["Normal.to_event(5)", "(3,)", "at most 1"],
    ),
    (
        "mask_of_the_wrong_shape",
        lambda: dist.Normal(torch.zeros(3), 1.0).mask(torch.tensor([True, False])),
        ShapeError,
        ["Normal.mask", "(2,)", "(3,)"],
    ),
    # complex parameters
    (
        "complex_parameter",
        lambda: dist.Normal(torch.tensor([1.0 + 1.0j]), 1.0),
        ArgumentError,
        ["Normal", "'loc'", "complex"],
    ),
    (
        "complex_scale",
        lambda: dist.Normal(0.0, torch.tensor(1.0 + 0.0j)),
        ArgumentError,
        ["Normal", "'scale'", "complex"],
    ),
]


@pytest.mark.parametrize(
    ("run", "error", "fragments"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refused_in_the_engines_words(store_with_params, run, error, fragments):
    with pytest.raises(error) as info:
        run()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Subtraction" not in message and "not callable" not in message
    assert_same_values(store_with_params)


@pytest.mark.parametrize(
    ("fn", "obs", "same_as"),
    [
        (dist.Categorical(torch.tensor([0.2, 0.3, 0.5])), torch.tensor(2.0), torch.tensor(2)),
        (dist.Poisson(2.0), torch.tensor(3), torch.tensor(3.0)),
        (dist.Binomial(5, 0.3), torch.tensor(2), torch.tensor(2.0)),
        (dist.Geometric(0.3), torch.tensor(4), torch.tensor(4.0)),
        (dist.Normal(0.0, 1.0), torch.tensor(1), torch.tensor(1.0)),
    ],
    ids=["categorical_float", "poisson_int", "binomial_int", "geometric_int", "normal_int"],
)
def test_dtypes_torch_scores_correctly_stay_accepted(fn, obs, same_as):
    assert torch.allclose(score(fn, obs), score(fn, same_as))


def test_bool_data_converted_as_the_message_says_is_scored():
    data = torch.tensor([True, False])
    expected = torch.tensor(0.3).log() + torch.tensor(0.7).log()
    assert torch.allclose(score(dist.Bernoulli(0.3).expand([2]), data.float()), expected)


def test_any_callable_still_draws_at_a_sample_site():
    tr = trace_of(lambda: pyro.sample("x", lambda: torch.tensor(1.0)))
    assert tr.nodes["x"]["value"] == 1.0
