"""Errors and warnings that Pyro users match on: the engine's own messages (naming the site,
the plate and the shapes) lead with the phrase Pyro uses, and raise the builtin type Pyro does."""

import warnings

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from engine.optim import Adam
from engine.poutine.plate_messenger import block_plate


@pytest.fixture(autouse=True)
def _clean_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def _step(model, guide, elbo=None):
    SVI(model, guide, Adam({"lr": 1e-3}), elbo or Trace_ELBO()).step()


def test_duplicate_sample_sites():
    def model():
        pyro.sample("coin", dist.Bernoulli(0.5))
        pyro.sample("coin", dist.Bernoulli(0.5))

    with pytest.raises(RuntimeError, match="Multiple sample sites named 'coin'"):
        poutine.trace(model).get_trace()


def test_plate_shape_mismatch_names_the_plate():
    def model():
        with pyro.plate("rows", 4):
            pyro.sample("x", dist.Normal(torch.zeros(3), 1.0))

    with pytest.raises(ValueError, match="Shape mismatch inside plate 'rows'"):
        poutine.trace(model).get_trace()


def test_a_local_param_of_mini_batch_size_is_refused():
    def model():
        with pyro.plate("rows", 10, subsample_size=5):
            pyro.sample("x", dist.Normal(0.0, 1.0))

    def guide():
        with pyro.plate("rows", 10, subsample_size=5):
            # One row per element of the whole plate is needed (10, or 1 to broadcast): five
            # rows would be reused by every mini-batch whatever its indices.
            loc = pyro.param("loc", torch.zeros(5), event_dim=0)
            pyro.sample("x", dist.Normal(loc, 1.0))

    with pytest.raises(ValueError, match=r"Param 'loc'.*invalid shape of pyro.param, \(5,\)"):
        _step(model, guide)


def test_model_and_guide_shapes_and_event_dims():
    def model():
        pyro.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))

    def wide_guide():
        pyro.sample("w", dist.Normal(torch.zeros(2, 1), 1.0).to_event(2))

    def tall_guide():
        pyro.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    with pytest.raises(ValueError, match="Model and guide event_dims disagree at site 'w'"):
        _step(model, wide_guide)
    with pytest.raises(ValueError, match="Model and guide shapes disagree at site 'w'"):
        _step(model, tall_guide)


def test_log_prob_dim_outside_every_plate():
    def model():
        pyro.sample("x", dist.Normal(torch.zeros(3), 1.0))

    with pytest.raises(ValueError, match=r"'x'.*\(invalid log_prob shape\)"):
        _step(model, model)


def test_block_plate_and_colliding_dims():
    def unmatched():
        with block_plate("rows"):
            pyro.sample("a", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="block_plate matched 0 messengers"):
        poutine.trace(unmatched).get_trace()

    def clash():
        with pyro.plate("rows", 3, dim=-1), pyro.plate("cols", 2, dim=-1):
            pass

    with pytest.raises(ValueError, match="collide at dim=-1"):
        poutine.trace(clash).get_trace()


def test_a_guide_factor_must_say_has_rsample():
    def model():
        pyro.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.factor("tilt", torch.tensor(0.5))

    with pytest.raises(ValueError, match=r"factor 'tilt' .*missing specification of has_rsample"):
        _step(model, guide)

    def said_guide():
        pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.factor("tilt", torch.tensor(0.5), has_rsample=False)

    _step(model, said_guide)


def test_mean_field_order_warning_and_a_masked_site():
    def model():
        x = pyro.sample("x", dist.Normal(0.0, 1.0).mask(False))
        pyro.sample("y", dist.Normal(x, 1.0))

    def guide():
        y = pyro.sample("y", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(y, 1.0).mask(False))

    with pytest.warns(UserWarning, match=r"\(model: \['x', 'y'\], guide: \['y', 'x'\]\)"):
        loss = TraceMeanField_ELBO().loss(model, guide)
    assert torch.isfinite(torch.tensor(loss))

    def ordered_guide():
        x = pyro.sample("x", dist.Normal(0.0, 1.0).mask(False))
        pyro.sample("y", dist.Normal(x, 1.0))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # x is masked out on both sides: its KL is exactly 0, y's is that of equal Normals.
        assert TraceMeanField_ELBO().loss(model, ordered_guide) == 0.0
