"""plate: dim allocation, broadcasting, nesting, subsampling and scaling, sequential use."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import PlateError, ShapeError
from engine.poutine.plate_messenger import sample_distinct_indices


def test_automatic_dims_go_right_to_left():
    def model():
        with pyro.plate("outer", 2) as outer, pyro.plate("inner", 3) as inner:
            x = pyro.sample("x", dist.Normal(0.0, 1.0))
        return outer, inner, x

    tr = poutine.trace(model).get_trace()
    outer, inner, x = tr.nodes["_RETURN"]["value"]
    assert x.shape == (3, 2)
    assert outer.tolist() == [0, 1] and inner.tolist() == [0, 1, 2]
    frames = tr.nodes["x"]["cond_indep_stack"]
    assert [(f.name, f.dim, f.size) for f in frames] == [("outer", -1, 2), ("inner", -2, 3)]


def test_given_dims_and_reentry_of_the_same_plate_object():
    def model():
        rows = pyro.plate("rows", 4, dim=-2)
        cols = pyro.plate("cols", 5, dim=-1)
        with rows:
            a = pyro.sample("a", dist.Normal(0.0, 1.0))
        with cols:
            b = pyro.sample("b", dist.Normal(0.0, 1.0))
        with rows, cols:
            c = pyro.sample("c", dist.Normal(0.0, 1.0))
        return a.shape, b.shape, c.shape

    assert model() == ((4, 1), (5,), (4, 5))


def test_dims_are_released_on_exit_and_on_error():
    with pyro.plate("a", 2):
        pass
    with pytest.raises(RuntimeError), pyro.plate("a", 2):
        raise RuntimeError("inside")
    with pyro.plate("a", 2, dim=-1):  # -1 is free again
        assert pyro.sample("x", dist.Normal(0.0, 1.0)).shape == (2,)


def test_existing_batch_dims_are_kept_when_they_fit():
    with pyro.plate("data", 3):
        x = pyro.sample("x", dist.Normal(torch.zeros(3), 1.0))
        y = pyro.sample("y", dist.Normal(torch.zeros(2, 1), 1.0))
    assert x.shape == (3,) and y.shape == (2, 3)


def test_event_dims_are_not_touched():
    with pyro.plate("data", 4):
        x = pyro.sample("x", dist.MultivariateNormal(torch.zeros(2), torch.eye(2)))
    assert x.shape == (4, 2)


def test_subsample_size_scales_log_density():
    data = torch.randn(100)

    def model():
        with pyro.plate("data", 100, subsample_size=10) as idx:
            pyro.sample("obs", dist.Normal(0.0, 1.0), obs=data[idx])
        return idx

    tr = poutine.trace(model).get_trace()
    idx = tr.nodes["_RETURN"]["value"]
    assert idx.shape == (10,) and len(set(idx.tolist())) == 10
    assert tr.nodes["obs"]["scale"] == 10.0
    expected = 10.0 * dist.Normal(0.0, 1.0).log_prob(data[idx]).sum()
    assert torch.allclose(tr.log_prob_sum(), expected)
    assert tr.nodes["data"]["infer"]["is_subsample"]
    assert tr.stochastic_nodes == []


def test_subsample_estimate_is_unbiased():
    data = torch.linspace(-2, 2, 50)
    full = dist.Normal(0.0, 1.0).log_prob(data).sum()

    def model():
        with pyro.plate("data", 50, subsample_size=5) as idx:
            pyro.sample("obs", dist.Normal(0.0, 1.0), obs=data[idx])

    estimates = torch.stack([poutine.trace(model).get_trace().log_prob_sum() for _ in range(2000)])
    standard_error = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - full) < 4 * standard_error


def test_replay_shares_the_minibatch_between_guide_and_model():
    def guide():
        with pyro.plate("data", 1000, subsample_size=7) as idx:
            return idx

    guide_trace = poutine.trace(guide).get_trace()
    model_idx = poutine.replay(guide, trace=guide_trace)()
    assert torch.equal(model_idx, guide_trace.nodes["_RETURN"]["value"])


def test_explicit_subsample_indices_and_subsample_primitive():
    data = torch.arange(20.0).reshape(10, 2)
    with pyro.plate("data", 10, subsample=torch.tensor([1, 3, 5])) as idx:
        batch = pyro.subsample(data, event_dim=1)
        obs = pyro.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1), obs=batch)
    assert idx.tolist() == [1, 3, 5]
    assert torch.equal(obs, data[idx])
    assert torch.equal(pyro.subsample(data, event_dim=1), data)  # no plate: unchanged


def test_sequential_plate_yields_indices_and_stamps_frames():
    def model():
        for i in pyro.plate("loop", 3):
            pyro.sample(f"x_{i}", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    frames = [tr.nodes[f"x_{i}"]["cond_indep_stack"] for i in range(3)]
    assert [f[0].counter for f in frames] == [0, 1, 2]
    assert all(f[0].dim is None and f[0].name == "loop" for f in frames)


def test_sequential_subsampled_plate_scales():
    def model():
        seen = []
        for i in pyro.plate("loop", 10, subsample_size=2):
            seen.append(i)
            pyro.sample(f"x_{i}", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
        return seen

    tr = poutine.trace(model).get_trace()
    seen = tr.nodes["_RETURN"]["value"]
    assert len(seen) == 2
    assert tr.nodes[f"x_{seen[0]}"]["scale"] == 5.0


def test_plate_inside_a_for_loop_with_the_break_statement_releases_its_dim():
    for _ in pyro.plate("loop", 3):
        break
    with pyro.plate("data", 2):
        assert pyro.sample("x", dist.Normal(0.0, 1.0)).shape == (2,)


def test_plate_argument_errors():
    with pytest.raises(PlateError, match="negative"):
        pyro.plate("p", 3, dim=1)
    with pytest.raises(PlateError, match="no size"):
        len(pyro.plate("p"))


def test_distinct_indices_are_uniform():
    counts = torch.zeros(20)
    for _ in range(2000):
        idx = sample_distinct_indices(20, 2)
        assert idx[0] != idx[1]
        counts[idx] += 1
    # each index is chosen with probability 2/20 per draw: binomial(2000, 0.1)
    expected, sd = 200.0, math.sqrt(2000 * 0.1 * 0.9)
    assert (counts - expected).abs().max() < 4.5 * sd
    large = sample_distinct_indices(1_000_000, 1000)
    assert large.unique().numel() == 1000 and large.max() < 1_000_000


def test_plate_attributes_follow_pyro():
    data_plate = pyro.plate("data", 100, subsample_size=10)
    assert isinstance(data_plate, pyro.plate)
    assert data_plate.size == 100 and data_plate.subsample_size == 10
    with data_plate:
        pass
    assert data_plate.dim == -1  # the dim it used stays readable after exit


def test_local_params_are_subsampled_with_their_plate():
    def model():
        with pyro.plate("data", 10, subsample_size=3) as idx:
            loc = pyro.param("loc", torch.arange(10.0), event_dim=0)
            scale = pyro.param("scale", torch.ones(10, 2), event_dim=1)
        return idx, loc, scale

    idx, loc, scale = model()
    assert torch.equal(loc, idx.float())
    assert scale.shape == (3, 2)
    assert pyro.param("loc").shape == (10,)  # the store keeps every row


def test_a_local_param_of_the_wrong_size_is_an_error():
    def model():
        with pyro.plate("data", 10):
            pyro.param("loc", torch.zeros(7), event_dim=0)

    with pytest.raises(ShapeError) as info:
        model()
    for fragment in ["'loc'", "(7,)", "plate 'data'", "size 10"]:
        assert fragment in str(info.value)


def test_subsample_with_event_dims_at_an_inner_plate_dim():
    data = torch.arange(60.0).reshape(10, 3, 2)
    with pyro.plate("rows", 10, subsample=torch.tensor([0, 9]), dim=-2) as rows:
        batch = pyro.subsample(data, event_dim=1)
    assert torch.equal(batch, data[rows])


def test_a_plate_left_entered_releases_its_dim_when_its_trace_exits():
    leaked = pyro.plate("leak", 2)

    def model():
        leaked.__enter__()  # never exited by the model
        pyro.sample("x", dist.Normal(0.0, 1.0))

    poutine.trace(model).get_trace()
    with pyro.plate("fresh", 3, dim=-1):
        assert pyro.sample("y", dist.Normal(0.0, 1.0)).shape == (3,)


def test_sequential_plate_with_a_misshapen_observation():
    def model():
        for i in pyro.plate("loop", 2):
            pyro.sample(f"y_{i}", dist.Normal(torch.zeros(3), 1.0), obs=torch.zeros(2))

    with pytest.raises(ShapeError, match="'y_0'"):
        poutine.trace(model).get_trace()
