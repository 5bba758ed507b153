"""Constraints and transforms: torch's, re-exported, plus Pyro's extras and their registrations."""

import pytest
import torch

import engine.distributions as dist
from engine.distributions import biject_to, constraints, transform_to, transforms


def test_submodules_re_export_everything_torch_has():
    for name in torch.distributions.constraints.__all__:
        assert getattr(constraints, name) is getattr(torch.distributions.constraints, name)
        assert name in constraints.__all__
    for name in torch.distributions.transforms.__all__:
        assert getattr(transforms, name) is getattr(torch.distributions.transforms, name)
    assert transforms.biject_to is biject_to is torch.distributions.biject_to
    assert dist.transform_to is transform_to is torch.distributions.transform_to
    assert dist.kl.kl_divergence is dist.kl_divergence is torch.distributions.kl_divergence


def test_extra_constraints_check_their_sets():
    assert constraints.integer.check(torch.tensor([-2.0, 0.0, 3.0])).all()
    assert not constraints.integer.check(torch.tensor(0.5))
    ordered = torch.tensor([[-1.0, 0.0, 2.0], [0.0, 2.0, 1.0]])
    assert constraints.ordered_vector.check(ordered).tolist() == [True, False]
    assert constraints.positive_ordered_vector.check(ordered).tolist() == [False, False]
    assert constraints.positive_ordered_vector.check(torch.tensor([0.5, 1.0])).item()
    unit = torch.tensor([[1.0, 0.0], [3.0, 1.0]])
    assert constraints.unit_lower_cholesky.check(unit).item()
    assert not constraints.unit_lower_cholesky.check(2 * unit).item()
    assert not constraints.unit_lower_cholesky.check(unit.T).item()
    assert constraints.softplus_positive.check(torch.tensor(0.1)).item()
    assert constraints.softplus_lower_cholesky.check(torch.tensor([[0.5, 0.0], [1.0, 2.0]])).item()


@pytest.mark.parametrize(
    "constraint",
    [
        constraints.ordered_vector,
        constraints.positive_ordered_vector,
        constraints.softplus_positive,
    ],
)
def test_biject_to_extra_constraints_round_trips_and_lands_inside(constraint):
    t = biject_to(constraint)
    assert t == transform_to(constraint)
    x = torch.randn(100, 4, dtype=torch.double)
    y = t(x)
    assert constraint.check(y).all()
    assert torch.allclose(t.inv(y), x, atol=1e-8)


def test_softplus_positive_uses_softplus():
    assert isinstance(biject_to(constraints.softplus_positive), transforms.SoftplusTransform)
    assert not isinstance(biject_to(constraints.positive), transforms.SoftplusTransform)


def test_ordered_transform_log_det_matches_autograd_jacobian():
    t = transforms.OrderedTransform()
    x = torch.randn(4, dtype=torch.double)
    jacobian = torch.autograd.functional.jacobian(t, x)
    expected = torch.linalg.slogdet(jacobian).logabsdet
    assert torch.allclose(t.log_abs_det_jacobian(x, t(x)), expected)
    composed = biject_to(constraints.positive_ordered_vector)
    jacobian = torch.autograd.functional.jacobian(composed, x)
    expected = torch.linalg.slogdet(jacobian).logabsdet
    assert torch.allclose(composed.log_abs_det_jacobian(x, composed(x)), expected)


@pytest.mark.parametrize(
    "constraint,transform",
    [
        (constraints.softplus_lower_cholesky, transforms.SoftplusLowerCholeskyTransform),
        (constraints.unit_lower_cholesky, transforms.UnitLowerCholeskyTransform),
    ],
)
def test_transform_to_cholesky_extras(constraint, transform):
    t = transform_to(constraint)
    assert isinstance(t, transform)
    x = torch.randn(5, 3, 3)
    y = t(x)
    assert constraint.check(y).all()
    assert torch.allclose(t(t.inv(y)), y, atol=1e-5)
    kept = x.tril() if constraint is constraints.softplus_lower_cholesky else x.tril(-1)
    assert torch.allclose(t.inv(y), kept, atol=1e-4)
    # Like torch's lower_cholesky, these forget the upper triangle: not bijections.
    with pytest.raises(NotImplementedError):
        biject_to(constraint)
