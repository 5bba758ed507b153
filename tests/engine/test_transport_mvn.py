"""``OMTMultivariateNormal`` and ``AVFMultivariateNormal`` (issue 17): the density and draws of
a multivariate normal, with other unbiased pathwise gradients for the Cholesky factor."""

import itertools
import math
import pickle

import pytest
import torch

import engine.distributions as dist
from engine.errors import ShapeError

F64 = torch.float64
SCALE_TRIL = torch.tensor([[0.9, 0.0, 0.0], [0.5, 1.2, 0.0], [-0.4, 0.3, 0.8]], dtype=F64)
LOC = torch.tensor([0.3, -0.7, 1.1], dtype=F64)
LOWER = torch.ones(3, 3).tril(-1).bool()


def _make(kind, loc, scale_tril, control_var=None):
    if kind == "omt":
        return dist.OMTMultivariateNormal(loc, scale_tril)
    if control_var is None:
        control_var = torch.tensor(
            [[[0.4, -0.6, 0.9], [0.2, 0.5, -0.3]], [[-0.8, 0.7, 0.1], [0.6, 0.3, -0.5]]], dtype=F64
        )
    return dist.AVFMultivariateNormal(loc, scale_tril, control_var)


@pytest.mark.parametrize("kind", ["omt", "avf"])
def test_log_prob_is_torchs_multivariate_normal(kind):
    x = torch.tensor([[0.0, 0.0, 0.0], [1.5, -2.0, 0.4]], dtype=F64)
    d = _make(kind, LOC, SCALE_TRIL)
    reference = torch.distributions.MultivariateNormal(LOC, scale_tril=SCALE_TRIL)
    assert torch.allclose(d.log_prob(x), reference.log_prob(x))
    assert torch.allclose(d.covariance_matrix, SCALE_TRIL @ SCALE_TRIL.T)
    assert d.batch_shape == () and d.event_shape == (3,) and d.has_rsample


@pytest.mark.parametrize("kind", ["omt", "avf"])
def test_draws_have_the_mean_and_covariance(kind):
    torch.manual_seed(0)
    n = 40000
    z = _make(kind, LOC, SCALE_TRIL).rsample((n,))
    cov = SCALE_TRIL @ SCALE_TRIL.T
    # Sample mean: standard error sqrt(Sigma_ii / n). Sample covariance entry (i, j) of a normal:
    # variance (Sigma_ij^2 + Sigma_ii Sigma_jj) / n. Both checked within 4.5 standard errors.
    assert ((z.mean(0) - LOC).abs() <= 4.5 * (cov.diagonal() / n).sqrt()).all()
    var_of_cov = (cov.square() + cov.diagonal().outer(cov.diagonal())) / n
    assert ((torch.cov(z.T) - cov).abs() <= 4.5 * var_of_cov.sqrt()).all()


def _square_norm(z):
    return z.square().sum(-1)


def _square_norm_grads(loc, scale_tril):
    # E|z|^2 = |loc|^2 + trace(L L^T): gradients 2 loc and 2 L.
    return 2 * loc, 2 * scale_tril


_OMEGA = torch.tensor([0.8, -0.5, 0.6], dtype=F64)


def _cosine(z):
    return torch.cos(z @ _OMEGA)


def _cosine_grads(loc, scale_tril):
    # E cos(w.z) = cos(w.loc) exp(-|L^T w|^2 / 2) (the normal's characteristic function).
    s = scale_tril.T @ _OMEGA
    damp = torch.exp(-0.5 * s.square().sum())
    loc_grad = -torch.sin(_OMEGA @ loc) * damp * _OMEGA
    return loc_grad, -torch.cos(_OMEGA @ loc) * damp * _OMEGA.outer(s)


@pytest.mark.parametrize("kind", ["omt", "avf"])
@pytest.mark.parametrize(
    "f, exact", [(_square_norm, _square_norm_grads), (_cosine, _cosine_grads)], ids=["sq", "cos"]
)
def test_gradient_estimates_are_unbiased(kind, f, exact):
    torch.manual_seed(1)
    batches, per_batch = 100, 200
    loc = LOC.clone().requires_grad_()
    scale_tril = SCALE_TRIL.clone().requires_grad_()
    loc_grads, tril_grads = [], []
    for _ in range(batches):
        z = _make(kind, loc, scale_tril).rsample((per_batch,))
        loc_grad, tril_grad = torch.autograd.grad(f(z).mean(), [loc, scale_tril])
        assert (tril_grad.triu(1) == 0).all()  # only the lower triangle is a parameter
        loc_grads.append(loc_grad)
        tril_grads.append(tril_grad)
    exact_loc, exact_tril = exact(LOC, SCALE_TRIL)
    # The batch means are independent estimates: their average must lie within a few standard
    # errors (std over batches / sqrt(batches)) of the exact gradient. 4.5 SE over 9 + 3 entries
    # keeps the chance of a false alarm below 1e-4 (normal tails; 100 batches of 200 draws).
    for estimates, truth in [(loc_grads, exact_loc), (tril_grads, exact_tril.tril())]:
        estimates = torch.stack(estimates)
        error = estimates.mean(0) - truth
        standard_error = estimates.std(0) / math.sqrt(batches)
        assert (error.abs() <= 4.5 * standard_error + 1e-12).all(), (error, standard_error)


def test_omt_in_one_dimension_is_the_reparameterisation_gradient():
    # With D = 1 the only transport map is the affine one, so both estimators coincide.
    torch.manual_seed(2)
    loc = torch.tensor([0.5], dtype=F64, requires_grad=True)
    scale = torch.tensor([[1.7]], dtype=F64, requires_grad=True)
    z = dist.OMTMultivariateNormal(loc, scale).rsample((50,))
    torch.sin(z).sum().backward()
    eps = (z.detach() - 0.5) / 1.7
    assert torch.allclose(scale.grad, (torch.cos(z.detach()) * eps).sum().reshape(1, 1))
    assert torch.allclose(loc.grad, torch.cos(z.detach()).sum().reshape(1))


