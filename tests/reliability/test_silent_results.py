"""Inputs that used to give a silently wrong result: each is now refused with an engine error (or,
where Pyro accepts it and the result stays right, a warning) naming the culprit, and nothing in
the param store changes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import ArgumentError, MCMCError, PlateError, SiteNameError
from engine.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
from engine.optim import Adam
from tests.reliability.support import assert_same_values, values_of


@pytest.fixture
def store_with_params() -> dict[str, torch.Tensor]:
    pyro.param("w", torch.tensor([0.5, -1.5]))
    pyro.param("s", torch.tensor(2.0), constraint=dist.constraints.positive)
    return values_of()


def run_plate(*args, **kwargs):
    def model():
        with pyro.plate(*args, **kwargs):
            pyro.sample("x", dist.Normal(0.0, 1.0))

    return poutine.trace(model).get_trace()


def complex_obs():
    pyro.sample("y", dist.Normal(0.0, 1.0), obs=torch.tensor([1.0 + 2.0j]))


def latent_mu():
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    pyro.sample("obs", dist.Normal(mu, 0.01), obs=torch.tensor(0.3))


def one_latent():
    pyro.sample("mu", dist.Normal(torch.zeros(2), 1.0))


def predictive_model():
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    pyro.sample("y", dist.Normal(mu, 0.01))


def mcmc_with(initial_params):
    mcmc = MCMC(NUTS(latent_mu), num_samples=2, warmup_steps=2, initial_params=initial_params)
    mcmc.run()


def svi_run(num_steps):
    def guide():
        pyro.sample("mu", dist.Normal(pyro.param("w"), 1.0))

    svi = SVI(latent_mu, guide, Adam({"lr": 0.1}), Trace_ELBO())
    return svi.run(num_steps)


REFUSED = [
    # plates: sizes that would be cut, clamped or go negative
    ("plate_size_fraction", lambda: run_plate("data", 3.5), PlateError, ["'data'", "3.5"]),
    (
        "plate_size_fraction_tensor",
        lambda: run_plate("data", torch.tensor(3.5)),
        PlateError,
        ["'data'", "3.5", "whole number"],
    ),
    ("plate_size_negative", lambda: run_plate("data", -2), PlateError, ["'data'", "-2"]),
    ("plate_size_zero", lambda: run_plate("data", 0), PlateError, ["'data'", "size=0"]),
    ("plate_size_string", lambda: run_plate("data", "3"), PlateError, ["'data'", "'3'", "str"]),
    ("plate_size_bool", lambda: run_plate("data", True), PlateError, ["'data'", "bool"]),
    (
        "plate_subsample_size_fraction",
        lambda: run_plate("data", 10, subsample_size=2.5),
        PlateError,
        ["'data'", "subsample_size=2.5"],
    ),
    (
        "plate_subsample_size_above_size",
        lambda: run_plate("data", 10, subsample_size=20),
        PlateError,
        ["'data'", "20", "size 10"],
    ),
    (
        "plate_subsample_size_zero",
        lambda: run_plate("data", 10, subsample_size=0),
        PlateError,
        ["'data'", "subsample_size=0"],
    ),
    (
        "plate_subsample_and_size_disagree",
        lambda: run_plate("data", 10, subsample=torch.tensor([0, 1]), subsample_size=3),
        PlateError,
        ["'data'", "subsample_size=3", "2 indices"],
    ),
    (
        "plate_subsample_longer_than_size",
        lambda: run_plate("data", 3, subsample=torch.arange(5)),
        PlateError,
        ["'data'", "5", "size 3"],
    ),
    (
        "plate_subsample_float_indices",
        lambda: run_plate("data", 10, subsample=torch.tensor([0.0, 1.0])),
        PlateError,
        ["'data'", "torch.float32", ".long()"],
    ),
    ("plate_dim_positive", lambda: run_plate("data", 10, dim=1), PlateError, ["'data'", "dim=1"]),
    ("plate_dim_float", lambda: run_plate("data", 10, dim=-1.0), PlateError, ["dim=-1.0"]),
    # complex values would give a complex log-density
    (
        "complex_observation",
        lambda: poutine.trace(complex_obs).get_trace(),
        ArgumentError,
        ["'y'", "complex64", "complex log-density"],
    ),
    (
        "complex_value_by_condition",
        lambda: poutine.trace(
            poutine.condition(latent_mu, data={"mu": torch.tensor(1j)})
        ).get_trace(),
        ArgumentError,
        ["'mu'", "complex"],
    ),
    (
        "complex_value_by_substitute",
        lambda: (
            poutine.trace(poutine.substitute(one_latent, data={"mu": torch.tensor([1j, 2.0])}))
            .get_trace()
            .log_prob_sum()
        ),
        ArgumentError,
        ["Sample site 'mu'", "complex64", "shape (2,)"],
    ),
    # names must be strings
    (
        "sample_name_int",
        lambda: poutine.trace(lambda: pyro.sample(3, dist.Normal(0.0, 1.0))).get_trace(),
        ArgumentError,
        ["sample site name", "int 3"],
    ),
    (
        "sample_name_without_handlers",
        lambda: pyro.sample(("x", 1), dist.Normal(0.0, 1.0)),
        ArgumentError,
        ["sample site name", "tuple"],
    ),
    ("param_name_int", lambda: pyro.param(3, torch.zeros(2)), ArgumentError, ["param name", "3"]),
    ("plate_name_int", lambda: run_plate(7, 3), ArgumentError, ["plate name", "int 7"]),
    # loop counts
    ("svi_run_negative", lambda: svi_run(-3), ArgumentError, ["num_steps=-3", "at least 0"]),
    ("svi_run_fraction", lambda: svi_run(2.5), ArgumentError, ["num_steps=2.5"]),
    ("svi_run_string", lambda: svi_run("10"), ArgumentError, ["num_steps='10'", "str"]),
    # keys that name no site
    (
        "mcmc_initial_params_unknown_key",
        lambda: mcmc_with({"mu": torch.tensor(0.0), "sigma": torch.tensor(1.0)}),
        MCMCError,
        ["['sigma']", "not a latent site", "['mu']"],
    ),
    (
        "mcmc_initial_params_misspelt_key",
        lambda: mcmc_with({"mu_": torch.tensor(0.0)}),
        MCMCError,
        ["['mu_']", "Did you mean 'mu'", "got no value"],
    ),
    (
        "predictive_misspelt_key",
        lambda: Predictive(predictive_model, posterior_samples={"muu": torch.ones(3)})(),
        SiteNameError,
        ["'muu'", "Did you mean 'mu'", "prior"],
    ),
    (
        "predictive_misspelt_key_parallel",
        lambda: Predictive(predictive_model, {"Mu": torch.ones(3)}, parallel=True)(),
        SiteNameError,
        ["'Mu'", "Did you mean 'mu'"],
    ),
    (
        "predictive_misspelt_return_site",
        lambda: Predictive(predictive_model, num_samples=2, return_sites=["yy"])(),
        ValueError,
        ["['yy']", "Did you mean 'y'"],
    ),
]


@pytest.mark.parametrize(
    ("run", "error", "fragments"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refused_with_the_culprit_named(store_with_params, run, error, fragments):
    with pytest.raises(error) as info:
        run()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert_same_values(store_with_params)


@pytest.mark.parametrize(
    ("size", "subsample_size", "expected"),
    [
        (3.0, None, 3),
        (torch.tensor(3), None, 3),
        (torch.tensor(3.0), None, 3),
        (np.int64(4), None, 4),
        (10, 3.0, 3),
        (10, torch.tensor(2), 2),
        (10, 10, 10),
    ],
    ids=["float", "int_tensor", "float_tensor", "numpy_int", "float_sub", "tensor_sub", "equal"],
)
def test_whole_number_sizes_are_accepted_as_pyro_accepts_them(size, subsample_size, expected):
    trace = run_plate("data", size, subsample_size=subsample_size)
    assert trace.nodes["x"]["value"].shape == (expected,)


def test_reinitialising_a_param_with_another_shape_warns_and_keeps_the_value(store_with_params):
    with pytest.warns(UserWarning) as record:
        value = pyro.param("w", torch.zeros(3))
    message = str(record[0].message)
    for fragment in ["'w'", "(2,)", "(3,)", "ignored", "clear_param_store"]:
        assert fragment in message
    assert torch.equal(value.detach(), torch.tensor([0.5, -1.5]))
    assert_same_values(store_with_params)


def test_reinitialising_a_param_with_its_own_shape_is_silent(store_with_params):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pyro.param("w", torch.ones(2))
        pyro.param("s", 1.0, constraint=dist.constraints.positive)
    assert_same_values(store_with_params)


def test_svi_run_of_zero_steps_takes_none(store_with_params):
    assert svi_run(0) == []
    assert_same_values(store_with_params)


def test_predictive_warns_about_a_key_unlike_any_site_and_uses_the_rest():
    samples = {"mu": torch.full((3,), 100.0), "temperature": torch.ones(3)}
    with pytest.warns(UserWarning, match=r"\['temperature'\].*'mu', 'y'"):
        draws = Predictive(predictive_model, posterior_samples=samples)()
    assert torch.allclose(draws["y"], torch.full((3,), 100.0), atol=0.1)


def test_predictive_leaves_internal_keys_alone():
    samples = {"mu": torch.zeros(2), "_AutoDiagonalNormal_latent": torch.zeros(2, 1)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draws = Predictive(predictive_model, posterior_samples=samples)()
    assert draws["y"].shape == (2,)
