"""The transforms of Pyro's "Transforms" docs page beyond the flows tutorial, and the package's
submodule paths (``pyro.distributions.transforms.haar`` and friends).

Each log-Jacobian is compared with the log-determinant of the Jacobian that autograd computes
(in float64, over the free coordinates where a domain has fewer of them than entries), each
inverse with the forward map, and each image with the transform's declared codomain.
"""

import importlib
import math
import warnings

import pytest
import torch
from torch.autograd.functional import jacobian

import engine as pyro
import engine.distributions as dist
import engine.distributions.transforms as T
from engine.distributions import constraints, transform_to
from engine.errors import ArgumentError
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import AutoNormalizingFlow
from engine.optim import Adam

SUBMODULE_NAMES = {
    "affine_autoregressive": ["AffineAutoregressive", "affine_autoregressive"],
    "basic": ["ELUTransform", "LeakyReLUTransform", "elu", "leaky_relu"],
    "block_autoregressive": ["BlockAutoregressive", "block_autoregressive"],
    "cholesky": ["CholeskyTransform", "CorrLCholeskyTransform", "CorrMatrixCholeskyTransform"],
    "discrete_cosine": ["DiscreteCosineTransform"],
    "haar": ["HaarTransform"],
    "lower_cholesky_affine": ["LowerCholeskyAffine"],
    "normalize": ["Normalize"],
    "ordered": ["OrderedTransform"],
    "permute": ["Permute", "permute"],
    "power": ["PositivePowerTransform"],
    "simplex_to_ordered": ["SimplexToOrderedTransform"],
    "softplus": ["SoftplusLowerCholeskyTransform", "SoftplusTransform"],
    "spline": ["Spline", "ConditionalSpline", "spline", "conditional_spline"],
    "spline_coupling": ["SplineCoupling", "spline_coupling"],
    "unit_cholesky": ["UnitLowerCholeskyTransform"],
}


@pytest.mark.parametrize("submodule", sorted(SUBMODULE_NAMES))
def test_submodule_paths_give_the_package_names(submodule):
    module = importlib.import_module(f"engine.distributions.transforms.{submodule}")
    for name in SUBMODULE_NAMES[submodule]:
        assert getattr(module, name) is getattr(T, name)
        assert name in T.__all__


def _log_det_by_autograd(fn, x):
    return torch.linalg.slogdet(jacobian(fn, x))[1]


ELEMENTWISE = {
    "elu": (T.elu, constraints.greater_than(-1.0)),
    "leaky_relu": (T.leaky_relu, constraints.real),
    "power_2.5": (lambda: T.PositivePowerTransform(torch.tensor(2.5)), constraints.real),
    "power_0.3": (lambda: T.PositivePowerTransform(0.3), constraints.real),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_transforms(name):
    make, codomain = ELEMENTWISE[name]
    t = make()
    x = torch.tensor([-2.3, -0.4, 0.05, 0.7, 3.1], dtype=torch.float64)
    y = t(x)
    assert codomain.check(y).all()
    assert t.codomain.check(y).all()
    assert torch.allclose(t.inv(y), x, atol=1e-12)
    # An elementwise map has a diagonal Jacobian: log|det| is the sum of log|dy_i/dx_i|.
    expected = _log_det_by_autograd(t._call, x)
    assert torch.allclose(t.log_abs_det_jacobian(x, y).sum(), expected, atol=1e-10)
    assert t == make() and hash(t) == hash(make())


def test_elu_codomain_is_above_minus_one_and_leaky_slope_is_a_hundredth():
    x = torch.tensor([-30.0, -1.0], dtype=torch.float64)
    assert torch.all(T.elu()(x) > -1.0)
    assert torch.allclose(T.leaky_relu()(x), 0.01 * x)


def test_positive_power_refuses_a_nonpositive_exponent_when_validating():
    with pytest.raises(ArgumentError, match="positive exponent"):
        T.PositivePowerTransform(torch.tensor(-1.0), validate_args=True)


def test_cholesky_transform_jacobian_over_the_lower_triangles():
    a = torch.tensor([[1.0, 0.2, -0.5], [0.3, 2.0, 0.1], [-0.4, 0.6, 1.5]], dtype=torch.float64)
    s = a @ a.T + 0.5 * torch.eye(3, dtype=torch.float64)
    rows, cols = torch.tril_indices(3, 3)

    def from_free(v):
        lower = torch.zeros(3, 3, dtype=v.dtype).index_put((rows, cols), v)
        return lower + lower.tril(-1).T

    t = T.CholeskyTransform()
    lower = t(s)
    assert torch.allclose(lower @ lower.T, s)
    assert constraints.lower_cholesky.check(lower)
    assert torch.allclose(t.inv(lower), s)

    def free_map(v):
        return torch.linalg.cholesky(from_free(v))[rows, cols]

    expected = _log_det_by_autograd(free_map, s[rows, cols])
    assert torch.allclose(t.log_abs_det_jacobian(s, lower), expected, atol=1e-10)
    # Batched matrices give one log-Jacobian each.
    assert t.log_abs_det_jacobian(s.expand(4, 3, 3), lower.expand(4, 3, 3)).shape == (4,)


def test_corr_l_cholesky_is_the_old_name_of_torchs_corr_cholesky():
    with pytest.warns(FutureWarning, match="CorrCholeskyTransform"):
        old = T.CorrLCholeskyTransform()
    x = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)
    assert torch.equal(old(x), T.CorrCholeskyTransform()(x))


