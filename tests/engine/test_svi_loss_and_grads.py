"""SVI.loss_and_grads: the loss of one estimate, with its gradients left on the params."""

import torch

import engine as pyro
import engine.distributions as dist
from engine.infer import SVI, EnergyDistance, Trace_ELBO
from engine.optim import Adam


def _model(y):
    loc = pyro.param("loc", torch.tensor(0.5))
    pyro.sample("y", dist.Normal(loc, 1.0), obs=y)


def _guide(y):
    pass


def test_loss_and_grads_of_an_elbo_gives_the_loss_and_fills_the_gradients():
    pyro.clear_param_store()
    svi = SVI(_model, _guide, Adam({"lr": 0.1}), Trace_ELBO())
    loss = svi.loss_and_grads(_model, _guide, torch.tensor(2.0))
    # -log N(2; 0.5, 1) = 0.5 log(2 pi) + 1.5^2 / 2, and its derivative in loc is -(2 - 0.5)
    assert abs(loss - (0.5 * torch.log(torch.tensor(2 * torch.pi)).item() + 1.125)) < 1e-5
    assert torch.allclose(pyro.param("loc").unconstrained().grad, torch.tensor(-1.5))
    assert pyro.param("loc").item() == 0.5  # no step taken


def test_loss_and_grads_of_a_custom_loss_backpropagates_it():
    pyro.clear_param_store()
    svi = SVI(_model, _guide, Adam({"lr": 0.1}), EnergyDistance(num_particles=4))
    torch.manual_seed(0)
    loss = svi.loss_and_grads(_model, _guide, torch.tensor(2.0))
    assert isinstance(loss, float)
    assert pyro.param("loc").unconstrained().grad is not None
