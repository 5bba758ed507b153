"""``plate(name)`` without a size, as Pyro's SVI part III tutorial writes it: the plate only
claims its dim; an observed site takes the size of its data there, a latent one keeps its own
shape. Pyro records such a plate with size -1."""

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import PlateError
from engine.infer import SVI, Trace_ELBO, TraceGraph_ELBO
from engine.optim import Adam

FLIPS = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0])


def coin(data, size=None):
    f = pyro.sample("f", dist.Beta(10.0, 10.0))
    with pyro.plate("data_plate", size) as idx:
        pyro.sample("obs", dist.Bernoulli(f), obs=data)
    return idx


def guide(data, size=None):
    a = pyro.param("a", torch.tensor(15.0), constraint=dist.constraints.positive)
    b = pyro.param("b", torch.tensor(15.0), constraint=dist.constraints.positive)
    pyro.sample("f", dist.Beta(a, b))


def test_observed_sites_take_their_datas_size_and_latent_sites_keep_theirs():
    def model(data):
        with pyro.plate("data_plate"):
            pyro.sample("noise", dist.Normal(0.0, 1.0))
        return coin(data)

    tr = poutine.trace(model).get_trace(FLIPS)
    frame = tr.nodes["obs"]["cond_indep_stack"][0]
    assert (frame.name, frame.dim, frame.size) == ("data_plate", -1, -1)
    assert tr.nodes["obs"]["fn"].batch_shape == (8,)
    assert tr.nodes["noise"]["value"].shape == ()
    assert tr.nodes["_RETURN"]["value"] is None  # no indices to give
    f = tr.nodes["f"]["value"]
    expected = dist.Bernoulli(f).log_prob(FLIPS).sum()
    assert torch.allclose(tr.nodes["obs"]["fn"].log_prob(FLIPS).sum(), expected)


@pytest.mark.parametrize("elbo", [Trace_ELBO, TraceGraph_ELBO])
def test_the_loss_equals_the_loss_with_the_size_given(elbo):
    losses = []
    for size in (None, len(FLIPS)):
        pyro.clear_param_store()
        pyro.set_rng_seed(3)
        losses.append(elbo().loss(coin, guide, FLIPS, size))
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)


def test_svi_runs_on_a_plate_without_a_size():
    pyro.clear_param_store()
    svi = SVI(coin, guide, Adam({"lr": 0.01}), TraceGraph_ELBO())
    losses = [svi.step(FLIPS) for _ in range(5)]
    assert all(torch.isfinite(torch.tensor(losses)))


def test_a_plate_without_a_size_has_no_indices_or_length():
    plate = pyro.plate("data_plate")
    with pytest.raises(PlateError, match=r"'data_plate' has no size.*len\(data\)"):
        len(plate)
    with pytest.raises(PlateError, match="cannot be iterated"):
        list(plate)


def test_a_mini_batch_needs_the_plates_size():
    with pytest.raises(PlateError, match=r"subsample_size=2 but no size.*len\(data\)"):
        pyro.plate("data_plate", subsample_size=2)
