"""The normalizing flows of Pyro's flows tutorial (``normalizing_flows_intro``): ``Spline``,
``SplineCoupling``, ``AffineAutoregressive``, their conditional forms, ``engine.nn``'s networks,
``TransformedDistribution``/``ConditionalTransformedDistribution`` with ``clear_cache`` and
``condition``, each used the way that tutorial (and Pyro's docs) use them.

Every flow's ``log_abs_det_jacobian`` is checked against the log-determinant of the Jacobian
autograd computes, its inverse against its forward map, in float64; the training tests fit flows
by maximum likelihood with Adam as the tutorial does and compare the held-out log-likelihood with
that of the best Gaussian.
"""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

import engine as pyro
import engine.distributions as dist
import engine.distributions.transforms as T
from engine.distributions.conditional import ConditionalComposeTransformModule
from engine.errors import ArgumentError, ShapeError
from engine.infer import SVI, Trace_ELBO
from engine.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN, DenseNN
from engine.optim import Adam

CONTEXT = torch.tensor([0.7, -1.3], dtype=torch.float64)


def _coupling_without_lower_spline():
    net = DenseNN(2, [16], param_dims=[2 * 4, 2 * 4, 2 * 3])
    return T.SplineCoupling(4, 2, net, count_bins=4, order="quadratic", identity=True)


# Each maker builds a flow on float64; the conditional ones are conditioned on CONTEXT.
FLOWS = {
    "spline_linear": lambda: T.spline(3, count_bins=6, order="linear").double(),
    "spline_quadratic": lambda: T.spline(3, count_bins=6, order="quadratic").double(),
    "spline_coupling": lambda: T.spline_coupling(4, count_bins=5).double(),
    "spline_coupling_identity": lambda: _coupling_without_lower_spline().double(),
    "affine_autoregressive": lambda: T.affine_autoregressive(4, hidden_dims=[20, 20]).double(),
    "affine_autoregressive_stable": lambda: T.affine_autoregressive(4, stable=True).double(),
    "conditional_spline": lambda: (
        T.conditional_spline(3, context_dim=2).double().condition(CONTEXT)
    ),
    "conditional_spline_quadratic": lambda: (
        T.conditional_spline(3, 2, order="quadratic").double().condition(CONTEXT)
    ),
    "conditional_affine_autoregressive": lambda: (
        T.conditional_affine_autoregressive(4, context_dim=2).double().condition(CONTEXT)
    ),
}


def _inputs(flow, count=6, seed=0):
    """Random float64 inputs, some outside the splines' box [-3, 3] (there they are the
    identity)."""
    dim = 3 if isinstance(flow, T.ConditionedSpline) else 4
    x = 2.0 * torch.randn(count, dim, generator=torch.Generator().manual_seed(seed)).double()
    x[0, 0], x[1, -1] = 4.0, -3.5
    return x


def _log_abs_det_by_autograd(flow, x):
    """log |det J| of the flow at each row of x, J computed by autograd on the whole vector."""
    return torch.stack([torch.linalg.slogdet(jacobian(flow, row)).logabsdet for row in x])


def _summed(flow, log_det):
    """Element-wise flows (event_dim 0) give one term per coordinate: the vector's log-det
    is their sum."""
    return log_det.sum(-1) if flow.domain.event_dim == 0 else log_det


# --- Jacobians and inverses ---------------------------------------------------------------------


@pytest.mark.parametrize("name", FLOWS)
def test_log_abs_det_jacobian_is_the_log_determinant_autograd_finds(name):
    torch.manual_seed(1)
    flow = FLOWS[name]()
    x = _inputs(flow)
    y = flow(x)
    expected = _log_abs_det_by_autograd(flow, x)
    # Right after the forward pass (the log-det is kept with the cached pair) ...
    assert torch.allclose(_summed(flow, flow.log_abs_det_jacobian(x, y)), expected, atol=1e-10)
    # ... and recomputed for a pair that is not the cached one.
    flow(x + 1.0)
    assert torch.allclose(_summed(flow, flow.log_abs_det_jacobian(x, y)), expected, atol=1e-10)
    # A flow that is not the identity: the check above compares real numbers.
    assert not torch.allclose(y, x)


