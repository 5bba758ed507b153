"""The learnable flows of Pyro's "Transforms" docs page beyond the flows tutorial (planar,
radial, Householder, matrix exponential, affine coupling, ...), plain and conditional.

For each, in float64: ``log_abs_det_jacobian`` against the log-determinant of the Jacobian that
autograd computes, the inverse (where the flow has one) against the forward map, and a few
maximum-likelihood steps that must move every parameter (so the flow trains through
``TransformedDistribution``). Conditional flows are conditioned on a batch of contexts, whose
batch dims broadcast against the values'.
"""

import pytest
import torch
from torch.autograd.functional import jacobian

import engine.distributions as dist
import engine.distributions.transforms as T
from engine.errors import ArgumentError

CONTEXT = torch.tensor([0.4, -1.1, 0.9], dtype=torch.float64)

# name -> (maker of the flow over 4 entries, whether it has an inverse)
FLOWS = {
    "planar": (lambda: T.planar(4), False),
    "radial": (lambda: T.radial(4), False),
    "householder": (lambda: T.householder(4, count_transforms=3), True),
    "matrix_exponential": (lambda: T.matrix_exponential(4), True),
    "matrix_exponential_weight": (
        lambda: T.matrix_exponential(4, normalization="weight", bound=0.3),
        True,
    ),
    "matrix_exponential_spectral": (
        lambda: T.matrix_exponential(4, normalization="spectral", bound=0.3),
        True,
    ),
    "affine_coupling": (lambda: T.affine_coupling(4, split_dim=1), True),
    "sylvester": (lambda: T.sylvester(4, count_transforms=2), False),
    "neural_autoregressive_sigmoid": (lambda: T.neural_autoregressive(4, width=5), False),
    "neural_autoregressive_tanh": (lambda: T.neural_autoregressive(4, activation="tanh"), False),
    "neural_autoregressive_elu": (lambda: T.neural_autoregressive(4, activation="ELU"), False),
    "neural_autoregressive_leaky_relu": (
        lambda: T.neural_autoregressive(4, activation="LeakyReLU"),
        False,
    ),
    "spline_autoregressive": (lambda: T.spline_autoregressive(4, count_bins=5), True),
    "polynomial": (lambda: T.polynomial(4), False),
    "spline_autoregressive_quadratic": (
        lambda: T.spline_autoregressive(4, order="quadratic"),
        True,
    ),
}
CONDITIONAL_FLOWS = {
    "conditional_planar": (lambda: T.conditional_planar(4, 3), False),
    "conditional_radial": (lambda: T.conditional_radial(4, 3), False),
    "conditional_householder": (lambda: T.conditional_householder(4, 3, count_transforms=2), True),
    "conditional_matrix_exponential": (lambda: T.conditional_matrix_exponential(4, 3), True),
    "conditional_affine_coupling": (lambda: T.conditional_affine_coupling(4, 3), True),
    "conditional_neural_autoregressive": (
        lambda: T.conditional_neural_autoregressive(4, 3, width=5),
        False,
    ),
    "conditional_spline_autoregressive": (
        lambda: T.conditional_spline_autoregressive(4, 3, count_bins=5),
        True,
    ),
}


def _check_flow(transform, params, has_inverse, x):
    y = transform(x)
    log_det = transform.log_abs_det_jacobian(x, y)
    assert y.shape == x.shape and log_det.shape == x.shape[:-1]
    for i in range(x.shape[0]):
        expected = torch.linalg.slogdet(jacobian(transform._call, x[i]))[1]
        assert torch.allclose(log_det[i], expected, atol=1e-10)
    if has_inverse:
        assert torch.allclose(transform._inverse(y), x, atol=1e-10)
    else:
        with pytest.raises(NotImplementedError, match="no closed-form inverse"):
            transform._inverse(y)
    # Maximum likelihood through TransformedDistribution moves every parameter.
    flow = dist.TransformedDistribution(
        dist.Normal(torch.zeros(4, dtype=torch.float64), 1.0).to_event(1), [transform]
    )
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.Adam(params, lr=0.05)
    for _ in range(3):
        optimizer.zero_grad()
        draws = flow.rsample((16,))
        (-flow.log_prob(draws).mean() + draws.pow(2).mean()).backward()
        optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, params, strict=True))


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flow(name):
    torch.manual_seed(1)
    make, has_inverse = FLOWS[name]
    transform = make().double()
    x = torch.randn(3, 4, dtype=torch.float64)
    _check_flow(transform, list(transform.parameters()), has_inverse, x)