@pytest.mark.parametrize("anchor", [None, 0.7, torch.tensor([-1.0, 2.0])])
def test_simplex_to_ordered(anchor):
    t = T.SimplexToOrderedTransform(anchor)
    probs = dist.Dirichlet(torch.full((2, 5), 2.0, dtype=torch.float64)).sample()
    cut = t(probs)
    assert cut.shape == (2, 4)
    assert t.codomain.check(cut).all()
    assert torch.allclose(t.inv(cut), probs, atol=1e-12)
    assert t.forward_shape((2, 5)) == (2, 4) and t.inverse_shape((4,)) == (5,)
    # Its meaning: an ordered logistic with predictor at the anchor gives back the probabilities.
    predictor = t.anchor_point.to(torch.float64).expand(2)
    assert torch.allclose(dist.OrderedLogistic(predictor, cut).probs, probs, atol=1e-12)
    # The log-Jacobian over the simplex's free coordinates, the first K - 1 probabilities.
    for row in range(2):

        def free_map(q, row=row):
            full = torch.cat([q, 1 - q.sum(-1, keepdim=True)])
            return t._call(full.expand(2, 5))[row]

        expected = _log_det_by_autograd(free_map, probs[row, :-1])
        assert torch.allclose(t.log_abs_det_jacobian(probs, cut)[row], expected, atol=1e-9)


def test_normalize_maps_onto_the_sphere():
    x = torch.tensor([[3.0, 4.0], [-1.0, 0.5]], dtype=torch.float64)
    t = transform_to(constraints.sphere)
    assert isinstance(t, T.Normalize)
    y = t(x)
    assert constraints.sphere.check(y).all()
    assert torch.allclose(y[0], torch.tensor([0.6, 0.8], dtype=torch.float64))
    # Many-to-one: the inverse picks a preimage that maps back to the same point.
    assert not t.bijective
    assert torch.allclose(t(t.inv(y)), y)
    assert torch.allclose(T.Normalize(p=1)(x).abs().sum(-1), torch.ones(2, dtype=torch.float64))
    assert T.Normalize(1) == T.Normalize(p=1) != T.Normalize()
    with pytest.raises(ArgumentError, match="p > 0"):
        T.Normalize(p=0)


BLOCK_FLOWS = {
    "tanh": dict(),
    "sigmoid_residual": dict(activation="sigmoid", residual="normal"),
    "elu_gated": dict(activation="ELU", residual="gated", hidden_factors=[3, 2]),
    "leaky_relu_one_layer": dict(activation="LeakyReLU", hidden_factors=[5]),
}