@pytest.mark.parametrize("name", FLOWS)
def test_inverse_undoes_forward_and_gives_the_same_log_det(name):
    torch.manual_seed(2)
    flow = FLOWS[name]()
    x = _inputs(flow)
    y = flow(x)
    log_det = flow.log_abs_det_jacobian(x, y)
    flow.clear_cache()  # otherwise inv(y) would hand back the cached x
    x_back = flow.inv(y)
    assert x_back is not x
    assert torch.allclose(x_back, x, atol=1e-10)
    # The log-det that comes out of the inverse pass is the forward map's, at x_back.
    assert torch.allclose(flow.log_abs_det_jacobian(x_back, y), log_det, atol=1e-10)
    # And forward(inverse(y)) == y for values the flow never produced.
    y_new = _inputs(flow, seed=3)
    flow.clear_cache()
    x_new = flow.inv(y_new)
    flow.clear_cache()
    assert torch.allclose(flow(x_new), y_new, atol=1e-10)


@pytest.mark.parametrize("order", ["linear", "quadratic"])
def test_spline_is_increasing_inside_its_box_and_the_identity_outside(order):
    torch.manual_seed(3)
    spline = T.Spline(2, count_bins=8, bound=3.0, order=order).double()
    grid = torch.linspace(-5.0, 5.0, 4001, dtype=torch.float64)[:, None].expand(-1, 2)
    y = spline(grid)
    assert (y.diff(dim=0) > 0).all()
    outside = grid.abs() > 3.0
    assert torch.equal(y[outside], grid[outside])
    # Continuous where it meets the identity: the box's corners are fixed points.
    edges = torch.tensor([[-3.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(spline(edges), edges, atol=1e-12)
    assert torch.isfinite(spline.log_abs_det_jacobian(grid, y)).all()


@pytest.mark.parametrize("stable", [False, True])
def test_affine_autoregressive_jacobian_is_triangular_in_the_networks_order(stable):
    torch.manual_seed(4)
    flow = T.affine_autoregressive(5, hidden_dims=[16, 16], stable=stable).double()
    order = flow.arn.get_permutation()
    assert sorted(order.tolist()) == list(range(5))
    x = torch.randn(5, dtype=torch.float64)
    J = jacobian(flow, x)[order][:, order]  # rows and columns in the network's order
    assert torch.equal(J.triu(1), torch.zeros_like(J))
    assert (J.tril(-1).abs() > 1e-8).any()  # earlier variables do move later ones
    _, log_scale = flow._loc_and_log_scale(x)
    assert torch.allclose(J.diagonal(), log_scale[order].exp(), atol=1e-12)


@pytest.mark.parametrize("skip_connections", [False, True])
def test_autoregressive_nn_outputs_depend_only_on_earlier_variables(skip_connections):
    torch.manual_seed(5)
    order = torch.tensor([3, 0, 2, 1])
    net = AutoRegressiveNN(
        4, [12, 12], param_dims=[1, 2], permutation=order, skip_connections=skip_connections
    ).double()
    x = torch.randn(4, dtype=torch.float64)
    a, b = net(x)
    assert a.shape == (1, 4) and b.shape == (2, 4)
    # One Jacobian per output row (a location-like row, then two rows of b), each (4, 4).
    for J in jacobian(lambda v: torch.cat(net(v)), x):
        J = J[order][:, order]
        assert torch.equal(J.triu(0), torch.zeros_like(J))  # strictly lower: no self-loop
        assert (J.tril(-1).abs() > 0).any()


def test_conditional_autoregressive_nn_reaches_the_first_variable_through_the_context():
    torch.manual_seed(6)
    net = ConditionalAutoRegressiveNN(3, 2, [9], permutation=torch.tensor([1, 2, 0])).double()
    x, context = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    loc, _ = net(x, context=context)
    dloc_dx = jacobian(lambda v: net(v, context=context)[0], x)
    dloc_dc = jacobian(lambda c: net(x, context=c)[0], context)
    assert torch.equal(dloc_dx[1], torch.zeros(3, dtype=torch.float64))  # first: no x at all
    assert (dloc_dc[1].abs() > 0).any()  # but it does see the context
    assert loc.shape == (3,)


# --- the tutorial, cell by cell -----------------------------------------------------------------


def test_fixed_transforms_of_the_first_cells_make_a_log_normal():
    dist_x = dist.Normal(torch.zeros(1), torch.ones(1))
    affine_transform = T.AffineTransform(loc=3, scale=0.5)
    exp_transform = T.ExpTransform()
    dist_y = dist.TransformedDistribution(dist_x, [affine_transform, exp_transform])
    y = dist_y.sample([1000])
    assert (y > 0).all()
    expected = torch.distributions.LogNormal(3.0, 0.5).log_prob(y)
    assert torch.allclose(dist_y.log_prob(y), expected, atol=1e-5)
    dist_y.clear_cache()


def _circles(count, generator):
    """Two noisy concentric circles, radii 1 and 0.5: what sklearn's make_circles(factor=0.5,
    noise=0.05) draws for the tutorial."""
    outer = torch.rand(count, generator=generator) < 0.5
    radius = torch.where(outer, 1.0, 0.5)
    angle = 2 * math.pi * torch.rand(count, generator=generator)
    points = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)
    return points + 0.05 * torch.randn(count, 2, generator=generator)


@pytest.fixture
def one_thread():
    """Train on one thread: these tensors are small, so more threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def circles():
    """The tutorial's standardised data set (1000 points), a held-out set of 2000 from the same
    distribution, and the best Gaussian fitted to the first."""
    generator = torch.Generator().manual_seed(0)
    train, test = _circles(1000, generator), _circles(2000, generator)
    mean, sd = train.mean(0), train.std(0)
    train, test = (train - mean) / sd, (test - mean) / sd
    gaussian = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    return train, test, gaussian


def _assert_clearly_better(log_lik, reference_log_lik):
    """The mean held-out log-likelihood gain over the reference is over 5 standard errors.

    The gain is a mean over 2000 held-out points of per-point differences; its standard error is
    their standard deviation over sqrt(2000). Five standard errors rule out a chance gain (one
    sided, p < 3e-7), so the fit has really learnt the data's non-Gaussian shape.
    """
    difference = log_lik - reference_log_lik
    standard_error = difference.std() / math.sqrt(len(difference))
    assert difference.mean() > 5 * standard_error, (difference.mean(), standard_error)
    return difference.mean()


def _train(flow_dist, modules, data, steps, lr):
    optimizer = torch.optim.Adam(modules.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -flow_dist.log_prob(data).mean()
        loss.backward()
        optimizer.step()
        flow_dist.clear_cache()
        losses.append(loss.item())
    return losses


def test_spline_learns_the_marginals_as_in_the_tutorial(circles, one_thread):
    train, test, gaussian = circles
    torch.manual_seed(0)
    base_dist = dist.Normal(torch.zeros(2), torch.ones(2))
    spline_transform = T.Spline(2, count_bins=16)
    flow_dist = dist.TransformedDistribution(base_dist, [spline_transform])
    losses = _train(flow_dist, spline_transform, train, steps=100, lr=2e-2)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        log_lik = flow_dist.log_prob(test).sum(-1)  # element-wise: one term per coordinate
    # Each coordinate's marginal is bimodal: a spline per coordinate beats a Gaussian one.
    _assert_clearly_better(log_lik, gaussian.log_prob(test))
    samples = flow_dist.sample(torch.Size([1000]))
    assert samples.shape == (1000, 2) and torch.isfinite(samples).all()


def test_spline_coupling_learns_the_joint_as_in_the_tutorial(circles, one_thread):
    train, test, gaussian = circles
    torch.manual_seed(0)
    base_dist = dist.Normal(torch.zeros(2), torch.ones(2))
    spline_transform = T.spline_coupling(2, count_bins=16)
    flow_dist = dist.TransformedDistribution(base_dist, [spline_transform])
    _train(flow_dist, spline_transform, train, steps=100, lr=1e-2)
    with torch.no_grad():
        log_lik = flow_dist.log_prob(test)
    assert log_lik.shape == (2000,)
    gain = _assert_clearly_better(log_lik, gaussian.log_prob(test))
    # The joint flow learns more than the element-wise one can (its gain above is about 0.15).
    assert gain > 0.3


def test_conditional_spline_learns_x2_given_x1_as_in_the_tutorial(circles, one_thread):
    train, test, gaussian = circles
    torch.manual_seed(0)
    dist_base = dist.Normal(torch.zeros(1), torch.ones(1))
    x1_transform = T.spline(1)
    dist_x1 = dist.TransformedDistribution(dist_base, [x1_transform])
    x2_transform = T.conditional_spline(1, context_dim=1)
    dist_x2_given_x1 = dist.ConditionalTransformedDistribution(dist_base, [x2_transform])
    assert dist_x2_given_x1.condition(torch.ones(1)).sample().shape == (1,)

    modules = torch.nn.ModuleList([x1_transform, x2_transform])
    optimizer = torch.optim.Adam(modules.parameters(), lr=2e-2)
    x1, x2 = train[:, 0][:, None], train[:, 1][:, None]
    for _ in range(100):
        optimizer.zero_grad()
        ln_p_x1 = dist_x1.log_prob(x1)
        ln_p_x2_given_x1 = dist_x2_given_x1.condition(x1.detach()).log_prob(x2.detach())
        loss = -(ln_p_x1 + ln_p_x2_given_x1).mean()
        loss.backward()
        optimizer.step()
        dist_x1.clear_cache()
        dist_x2_given_x1.clear_cache()

    with torch.no_grad():
        t1, t2 = test[:, :1], test[:, 1:]
        log_lik = (dist_x1.log_prob(t1) + dist_x2_given_x1.condition(t1).log_prob(t2))[:, 0]
    _assert_clearly_better(log_lik, gaussian.log_prob(test))
    # The tutorial's last cell: a batch of contexts broadcasts against the sample shape.
    x1_flow = dist_x1.sample(torch.Size([1000]))
    x2_flow = dist_x2_given_x1.condition(x1_flow).sample(torch.Size([1000]))
    assert torch.cat((x1_flow, x2_flow), dim=-1).shape == (1000, 2)


def test_affine_autoregressive_learns_a_banana_up_to_its_true_density(one_thread):
    # x1 ~ N(0, 1), x2 | x1 ~ N(x1^2, 0.5^2): one affine autoregressive layer in the order
    # (x1, x2) can represent it exactly, so the fit approaches the true log-density.
    generator = torch.Generator().manual_seed(1)

    def banana(count):
        x1 = torch.randn(count, generator=generator)
        return torch.stack([x1, x1**2 + 0.5 * torch.randn(count, generator=generator)], -1)

    train, test = banana(1000), banana(2000)
    true_log_lik = torch.distributions.Normal(0.0, 1.0).log_prob(test[:, 0])
    true_log_lik = true_log_lik + torch.distributions.Normal(test[:, 0] ** 2, 0.5).log_prob(
        test[:, 1]
    )
    gaussian = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))

    torch.manual_seed(0)
    arn = AutoRegressiveNN(2, [32], permutation=torch.tensor([0, 1]))
    transform = T.AffineAutoregressive(arn)
    flow_dist = dist.TransformedDistribution(
        dist.Normal(torch.zeros(2), 1.0).to_event(1), [transform]
    )
    _train(flow_dist, transform, train, steps=200, lr=1e-2)
    with torch.no_grad():
        log_lik = flow_dist.log_prob(test)
    _assert_clearly_better(log_lik, gaussian.log_prob(test))
    # No fit beats the true density on held-out data beyond chance (4 standard errors), and
    # this one gets within 0.1 nats of it.
    difference = log_lik - true_log_lik
    standard_error = difference.std() / math.sqrt(len(difference))
    assert difference.mean() < 4 * standard_error
    assert difference.mean() > -0.1


def test_pyro_module_trains_a_flow_with_svi(one_thread):
    pyro.clear_param_store()
    torch.manual_seed(0)
    data = torch.randn(500, 2).exp()  # log-normal coordinates: skewed, not Gaussian
    transform = T.spline(2, bound=8.0)

    def model(data):
        pyro.module("my_transform", transform)
        flow_dist = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0), [transform])
        with pyro.plate("data", len(data)):
            pyro.sample("obs", flow_dist.to_event(1), obs=data)

    def guide(data):
        pass

    svi = SVI(model, guide, Adam({"lr": 0.02}), Trace_ELBO())
    # No clear_cache between steps: the optimizer's update marks the transform's cache stale.
    losses = [svi.step(data) for _ in range(60)]
    assert losses[-1] < losses[0] - 0.1 * abs(losses[0])
    store = pyro.get_param_store()
    assert "my_transform$$$unnormalized_widths" in store
    assert store["my_transform$$$unnormalized_widths"] is transform.unnormalized_widths


# --- caches, modules, composition ---------------------------------------------------------------


def test_cache_serves_the_last_pair_until_the_parameters_change():
    torch.manual_seed(7)
    transform = T.affine_autoregressive(3)
    x = torch.randn(4, 3)
    y = transform(x)
    assert transform.inv(y) is x  # scoring a value just drawn needs no inversion
    optimizer = torch.optim.Adam(transform.parameters(), lr=0.1)
    transform.log_abs_det_jacobian(x, y).sum().backward()
    optimizer.step()
    x_new = transform.inv(y)  # the parameters moved: recomputed, not the stale x
    assert x_new is not x
    assert torch.allclose(transform(x_new), y, atol=1e-5)
    flow_dist = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [transform])
    flow_dist.clear_cache()
    assert transform._cached_x_y == (None, None)


def test_compose_transform_module_registers_every_part_with_pyro_module():
    pyro.clear_param_store()
    flow = dist.ComposeTransformModule([T.spline(2), T.ExpTransform(), T.spline_coupling(2)])
    pyro.module("flow", flow)
    names = set(pyro.get_param_store().keys())
    assert "flow$$$0.unnormalized_widths" in names
    # Named by their place among the learnable parts (the ExpTransform has none), as in Pyro.
    assert any(name.startswith("flow$$$1.upper_spline.nn.layers") for name in names)
    assert len(names) == len(list(flow.parameters()))
    x = torch.randn(5, 2)
    assert torch.allclose(flow.inv(flow(x)), x, atol=1e-5)


def test_conditional_compose_and_inverse_condition_like_their_parts():
    torch.manual_seed(8)
    stack = ConditionalComposeTransformModule(
        [T.conditional_spline(2, context_dim=3), T.spline(2)], cache_size=1
    )
    context, x = torch.randn(3), torch.randn(4, 2)
    y = stack.condition(context)(x)
    assert torch.allclose(stack.inv.condition(context)(y), x, atol=1e-5)
    assert len(list(stack.parameters())) == 4 + 6  # the spline's 4, the DenseNN's 3 layers


def test_transform_modules_are_torch_transforms_and_modules():
    for transform in [T.spline(2), T.spline_coupling(2), T.affine_autoregressive(2)]:
        assert isinstance(transform, torch.distributions.Transform)
        assert isinstance(transform, dist.TransformModule)
        assert isinstance(transform, torch.nn.Module)
        assert transform.bijective
    assert T.spline(2).event_dim == 0
    assert T.spline_coupling(2).event_dim == 1
    assert T.affine_autoregressive(2).event_dim == 1
    assert isinstance(T.conditional_spline(2, 1), dist.ConditionalTransformModule)


# --- mistakes get clear errors ------------------------------------------------------------------


def test_bad_settings_are_named_with_their_fix():
    with pytest.raises(ArgumentError, match="order='cubic'"):
        T.spline(2, order="cubic")
    with pytest.raises(ArgumentError, match="count_bins=0"):
        T.Spline(2, count_bins=0)
    with pytest.raises(ArgumentError, match="at least input_dim=5"):
        AutoRegressiveNN(5, [3])
    with pytest.raises(ArgumentError, match="permutation"):
        AutoRegressiveNN(3, [6], permutation=torch.tensor([0, 0, 1]))
    with pytest.raises(ArgumentError, match="split_dim=0"):
        T.spline_coupling(1)
    with pytest.raises(ShapeError, match="last dim must be 3"):
        T.spline(3)(torch.zeros(4, 2))
    with pytest.raises(ShapeError, match="SplineCoupling"):
        T.spline_coupling(4)(torch.zeros(3))
    wrong_net = DenseNN(1, [8], param_dims=[5, 5, 4, 5])
    with pytest.raises(ShapeError, match="param_dims"):
        T.ConditionalSpline(wrong_net, input_dim=2, count_bins=8).condition(torch.zeros(1))(
            torch.zeros(2)
        )