@pytest.mark.parametrize("name", sorted(CONDITIONAL_FLOWS))
def test_conditional_flow(name):
    torch.manual_seed(2)
    make, has_inverse = CONDITIONAL_FLOWS[name]
    conditional = make().double()
    x = torch.randn(3, 4, dtype=torch.float64)
    # One context for the whole batch ...
    _check_flow(conditional.condition(CONTEXT), list(conditional.parameters()), has_inverse, x)
    # ... or one per value: each row then gets the flow of its own context.
    contexts = CONTEXT + torch.arange(3, dtype=torch.float64).unsqueeze(-1)
    batched = conditional.condition(contexts)
    for i in range(3):
        single = conditional.condition(contexts[i])
        assert torch.allclose(batched(x)[i], single(x[i]))


def test_planar_stays_invertible_when_u_opposes_w():
    t = T.planar(2).double()
    with torch.no_grad():
        t.w.copy_(torch.tensor([1.0, 0.0]))
        t.u.copy_(torch.tensor([-5.0, 0.0]))  # unadjusted, 1 + w . u = -4: a fold
    x = torch.linspace(-3, 3, 50, dtype=torch.float64).unsqueeze(-1) * torch.tensor([1.0, 0.0])
    y = t(x)[:, 0]
    assert torch.all(y[1:] > y[:-1])  # still increasing along w


def test_householder_preserves_length_and_matrix_exponential_volume():
    x = torch.randn(5, 4, dtype=torch.float64)
    house = T.householder(4).double()
    assert torch.allclose(house(x).norm(dim=-1), x.norm(dim=-1))
    assert torch.equal(house.log_abs_det_jacobian(x, house(x)), torch.zeros(5, dtype=x.dtype))
    mexp = T.matrix_exponential(4, normalization="spectral", bound=0.5).double()
    assert torch.linalg.matrix_norm(mexp.weights(), ord=2) <= 0.5 + 1e-12


def test_affine_coupling_along_an_earlier_dim():
    torch.manual_seed(4)
    t = T.affine_coupling((4, 3), dim=-2).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    y = t(x)
    assert torch.equal(y[:, :2], x[:, :2])  # the first split_dim rows pass through
    assert torch.allclose(t.inv(y.clone()), x)
    expected = torch.linalg.slogdet(
        jacobian(lambda v: t._call(v.reshape(4, 3)).reshape(-1), x[0].reshape(-1))
    )[1]
    assert torch.allclose(t.log_abs_det_jacobian(x, y)[0], expected)


@pytest.mark.parametrize(
    "make",
    [T.neural_autoregressive, T.spline_autoregressive, T.polynomial],
    ids=["neural", "spline", "polynomial"],
)
def test_autoregressive_flows_follow_their_networks_order(make):
    # y at position permutation[k] depends on the x at permutation[:k + 1] only.
    t = make(4).double()
    x = torch.randn(4, dtype=torch.float64)
    order = t.arn.get_permutation()
    jac = jacobian(t._call, x)[order][:, order]
    assert torch.equal(jac.triu(1), torch.zeros_like(jac))
    assert torch.all(jac.diagonal() > 0)


def test_polynomial_integrates_its_squared_polynomials():
    # With the network's coefficients fixed, y_i - c_i is the integral from 0 to x_i of
    # sum_k p_k(u)^2: compare with Simpson's rule on a fine grid.
    t = T.polynomial(2).double()
    x = torch.tensor([0.8, -1.3], dtype=torch.float64)
    a = t.arn(x).reshape(t.count_sum, t.count_degree + 1, 2)
    for i in range(2):
        grid = torch.linspace(0.0, float(x[i]), 2001, dtype=torch.float64)
        powers = grid.unsqueeze(-1) ** torch.arange(t.count_degree + 1, dtype=torch.float64)
        integrand = (powers @ a[:, :, i].T).pow(2).sum(-1)
        step = float(x[i]) / 2000
        simpson = (
            step
            / 3
            * (
                integrand[0]
                + integrand[-1]
                + 4 * integrand[1:-1:2].sum()
                + 2 * integrand[2:-1:2].sum()
            )
        )
        assert torch.allclose(t(x)[i] - t.c[i], simpson, rtol=1e-9)


