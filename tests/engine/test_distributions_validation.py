"""Validation of distribution arguments and scored values: readable errors, and the switch."""

import pytest
import torch

import engine.distributions as dist
from engine.distributions import constraints
from engine.distributions.explain import constraint_advice
from engine.errors import DistributionArgumentError, ShapeError, SupportError

NAN = float("nan")

# (constructor, distribution name, parameter, shape as printed, words of the constraint)
INVALID = [
    (
        lambda: dist.Normal(torch.zeros(3), torch.tensor([1.0, -1.0, -2.0])),
        "Normal",
        "scale",
        "(3,)",
        "positive",
    ),
    (lambda: dist.Normal(torch.tensor([NAN]), 1.0), "Normal", "loc", "(1,)", "not NaN"),
    (lambda: dist.Bernoulli(torch.tensor([0.5, 1.5])), "Bernoulli", "probs", "(2,)", "[0, 1]"),
    (
        lambda: dist.Categorical(torch.tensor([[0.5, -0.5]])),
        "Categorical",
        "probs",
        "(1, 2)",
        "probability vector",
    ),
    (
        lambda: dist.Dirichlet(torch.tensor([1.0, 0.0])),
        "Dirichlet",
        "concentration",
        "(2,)",
        "positive",
    ),
    (lambda: dist.Gamma(-1.0, 1.0), "Gamma", "concentration", "()", "positive"),
    (lambda: dist.Beta(1.0, torch.zeros(2)), "Beta", "concentration0", "(2,)", "positive"),
    (lambda: dist.Poisson(torch.tensor([-1.0])), "Poisson", "rate", "(1,)", "non-negative"),
    (lambda: dist.Binomial(2.5, 0.5), "Binomial", "total_count", "()", "non-negative integer"),
    (
        lambda: dist.MultivariateNormal(
            torch.zeros(2), scale_tril=torch.diag(torch.tensor([1.0, -1.0]))
        ),
        "MultivariateNormal",
        "scale_tril",
        "(2, 2)",
        "lower-triangular with a positive diagonal",
    ),
    (lambda: dist.LogNormal(0.0, torch.tensor([-1.0])), "LogNormal", "scale", "(1,)", "positive"),
    (
        lambda: dist.Uniform(torch.zeros(2), torch.tensor([1.0, -1.0])),
        "Uniform",
        "low",
        "(2,)",
        "less than",
    ),
    (
        lambda: dist.ZeroInflatedPoisson(torch.ones(2), gate=1.5),
        "ZeroInflatedPoisson",
        "gate",
        "(2,)",
        "[0, 1]",
    ),
    (
        lambda: dist.ZeroInflatedPoisson(torch.tensor([-1.0]), gate_logits=0.0),
        "ZeroInflatedPoisson",
        "rate",
        "(1,)",
        "non-negative",
    ),
    (
        lambda: dist.ZeroInflatedNegativeBinomial(2.0, probs=1.5, gate=0.5),
        "ZeroInflatedNegativeBinomial",
        "probs",
        "()",
        "[0, 1)",
    ),
    (lambda: dist.BetaBinomial(-1.0, 1.0, 3), "BetaBinomial", "concentration1", "()", "positive"),
    (lambda: dist.BetaBinomial(1.0, 1.0, 2.5), "BetaBinomial", "total_count", "()", "integer"),
    (
        lambda: dist.GammaPoisson(1.0, torch.tensor([-2.0])),
        "GammaPoisson",
        "rate",
        "(1,)",
        "positive",
    ),
    (
        lambda: dist.Delta(torch.zeros(2), torch.tensor([0.0, NAN])),
        "Delta",
        "log_density",
        "(2,)",
        "NaN",
    ),
    (lambda: dist.Unit(torch.tensor([NAN])), "Unit", "log_factor", "(1,)", "NaN"),
]


@pytest.fixture
def no_validation():
    dist.enable_validation(False)
    yield
    dist.enable_validation(True)


@pytest.mark.parametrize("make,name,param,shape,words", INVALID)
def test_invalid_arguments_raise_a_readable_error(make, name, param, shape, words):
    with pytest.raises(DistributionArgumentError) as info:
        make()
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"{name}: parameter '{param}' (shape {shape})")
    assert words in message
    assert "constraint " in message and "break it; first offending:" in message
    assert f"Fix: {param} must be" in message


