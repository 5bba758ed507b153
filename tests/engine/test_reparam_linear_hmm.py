"""``LinearHMMReparam`` (issue 17): a ``LinearHMM`` site becomes a ``GaussianHMM`` given the
auxiliary sites of its component reparameterizers, with exactly the density those imply."""

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import ReparamError
from engine.infer.reparam import LinearHMMReparam, StudentTReparam

F64 = torch.float64


def _randn(*shape):
    return torch.randn(*shape, dtype=F64)


def _mvn(*batch, dim):
    return dist.MultivariateNormal(torch.zeros(*batch, dim, dtype=F64), torch.eye(dim, dtype=F64))


def _traced(model, rep, *args):
    return poutine.trace(poutine.reparam(model, {"x": rep})).get_trace(*args)


def test_gaussian_noises_need_no_component_and_give_the_same_density():
    torch.manual_seed(50)
    T, h, o = 4, 2, 3
    parts = (
        _mvn(dim=h),
        0.5 * _randn(T, h, h),
        _mvn(T, dim=h),
        _randn(T, h, o),
        dist.Normal(_randn(T, o), 1.0).to_event(1),
    )
    hmm = dist.LinearHMM(*parts)
    data = _randn(T, o)

    def model():
        return pyro.sample("x", hmm, obs=data)

    node = _traced(model, LinearHMMReparam()).nodes["x"]
    assert isinstance(node["fn"], dist.GaussianHMM) and node["is_observed"]
    assert torch.allclose(node["fn"].log_prob(data), dist.GaussianHMM(*parts).log_prob(data))


def test_student_t_noises_become_normals_scaled_by_their_gamma_sites():
    torch.manual_seed(51)
    T, h, o = 3, 2, 1
    df, scale = torch.tensor(4.0, dtype=F64), torch.tensor(0.7, dtype=F64)

    def student(*shape):
        return dist.StudentT(df, _randn(*shape), scale).to_event(1)

    init, trans, obs = student(h), student(T, h), student(T, o)
    a, b = 0.5 * _randn(T, h, h), _randn(T, h, o)
    data = _randn(T, o)

    def model():
        return pyro.sample("x", dist.LinearHMM(init, a, trans, b, obs), obs=data)

    rep = StudentTReparam()
    tr = _traced(model, LinearHMMReparam(rep, rep, rep))
    nodes = tr.nodes
    assert nodes["x_init_gamma"]["fn"].event_shape == (h,)
    assert nodes["x_trans_gamma"]["fn"].event_shape == (T, h)
    assert nodes["x_obs_gamma"]["fn"].event_shape == (T, o)
    fn = nodes["x"]["fn"]
    assert isinstance(fn, dist.GaussianHMM)

    def given(noise, gamma):
        base = noise.base_dist
        return dist.Normal(base.loc, base.scale * gamma.rsqrt()).to_event(1)

    expected = dist.GaussianHMM(
        given(init, nodes["x_init_gamma"]["value"]),
        a,
        given(trans, nodes["x_trans_gamma"]["value"]),
        b,
        given(obs, nodes["x_obs_gamma"]["value"]),
    )
    assert torch.allclose(fn.log_prob(data), expected.log_prob(data))
    assert torch.isfinite(tr.log_prob_sum())


def test_observation_transforms_wrap_the_gaussian_hmm():
    torch.manual_seed(52)
    T, h, o = 3, 1, 2
    loc = _randn(T, o)
    hmm = dist.LinearHMM(
        _mvn(dim=h),
        torch.eye(h, dtype=F64),
        _mvn(dim=h),
        _randn(h, o),
        dist.LogNormal(loc, 1.0).to_event(1),
    )
    data = _randn(T, o).exp()

    def model():
        return pyro.sample("x", hmm, obs=data)

    fn = _traced(model, LinearHMMReparam()).nodes["x"]["fn"]
    assert isinstance(fn, dist.TransformedDistribution)
    assert isinstance(fn.base_dist, dist.GaussianHMM)
    gaussian = dist.GaussianHMM(
        hmm.initial_dist,
        hmm.transition_matrix,
        hmm.transition_dist,
        hmm.observation_matrix,
        dist.Normal(loc, 1.0).to_event(1),
    )
    expected = gaussian.log_prob(data.log()) - data.log().sum((-1, -2))
    assert torch.allclose(fn.log_prob(data), expected)


def test_latent_sites_in_plates_and_independent_hmms_keep_their_shapes():
    torch.manual_seed(53)
    T, h = 4, 2
    student = dist.StudentT(3.0, torch.zeros(5, T, 1, dtype=F64), 1.0).to_event(1)
    base = dist.LinearHMM(_mvn(5, dim=h), 0.5 * _randn(h, h), _mvn(dim=h), _randn(h, 1), student)
    hmm = dist.IndependentHMM(base)
    assert hmm.event_shape == (T, 5)

    def model():
        with pyro.plate("series", 3):
            return pyro.sample("x", hmm.expand((3,)))

    tr = _traced(model, LinearHMMReparam(obs=StudentTReparam()))
    fn = tr.nodes["x"]["fn"]
    assert isinstance(fn, dist.IndependentHMM) and isinstance(fn.base_dist, dist.GaussianHMM)
    assert tr.nodes["x"]["value"].shape == (3, T, 5)
    assert tr.nodes["x_obs_gamma"]["fn"].event_shape == (5, T, 1)
    tr.compute_log_prob()
    assert tr.nodes["x"]["log_prob"].shape == (3,)


def test_sites_it_cannot_rewrite_are_named():
    t = dist.StudentT(3.0, torch.zeros(1), 1.0).to_event(1)
    shared = dist.LinearHMM(t, torch.eye(1), t, torch.eye(1), t)  # no duration

    def model(fn):
        return pyro.sample("x", fn, obs=torch.zeros(3, 1))

    with pytest.raises(ReparamError, match=r"Site 'x'.*duration"):
        _traced(model, LinearHMMReparam(), shared)
    with pytest.raises(ReparamError, match=r"Site 'x'.*LinearHMM"):
        _traced(model, LinearHMMReparam(), dist.Normal(torch.zeros(3, 1), 1.0).to_event(2))