@pytest.mark.parametrize("name", sorted(BLOCK_FLOWS))
def test_block_autoregressive_is_triangular_with_the_right_log_det(name):
    torch.manual_seed(3)
    t = T.block_autoregressive(4, **BLOCK_FLOWS[name]).double()
    if t.residual == "gated":
        with torch.no_grad():
            t.gate.fill_(0.4)  # away from the start value, so the gate's role is checked
    x = torch.randn(3, 4, dtype=torch.float64)
    y = t(x)
    log_det = t.log_abs_det_jacobian(x, y)
    assert y.shape == x.shape and log_det.shape == (3,)
    for i in range(3):
        jac = jacobian(t._call, x[i])
        # y_j depends on x_0 .. x_j only, and increases with x_j.
        assert torch.equal(jac.triu(1), torch.zeros_like(jac))
        assert torch.all(jac.diagonal() > 0)
        expected = torch.linalg.slogdet(jac)[1]
        assert torch.allclose(log_det[i], expected, atol=1e-10)
    # Scoring a pair it did not just compute recomputes rather than reusing the memo.
    x2 = x.flip(0)
    assert torch.allclose(t.log_abs_det_jacobian(x2, t._call(x2)), log_det.flip(0))


def test_block_autoregressive_has_no_inverse_and_checks_its_options():
    t = T.BlockAutoregressive(2)
    with pytest.raises(NotImplementedError, match="no closed-form inverse"):
        t._inverse(torch.zeros(2))
    with pytest.raises(ArgumentError, match="activation"):
        T.BlockAutoregressive(2, activation="relu")
    with pytest.raises(ArgumentError, match="residual"):
        T.BlockAutoregressive(2, residual="skip")
    with pytest.raises(ArgumentError, match="hidden factors"):
        T.BlockAutoregressive(2, hidden_factors=[0])


def test_iterated_composes_independent_copies():
    flow = T.iterated(3, T.block_autoregressive, 2, hidden_factors=[4])
    assert isinstance(flow, T.ComposeTransformModule)
    assert len(flow.parts) == 3 and len({id(p) for p in flow.parts}) == 3
    one = sum(p.numel() for p in flow.parts[0].parameters())
    assert sum(p.numel() for p in flow.parameters()) == 3 * one
    with pytest.raises(ArgumentError, match="repeats"):
        T.iterated(0, T.elu)


@pytest.mark.slow
def test_block_autoregressive_guide_fits_a_gaussian_posterior():
    # A conjugate model: z ~ N(0, I_2), x_n ~ N(z, 1) for n = 1..N gives the posterior
    # N(sum(x) / (N + 1), 1 / (N + 1)) per coordinate. The flow guide must find its mean and
    # scale; the tolerances (0.1 on the mean, 25% on the scale, with posterior sd 0.33) are far
    # above the Monte Carlo error of 4000 guide draws (sd / sqrt(4000) = 0.005) and leave
    # room for the optimizer's own error after 700 steps.
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    data = torch.tensor([[1.5, -0.5], [2.0, -1.0], [1.0, 0.0], [2.5, -1.5], [1.0, -0.5]])
    data = torch.cat([data, data - 0.25])  # N = 10 rows

    def model():
        z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        with pyro.plate("rows", len(data)):
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=data)

    guide = AutoNormalizingFlow(
        model, lambda dim: T.iterated(2, T.block_autoregressive, dim, hidden_factors=[4])
    )
    svi = SVI(model, guide, Adam({"lr": 0.02}), Trace_ELBO(num_particles=4))
    for _ in range(700):
        svi.step()
    with torch.no_grad():
        draws = guide.get_posterior().sample((4000,))
    n = len(data)
    assert torch.allclose(draws.mean(0), data.sum(0) / (n + 1), atol=0.1)
    assert torch.allclose(draws.std(0), torch.full((2,), 1 / math.sqrt(n + 1)), rtol=0.25)


def test_corr_l_cholesky_warning_names_the_replacement():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        T.CorrLCholeskyTransform()
    assert "use CorrCholeskyTransform" in str(caught[0].message)