def test_message_counts_and_shows_offending_values_and_the_fix():
    with pytest.raises(DistributionArgumentError) as info:
        dist.Normal(torch.zeros(4), torch.tensor([1.0, -1.0, 2.0, -0.5]))
    message = str(info.value)
    assert "2 of 4 entries break it" in message
    assert "-1 at (1,), -0.5 at (3,)" in message
    assert (
        "scale must be positive: pass a positive tensor, e.g. via torch.nn.functional.softplus"
        in message
    )
    assert "constraint=constraints.positive" in message


def test_message_shows_the_argument_as_passed_rather_than_as_normalized():
    with pytest.raises(DistributionArgumentError, match=r"first offending: \[0.5, -1\]"):
        dist.Categorical(torch.tensor([0.5, -1.0]))
    with pytest.raises(DistributionArgumentError, match="or pass logits= instead"):
        dist.Bernoulli(2.0)


def test_errors_that_are_not_constraint_violations_still_name_the_distribution():
    with pytest.raises(DistributionArgumentError, match=r"^Categorical: .*one-dimensional"):
        dist.Categorical(torch.tensor(0.5))
    with pytest.raises(DistributionArgumentError, match="exactly one of gate"):
        dist.ZeroInflatedPoisson(1.0)
    with pytest.raises(DistributionArgumentError, match="exactly one of probs"):
        dist.ZeroInflatedNegativeBinomial(1.0, gate=0.5)


@pytest.mark.usefixtures("no_validation")
@pytest.mark.parametrize("make", [case[0] for case in INVALID])
def test_enable_validation_false_turns_argument_checks_off(make):
    assert not dist.is_validation_enabled()
    assert torch.distributions.Distribution._validate_args is False
    make()


@pytest.mark.usefixtures("no_validation")
def test_enable_validation_false_turns_value_checks_off():
    assert dist.Bernoulli(0.5).log_prob(torch.tensor(2.0)).shape == ()


def test_validation_enabled_context_restores_the_setting():
    assert dist.is_validation_enabled()
    with dist.validation_enabled(False):
        assert not dist.is_validation_enabled()
        dist.Normal(0.0, -1.0)
    assert dist.is_validation_enabled()
    with pytest.raises(DistributionArgumentError):
        dist.Normal(0.0, -1.0)


def test_values_outside_the_support_raise_support_error():
    with pytest.raises(SupportError) as info:
        dist.Bernoulli(torch.full((3,), 0.5)).log_prob(torch.tensor([0.0, 2.0, 1.0]))
    message = str(info.value)
    assert message.startswith("Bernoulli: the value to score (shape (3,))")
    assert "0 or 1" in message and "1 of 3 entries break it; first offending: 2 at (1,)" in message
    with pytest.raises(SupportError, match="non-negative integer"):
        dist.Poisson(1.0).log_prob(torch.tensor(-1.0))
    with pytest.raises(SupportError, match="probability vector"):
        dist.Dirichlet(torch.ones(3)).log_prob(torch.tensor([0.5, 0.6, 0.1]))


def test_values_of_the_wrong_shape_raise_shape_error():
    with pytest.raises(ShapeError, match=r"shape \(2,\), which does not broadcast with"):
        dist.Normal(torch.zeros(3), 1.0).log_prob(torch.zeros(2))
    with pytest.raises(ShapeError, match=r"event_shape \(3,\)"):
        dist.Dirichlet(torch.ones(3)).log_prob(torch.ones(2) / 2)
    with pytest.raises(DistributionArgumentError, match=r"torch\.as_tensor"):
        dist.Normal(0.0, 1.0).log_prob(0.5)


def test_expand_does_not_validate_again(monkeypatch):
    d = dist.Normal(torch.zeros(3), 1.0)
    calls = []
    positive_check = type(constraints.positive).check

    def counting_check(self, value):
        calls.append(value.shape)
        return positive_check(self, value)

    monkeypatch.setattr(type(constraints.positive), "check", counting_check)
    d.expand((4, 3))
    d.expand_by((2,)).to_event(1)
    assert calls == []
    dist.Normal(torch.zeros(3), 1.0)
    assert calls == [(3,)]


def test_extra_constraints_describe_themselves():
    words, how = constraint_advice(constraints.ordered_vector)
    assert "increasing" in words and "ordered_vector" in how
    assert constraint_advice(constraints.softplus_positive)[0] == "positive"
    assert "ones on the diagonal" in constraint_advice(constraints.unit_lower_cholesky)[0]
