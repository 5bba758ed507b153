"""SVGD and its Stein kernels: particles settle on a Gaussian posterior and on a constrained
site's posterior, laid out as Pyro lays them out; the kernels' gradients; the errors."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.errors import ArgumentError, MCMCError, NonFiniteError, ParamError
from engine.infer import SVGD, IMQSteinKernel, RBFSteinKernel
from engine.optim import Adam

PRIOR_SD, NOISE_SD = 2.0, 1.0
DATA = torch.tensor([[1.2, -0.4], [2.1, 0.3], [1.6, -1.1], [2.5, 0.2]])  # 4 rows, 2 columns


def gaussian_model(data):
    with pyro.plate("columns", 2):
        loc = pyro.sample("loc", dist.Normal(0.0, PRIOR_SD))
        with pyro.plate("rows", len(data)):
            pyro.sample("obs", dist.Normal(loc, NOISE_SD), obs=data)


def _gaussian_posterior(data):
    precision = 1 / PRIOR_SD**2 + len(data) / NOISE_SD**2
    return data.sum(0) / NOISE_SD**2 / precision, torch.full((2,), 1 / precision)


def _run(model, kernel, mode, num_particles, steps, *args, max_plate_nesting=2, lr=0.1):
    svgd = SVGD(model, kernel, Adam({"lr": lr}), num_particles, max_plate_nesting, mode=mode)
    first = svgd.step(*args)
    for _ in range(steps - 1):
        last = svgd.step(*args)
    return svgd, first, last


@pytest.mark.parametrize("mode", ["univariate", "multivariate"])
@pytest.mark.parametrize("kernel", [RBFSteinKernel, IMQSteinKernel])
def test_particles_settle_on_the_gaussian_posterior(kernel, mode):
    num_particles = 100
    svgd, first, last = _run(gaussian_model, kernel(), mode, num_particles, 250, DATA)
    particles = svgd.get_named_particles()["loc"]
    assert particles.shape == (num_particles, 1, 2)  # the particle plate at dim -3
    mean, var = _gaussian_posterior(DATA)
    # Tolerances of an i.i.d. sample of the same size, which SVGD's particles (spread out on
    # purpose) should match at least: the mean's standard error sqrt(var / N) and the
    # variance's sqrt(2 / (N - 1)) var, 4 of each. The prior (sd 2, mean 0) is more than 10
    # mean-tolerances from this posterior (sd 0.49, means 1.85 and -0.25), and a collapsed
    # set of particles (variance 0) is outside the variance tolerance.
    assert ((particles.mean(0)[0] - mean).abs() < 4 * (var / num_particles).sqrt()).all()
    assert ((particles.var(0)[0] - var).abs() < 4 * math.sqrt(2 / (num_particles - 1)) * var).all()
    # Settled: the mean squared SVGD direction fell by orders of magnitude from the start.
    assert set(last) == {"loc"} and last["loc"] < 0.01 * first["loc"]


@pytest.mark.parametrize("mode", ["univariate", "multivariate"])
def test_a_positive_site_gets_its_posterior_through_the_jacobian(mode):
    # A LogNormal(0.3, 0.5) site: in unconstrained space (its log) the particles must be
    # Normal(0.3, 0.5), which needs the log|Jacobian| of exp in the density they climb;
    # without it they would settle around 0.3 - 0.25 = 0.05.
    def model():
        pyro.sample("scale", dist.LogNormal(0.3, 0.5))

    num_particles = 200
    svgd, _, _ = _run(model, RBFSteinKernel(), mode, num_particles, 250, max_plate_nesting=0)
    scale = svgd.get_named_particles()["scale"]
    assert scale.shape == (num_particles,) and bool((scale > 0).all())
    log_scale = scale.log()
    # As above: 4 standard errors of an i.i.d. sample of 200 (0.14 for the mean, 0.05 for the
    # variance 0.25).
    assert abs(log_scale.mean().item() - 0.3) < 4 * 0.5 / math.sqrt(num_particles)
    assert abs(log_scale.var().item() - 0.25) < 4 * math.sqrt(2 / (num_particles - 1)) * 0.25


def test_particles_live_in_the_param_store_and_follow_new_data():
    svgd = SVGD(gaussian_model, RBFSteinKernel(), Adam({"lr": 0.1}), 20, 2)
    svgd.step(DATA)
    stored = pyro.get_param_store()["svgd_particles"]
    assert stored.shape == (20, 2)  # 20 particles of 2 unconstrained coordinates
    # Moving the stored particles moves what get_named_particles shows (it reads the store).
    stored.unconstrained().data += 100.0
    assert bool((svgd.get_named_particles()["loc"] > 50).all())
    # Each step runs the model on that step's arguments: with data centred at 100 the
    # particles stay there.
    for _ in range(50):
        svgd.step(DATA + 100.0)
    assert bool((svgd.get_named_particles()["loc"] > 90).all())


def test_site_shapes_follow_the_particle_plate():
    def model():
        pyro.sample("matrix", dist.Normal(torch.zeros(2, 3), 1.0).to_event(2))
        pyro.sample("simplex", dist.Dirichlet(torch.ones(4)))
        with pyro.plate("groups", 5):
            pyro.sample("rate", dist.Gamma(2.0, 1.0))

    svgd = SVGD(model, IMQSteinKernel(), Adam({"lr": 0.01}), 7, max_plate_nesting=1)
    squared = svgd.step()
    particles = svgd.get_named_particles()
    # As in a run under the particle plate (dim -2): a site outside the model's plate keeps a
    # size-1 dim for it.
    assert particles["matrix"].shape == (7, 1, 2, 3)
    assert particles["simplex"].shape == (7, 1, 4)
    assert torch.allclose(particles["simplex"].sum(-1), torch.ones(7, 1))
    assert particles["rate"].shape == (7, 5)
    assert set(squared) == {"matrix", "simplex", "rate"}
    assert pyro.get_param_store()["svgd_particles"].shape == (7, 6 + 3 + 5)


def _finite_difference(kernel, particles, n, d, eps=1e-6):
    shifted = particles.clone()
    shifted[n, d] += eps
    up, _ = kernel.log_kernel_and_grad(shifted)
    shifted[n, d] -= 2 * eps
    down, _ = kernel.log_kernel_and_grad(shifted)
    return (up[n, :, d] - down[n, :, d]) / (2 * eps)


@pytest.mark.parametrize("kernel", [RBFSteinKernel(), IMQSteinKernel(alpha=1.0, beta=-0.3)])
def test_kernel_grad_is_the_derivative_of_the_log_kernel_in_the_first_particle(kernel):
    # Particle 0 is far from the others, so no pair with it is the median pair and the
    # bandwidth stays put while it moves.
    x = torch.tensor([[0.0, 0.0], [10.0, 5.0], [11.0, 7.0], [12.5, 4.0], [13.0, 6.0]])
    x = x.double()
    log_kernel, kernel_grad = kernel.log_kernel_and_grad(x)
    assert log_kernel.shape == kernel_grad.shape == (5, 5, 2)
    assert torch.allclose(log_kernel, log_kernel.transpose(0, 1))  # symmetric
    for d in range(2):
        numeric = _finite_difference(kernel, x, 0, d)
        assert torch.allclose(kernel_grad[0, :, d], numeric, atol=1e-6)


def test_bandwidth_factor_scales_the_bandwidth():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    squared = (x - x.unsqueeze(1)) ** 2
    kernel = RBFSteinKernel()
    base = kernel.bandwidth(squared)
    assert torch.allclose(base, torch.tensor([4.0 / math.log(4)]))  # median 4 of 1, 4, 9
    kernel.bandwidth_factor = 2.5
    assert torch.allclose(kernel.bandwidth(squared), 2.5 * base)
    with pytest.raises(ArgumentError, match=r"bandwidth_factor=-1\.0"):
        kernel.bandwidth_factor = -1


def test_bad_arguments_are_refused():
    adam = Adam({"lr": 0.1})
    with pytest.raises(ArgumentError, match="mode='joint'"):
        SVGD(gaussian_model, RBFSteinKernel(), adam, 10, 2, mode="joint")
    with pytest.raises(ArgumentError, match="at least 2 particles"):
        SVGD(gaussian_model, RBFSteinKernel(), adam, 1, 2)
    with pytest.raises(ArgumentError, match="kernel must be a SteinKernel"):
        SVGD(gaussian_model, "rbf", adam, 10, 2)
    with pytest.raises(ArgumentError, match=r"beta=0\.5"):
        IMQSteinKernel(beta=0.5)
    with pytest.raises(ParamError, match="no particles yet"):
        SVGD(gaussian_model, RBFSteinKernel(), adam, 10, 2).get_named_particles()


def test_particles_of_another_shape_in_the_store_are_refused():
    SVGD(gaussian_model, RBFSteinKernel(), Adam({"lr": 0.1}), 10, 2).step(DATA)
    other = SVGD(gaussian_model, RBFSteinKernel(), Adam({"lr": 0.1}), 12, 2)
    with pytest.raises(ParamError, match=r"shape \(10, 2\).*need \(12, 2\)"):
        other.step(DATA)


def test_a_non_finite_density_names_the_site_and_moves_nothing():
    def model(obs):
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("near", dist.Uniform(x - 1.0, x + 1.0), obs=obs)

    pyro.enable_validation(False)  # an observation outside its support then scores -inf
    svgd = SVGD(model, RBFSteinKernel(), Adam({"lr": 0.1}), 10, 0)
    svgd.step(torch.tensor(0.0))  # the particles start where the density is finite
    assert bool((svgd.get_named_particles()["x"].abs() < 1).all())
    before = pyro.get_param_store()["svgd_particles"].detach().clone()
    with pytest.raises(NonFiniteError, match="log density of 'near' is not finite"):
        svgd.step(torch.tensor(50.0))
    assert torch.equal(pyro.get_param_store()["svgd_particles"], before)


def test_a_site_svgd_cannot_move_on_is_refused_by_name():
    def model():
        pyro.sample("count", dist.Poisson(3.0))  # discrete, with no finite support to sum out

    svgd = SVGD(model, RBFSteinKernel(), Adam({"lr": 0.1}), 10, 0)
    with pytest.raises(MCMCError, match=r"'count'.*discrete: SVGD can only move"):
        svgd.step()
    assert "svgd_particles" not in pyro.get_param_store()
