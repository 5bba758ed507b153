"""An autoguide's parameters read and set as attributes, as on Pyro's guides (which are modules
whose parameters are attributes under their keys): ``guide.loc``, ``guide.scale_tril``,
``guide.locs.w`` and the like."""

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)


def _model():
    pyro.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    pyro.sample("s", dist.LogNormal(0.0, 1.0))


@pytest.fixture(autouse=True)
def _clean_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def test_flat_guides_expose_their_parameters():
    guide = AutoMultivariateNormal(_model, init_scale=0.3)
    guide()
    store = pyro.get_param_store()
    assert torch.equal(guide.loc, store["AutoMultivariateNormal.loc"])
    # Constrained values, with their gradient path to the store's leaves.
    assert torch.allclose(guide.scale, torch.full((3,), 0.3))
    assert guide.scale.requires_grad
    assert torch.equal(guide.scale_tril, torch.eye(3))
    low_rank = AutoLowRankMultivariateNormal(_model, rank=2)
    low_rank()
    assert guide.latent_dim == 3 and low_rank.cov_factor.shape == (3, 2)
    assert AutoDiagonalNormal(_model, model_args=()).loc.shape == (3,)


def test_per_site_guides_expose_namespaces_by_site():
    guide = AutoNormal(_model)
    assert not hasattr(guide, "locs")  # nothing before the guide knows the model
    guide()
    assert guide.locs.w.shape == (2,) and guide.scales.s.shape == ()
    assert not hasattr(guide.locs, "missing") and sorted(dir(guide.locs)) == ["s", "w"]
    delta = AutoDelta(_model)
    delta()
    assert float(delta.s.detach()) > 0  # AutoDelta: the constrained value under the site name


def test_setting_a_parameter_writes_the_store_and_a_new_guide_takes_it_up():
    guide = AutoNormal(_model)
    guide()
    guide.locs.w = torch.tensor([1.5, -2.0])
    guide.scales.s = 0.25
    assert torch.equal(pyro.param("AutoNormal.locs.w"), torch.tensor([1.5, -2.0]))
    assert pyro.param("AutoNormal.scales.s").item() == pytest.approx(0.25)

    def wider_model():
        _model()
        pyro.sample("extra", dist.Normal(0.0, 1.0))

    again = AutoNormal(wider_model)
    again()
    assert torch.equal(again.locs.w, torch.tensor([1.5, -2.0]))
    with pytest.raises(AttributeError, match=r"no parameter 'locs\.nope'"):
        guide.locs.nope = torch.tensor(0.0)


def test_setting_a_flat_guide_parameter_checks_its_constraint():
    guide = AutoDiagonalNormal(_model, model_args=())
    guide.loc = torch.arange(3.0)
    assert torch.equal(pyro.param("AutoDiagonalNormal.loc"), torch.arange(3.0))
    with pytest.raises(ValueError):
        guide.scale = -torch.ones(3)  # a scale must stay positive