def test_batchnorm_normalises_in_training_and_inverts_in_evaluation():
    torch.manual_seed(5)
    t = T.batchnorm(3).double()
    data = torch.randn(400, 3, dtype=torch.float64) * torch.tensor([2.0, 0.5, 1.0]) + 3.0
    normalised = t._inverse(data)  # training mode: the batch's own statistics
    assert torch.allclose(normalised.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    var = data.var(0, unbiased=False)
    # Unit spread, but for epsilon added to the variance.
    assert torch.allclose(normalised.std(0, unbiased=False), (var / (var + t.epsilon)).sqrt())
    # The running averages moved a tenth (momentum 0.1) of the way to the batch's statistics.
    assert torch.allclose(t.moving_mean, 0.1 * data.mean(0))
    # log_prob of data under the flow is the base density of the normalised data, corrected by
    # the log-Jacobian of the normalisation (the batch variance in training mode).
    flow = dist.TransformedDistribution(
        dist.Normal(torch.zeros(3, dtype=torch.float64), 1.0).to_event(1), [t]
    )
    expected = dist.Normal(0.0, 1.0).log_prob(normalised).sum(-1) - 0.5 * (
        data.var(0, unbiased=False) + t.epsilon
    ).log().sum(-1)
    assert torch.allclose(flow.log_prob(data), expected)
    t.eval()
    x = torch.randn(5, 3, dtype=torch.float64)
    y = t(x)
    assert torch.allclose(t._inverse(y), x)
    expected = torch.linalg.slogdet(jacobian(t._call, x[0]))[1]
    assert torch.allclose(t.log_abs_det_jacobian(x, y)[0], expected)


@pytest.mark.parametrize("conditional", [False, True])
def test_generalized_channel_permute(conditional):
    torch.manual_seed(6)
    if conditional:
        t = T.conditional_generalized_channel_permute(2, channels=3).double()
        t = t.condition(torch.tensor([0.3, -0.2], dtype=torch.float64))
    else:
        t = T.generalized_channel_permute(channels=3, permutation=torch.tensor([1, 2, 0]))
        t = t.double()
        assert torch.equal(
            t(torch.arange(3.0).double().reshape(3, 1, 1)).flatten(), t.permutation.double()
        )
        with torch.no_grad():
            t.L_raw.normal_()
            t.U_raw.normal_()
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    y = t(x)
    # Each pixel's channels are mixed by the same matrix W.
    assert torch.allclose(y[1, :, 1, 2], t.weight() @ x[1, :, 1, 2])
    assert torch.allclose(t._inverse(y), x)
    expected = torch.linalg.slogdet(
        jacobian(lambda v: t._call(v.reshape(3, 2, 3)).reshape(-1), x[0].reshape(-1))
    )[1]
    assert torch.allclose(t.log_abs_det_jacobian(x, y)[0], expected)
    with pytest.raises(ArgumentError, match="each channel"):
        T.generalized_channel_permute(channels=3, permutation=torch.tensor([0, 0, 1]))


def test_flow_options_are_checked():
    with pytest.raises(ArgumentError, match="normalization"):
        T.matrix_exponential(3, normalization="batch")
    with pytest.raises(ArgumentError, match="count_transforms"):
        T.Householder(3, count_transforms=0)
    with pytest.raises(ArgumentError, match="split_dim"):
        T.affine_coupling(4, split_dim=4)
    with pytest.raises(ArgumentError, match="event shape"):
        T.affine_coupling(4, dim=-2)
    with pytest.raises(ArgumentError, match="return 3 tensors"):
        T.ConditionalPlanar(torch.nn.Linear(3, 9)).condition(torch.zeros(3))(torch.zeros(4))
    with pytest.raises(ArgumentError, match="activation"):
        T.neural_autoregressive(3, activation="relu")
    with pytest.raises(ArgumentError, match="order"):
        T.spline_autoregressive(3, order="cubic")
