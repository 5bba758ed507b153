"""Params as Pyro's tutorials declare them: an initial value outside its constraint that the
constraint's transform can map is accepted and starts where Pyro starts (with a warning, except
for non-negative weights given for a simplex, which start at their proportions)."""

import warnings

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.distributions import constraints
from engine.errors import SupportError
from engine.infer import SVI, TraceEnum_ELBO, config_enumerate
from engine.optim import Adam


def test_an_unnormalised_simplex_param_as_in_the_enumeration_tutorial():
    data = torch.tensor([0.0, 1.0, 1.0, 2.0, 2.0, 2.0])

    @config_enumerate
    def model(data):
        probs = pyro.param("probs", torch.tensor([2.0, 1.0, 1.0]), constraint=constraints.simplex)
        with pyro.plate("data", len(data)):
            pyro.sample("x", dist.Categorical(probs), obs=data)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # weights for a simplex start at their proportions
        probs = pyro.param("probs", torch.tensor([2.0, 1.0, 1.0]), constraint=constraints.simplex)
    assert torch.allclose(probs, torch.tensor([0.5, 0.25, 0.25]))
    svi = SVI(model, lambda data: None, Adam({"lr": 0.05}), TraceEnum_ELBO(max_plate_nesting=1))
    for _ in range(600):
        svi.step(data)
    # The maximum-likelihood probabilities are the frequencies 1/6, 2/6, 3/6.
    fitted = pyro.param("probs").detach()
    assert torch.allclose(fitted, torch.tensor([1 / 6, 2 / 6, 3 / 6]), atol=0.02)


@pytest.mark.parametrize(
    "init, constraint",
    [
        (torch.tensor([-1.0]), constraints.positive),
        (torch.tensor([1.0]), constraints.greater_than(2.0)),
        (torch.tensor([0.5, -0.5, 1.0]), constraints.simplex),
        (torch.tensor([float("nan")]), constraints.real),
    ],
)
def test_an_init_the_transform_cannot_map_is_an_error_naming_the_param(init, constraint):
    with pytest.raises(SupportError, match="param 'w'"):
        pyro.param("w", init, constraint=constraint)
    assert "w" not in pyro.get_param_store()