def _avf_tril_grad(control_var, seed):
    torch.manual_seed(seed)
    scale_tril = SCALE_TRIL.clone().requires_grad_()
    z = dist.AVFMultivariateNormal(LOC, scale_tril, control_var).rsample((5,))
    (tril_grad,) = torch.autograd.grad(_cosine(z).sum() + z.pow(3).sum(), [scale_tril])
    return tril_grad


def test_avf_control_var_gets_the_gradient_of_half_the_squared_estimate():
    torch.manual_seed(3)
    control_var = torch.randn(2, 2, 3, dtype=F64, requires_grad=True)
    torch.manual_seed(4)
    scale_tril = SCALE_TRIL.clone().requires_grad_()
    z = dist.AVFMultivariateNormal(LOC, scale_tril, control_var).rsample((5,))
    (_cosine(z).sum() + z.pow(3).sum()).backward()
    # Central differences of |L-gradient estimate|^2 / 2 over control_var, with the same draws.
    step = 1e-6
    numeric = torch.zeros_like(control_var)
    for index in itertools.product(*map(range, control_var.shape)):
        shifted = []
        for sign in (1, -1):
            moved = control_var.detach().clone()
            moved[index] += sign * step
            shifted.append(0.5 * _avf_tril_grad(moved, seed=4).square().sum())
        numeric[index] = (shifted[0] - shifted[1]) / (2 * step)
    assert torch.allclose(control_var.grad, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_avf_adapting_the_control_variate_reaches_the_least_variance():
    # For a linear cost f(z) = w.z the gradient of L[a, b] (a > b) from one draw is
    # (w_a + W_ab h_a) eps_b - W_ab h_b eps_a with h = L^T w: its variance is least at
    # W_ab = -w_a h_a / (h_a^2 + h_b^2), namely w_a^2 h_b^2 / (h_a^2 + h_b^2), against w_a^2 for the
    # reparameterisation gradient (W = 0). A rank-1 W = B^T C reaches every such optimum in 3-D.
    torch.manual_seed(5)
    h = torch.tensor([0.1, 1.0, 1.0], dtype=F64)
    w = torch.linalg.solve(SCALE_TRIL.T, h)
    least = sum(w[a] ** 2 * h[b] ** 2 / (h[a] ** 2 + h[b] ** 2) for a in range(3) for b in range(a))
    reparam = sum(w[a] ** 2 * a for a in range(3))
    scale_tril = SCALE_TRIL.clone().requires_grad_()
    control_var = torch.full((2, 1, 3), 0.1, dtype=F64, requires_grad=True)
    optim = torch.optim.Adam([control_var], lr=0.05)
    for _ in range(250):
        z = dist.AVFMultivariateNormal(LOC, scale_tril, control_var).rsample((256,))
        (z @ w).sum().backward()
        optim.step()
        optim.zero_grad()
    draws = 1000
    single = []
    for _ in range(draws):
        z = dist.AVFMultivariateNormal(LOC, scale_tril, control_var.detach()).rsample()
        single.append(torch.autograd.grad(z @ w, scale_tril)[0][LOWER])
    single = torch.stack(single)
    variance = single.var(0).sum()
    # A sample variance of 1000 draws is within ~5 % (sqrt(2 / 999)) of the true one: 25 % of
    # headroom covers it and what Adam's last noisy steps leave of the optimum.
    assert variance < 1.25 * least < 0.35 * reparam
    # The exact L-gradient of E[w.z] is 0: still unbiased (4.5 standard errors).
    assert (single.mean(0).abs() <= 4.5 * single.std(0) / math.sqrt(draws)).all()


def test_batched_parameters_are_refused_with_the_fix():
    with pytest.raises(ShapeError, match="OMTMultivariateNormal: loc must be 1-dimensional"):
        dist.OMTMultivariateNormal(torch.zeros(2, 3), torch.eye(3))
    with pytest.raises(ShapeError, match=r"scale_tril must be a 3 x 3 matrix"):
        dist.OMTMultivariateNormal(torch.zeros(3), torch.eye(3).expand(2, 3, 3))
    with pytest.raises(ShapeError, match=r"control_var must have shape \(2, K, D\) with D = 3"):
        dist.AVFMultivariateNormal(torch.zeros(3), torch.eye(3), torch.ones(2, 1, 4))
    with pytest.raises(ValueError):  # ShapeError is a ValueError, as Pyro raises
        dist.AVFMultivariateNormal(torch.zeros(3), torch.eye(3), torch.ones(1, 3))


@pytest.mark.parametrize("kind", ["omt", "avf"])
def test_expand_gives_independent_copies_that_keep_the_gradients(kind):
    scale_tril = SCALE_TRIL.clone().requires_grad_()
    d = _make(kind, LOC, scale_tril).expand([4])
    z = d.rsample((2,))
    assert z.shape == (2, 4, 3) and d.batch_shape == (4,)
    assert not torch.equal(z[0, 0], z[0, 1])
    z.sum().backward()
    assert scale_tril.grad is not None and (scale_tril.grad.triu(1) == 0).all()


@pytest.mark.parametrize("kind", ["omt", "avf"])
def test_pickle_round_trip_and_sample_without_grad(kind):
    d = _make(kind, LOC, SCALE_TRIL.clone().requires_grad_())
    again = pickle.loads(pickle.dumps(d))
    assert type(again) is type(d)
    assert torch.allclose(again.log_prob(LOC), d.log_prob(LOC))
    assert not d.sample((3,)).requires_grad
