"""The HMM distributions (issue 17): ``DiscreteHMM`` and ``GaussianHMM`` checked against
oracles written out by hand (every hidden path enumerated; the whole sequence as one
multivariate normal; a textbook Kalman filter), plus shapes and errors."""

import itertools
import math

import pytest
import torch

import engine.distributions as dist
from engine.distributions.hmm import DiscreteHMM, GaussianHMM
from engine.errors import ArgumentError, ShapeError

F64 = torch.float64


def _randn(*shape):
    return torch.randn(*shape, dtype=F64)


def _random_cov(*batch, dim):
    a = _randn(*batch, dim, 2 * dim)
    return a @ a.mT / (2 * dim) + 0.1 * torch.eye(dim, dtype=F64)


def _random_mvn(*batch, dim):
    return dist.MultivariateNormal(_randn(*batch, dim), _random_cov(*batch, dim=dim))


# ---------------------------------------------------------------- DiscreteHMM


def _discrete_brute_force(init_logits, trans_logits, obs_logp):
    """Log joint of each final state with the data, summed over every path by enumeration.

    ``trans_logits``: ``(T, S, S)``; ``obs_logp``: ``(T, S)`` log p(x_t | z_t = s). No batch."""
    T, S = obs_logp.shape
    init = init_logits.log_softmax(-1)
    trans = trans_logits.log_softmax(-1)
    final = torch.full((S,), -math.inf, dtype=F64)
    for path in itertools.product(range(S), repeat=T + 1):  # (z_{-1}, z_0, ..., z_{T-1})
        logp = init[path[0]]
        for t in range(T):
            logp = logp + trans[t, path[t], path[t + 1]] + obs_logp[t, path[t + 1]]
        final[path[-1]] = torch.logaddexp(final[path[-1]], logp)
    return final


@pytest.mark.parametrize("num_steps", [1, 2, 3, 4])
@pytest.mark.parametrize("num_states", [2, 3])
def test_discrete_log_prob_and_filter_match_enumerating_every_path(num_steps, num_states):
    torch.manual_seed(num_steps * 10 + num_states)
    batch, S, T = 2, num_states, num_steps
    init_logits = _randn(batch, S)
    trans_logits = _randn(batch, T, S, S)
    loc, scale = _randn(batch, T, S), _randn(batch, T, S).exp()
    d = DiscreteHMM(init_logits, trans_logits, dist.Normal(loc, scale))
    # One step of per-step parameters is indistinguishable from shared ones: no fixed length.
    assert d.batch_shape == (batch,) and d.event_shape == (T,)
    assert d.duration == (T if T > 1 else None)
    x = _randn(batch, T)
    log_prob, final = d.log_prob(x), d.filter(x)
    for b in range(batch):
        obs_logp = dist.Normal(loc[b], scale[b]).log_prob(x[b].unsqueeze(-1))
        expected = _discrete_brute_force(init_logits[b], trans_logits[b], obs_logp)
        assert torch.allclose(log_prob[b], expected.logsumexp(-1))
        assert torch.allclose(final.probs[b], (expected - expected.logsumexp(-1)).exp())


def test_discrete_homogeneous_scores_any_length_and_broadcasts_data_batches():
    torch.manual_seed(1)
    S = 3
    init_logits, trans_logits = _randn(S), _randn(S, S)
    probs = torch.rand(S, 4, dtype=F64)
    obs = dist.Categorical(probs)
    d = DiscreteHMM(init_logits, trans_logits, obs)
    assert d.event_shape == (1,) and d.duration is None
    x = torch.randint(0, 4, (5, 6))  # a batch of five sequences of six steps
    log_prob = d.log_prob(x)
    assert log_prob.shape == (5,)
    obs_logp = obs.log_prob(x[2].unsqueeze(-1))
    expected = _discrete_brute_force(init_logits, trans_logits.expand(6, S, S), obs_logp)
    assert torch.allclose(log_prob[2], expected.logsumexp(-1))


def test_discrete_forbidden_transitions_keep_log_prob_finite_and_exact():
    # -inf logits (a left-to-right chain) must not turn the forward algorithm into NaN.
    init_logits = torch.tensor([0.0, -math.inf, -math.inf], dtype=F64)
    trans_logits = torch.tensor(
        [[0.0, 0.0, -math.inf], [-math.inf, 0.0, 0.0], [-math.inf, -math.inf, 0.0]], dtype=F64
    )
    obs = dist.Normal(torch.tensor([0.0, 3.0, 6.0], dtype=F64), 1.0)
    d = DiscreteHMM(init_logits, trans_logits, obs)
    x = torch.tensor([0.1, 2.9, 3.2, 6.1], dtype=F64)
    expected = _discrete_brute_force(
        init_logits, trans_logits.expand(4, 3, 3), obs.log_prob(x.unsqueeze(-1))
    )
    assert torch.allclose(d.log_prob(x), expected.logsumexp(-1))


def test_discrete_sample_frequencies_match_the_likelihood():
    # Every sequence of three binary observations has probability exp(log_prob). With N draws a
    # frequency has standard error sqrt(p (1 - p) / N) < 0.0036 at N = 20000; 4.5 standard errors
    # bound a false alarm over the 8 cells below 1e-4.
    torch.manual_seed(2)
    stay = torch.tensor([[0.8, 0.2], [0.3, 0.7]], dtype=F64).log()
    d = DiscreteHMM(
        torch.tensor([0.6, 0.4], dtype=F64).log(),
        stay,
        dist.Bernoulli(torch.tensor([0.1, 0.85], dtype=F64)),
        duration=3,
    )
    n = 20000
    draws = d.sample((n,))
    assert draws.shape == (n, 3)
    for cell in itertools.product([0.0, 1.0], repeat=3):
        x = torch.tensor(cell, dtype=F64)
        p = float(d.log_prob(x).exp())
        freq = float((draws == x).all(-1).double().mean())
        assert abs(freq - p) < 4.5 * math.sqrt(p * (1 - p) / n)


def test_discrete_shapes_expand_and_sample_shapes():
    torch.manual_seed(3)
    obs = dist.Normal(_randn(5, 1, 2, 3), 1.0).to_event(1)  # batch (5, 1) time 1, 2 states
    d = DiscreteHMM(_randn(4, 1, 2), _randn(7, 2, 2), obs)
    assert d.batch_shape == (4, 5) and d.event_shape == (7, 3)
    x = _randn(7, 3)
    assert d.log_prob(x).shape == (4, 5)
    e = d.expand((2, 4, 5))
    assert torch.allclose(e.log_prob(x), d.log_prob(x).expand(2, 4, 5))
    assert d.sample().shape == (4, 5, 7, 3) and d.sample((6,)).shape == (6, 4, 5, 7, 3)
    assert d.filter(x).batch_shape == (4, 5)
    assert d.support.event_dim == d.event_dim


def test_discrete_bad_shapes_name_the_arguments():
    obs = dist.Normal(torch.zeros(3), 1.0)
    with pytest.raises(ShapeError, match="transition_logits"):
        DiscreteHMM(torch.zeros(3), torch.zeros(2, 2), obs)
    with pytest.raises(ShapeError, match="observation_dist"):
        DiscreteHMM(torch.zeros(3), torch.zeros(3, 3), dist.Normal(0.0, 1.0))
    with pytest.raises(ShapeError, match=r"transition_logits \(4,\).*observation_dist \(5,\)"):
        DiscreteHMM(torch.zeros(3), torch.zeros(4, 3, 3), dist.Normal(torch.zeros(5, 3), 1.0))
    d = DiscreteHMM(torch.zeros(3), torch.zeros(4, 3, 3), obs)
    with pytest.raises(ShapeError, match=r"3 time steps .* has 4"):
        d.log_prob(torch.zeros(3))
    with pytest.raises(ArgumentError, match="duration"):
        DiscreteHMM(torch.zeros(3), torch.zeros(3, 3), obs).sample()


# ---------------------------------------------------------------- GaussianHMM


def _noise_moments(noise):
    """Mean and covariance of a MultivariateNormal or an Independent Normal."""
    if isinstance(noise, torch.distributions.MultivariateNormal):
        return noise.loc, noise.covariance_matrix
    return noise.base_dist.loc, torch.diag_embed(noise.base_dist.scale.pow(2))


def _joint_mvn(init, trans_mat, trans_noise, obs_mat, obs_noise, T):
    """The whole sequence ``x_0 .. x_{T-1}`` as one MultivariateNormal, unbatched, by pushing
    the independent Gaussian inputs through the linear recursion (matrices per step)."""
    h, o = obs_mat.shape[-2:]
    m0, c0 = _noise_moments(init)
    mz, cz = _noise_moments(trans_noise)
    mx, cx = _noise_moments(obs_noise)
    mz, cz = mz.expand(T, h), cz.expand(T, h, h)
    mx, cx = mx.expand(T, o), cx.expand(T, o, o)
    trans_mat, obs_mat = trans_mat.expand(T, h, h), obs_mat.expand(T, h, o)
    # Inputs u = (z_{-1}, e_0 .. e_{T-1}, v_0 .. v_{T-1}); each z_t and x_t is (u @ K) + const.
    n = h + T * h + T * o
    mean_u = torch.cat([m0, mz.reshape(-1), mx.reshape(-1)])
    cov_u = torch.block_diag(c0, *cz, *cx)
    z_map = torch.zeros(n, h, dtype=F64)
    z_map[:h] = torch.eye(h, dtype=F64)
    x_maps = []
    for t in range(T):
        z_map = z_map @ trans_mat[t]
        z_map[h + t * h : h + (t + 1) * h] += torch.eye(h, dtype=F64)
        x_map = z_map @ obs_mat[t]
        x_map[h + T * h + t * o : h + T * h + (t + 1) * o] += torch.eye(o, dtype=F64)
        x_maps.append(x_map)
    k = torch.cat(x_maps, -1)  # (n, T * o)
    return dist.MultivariateNormal(mean_u @ k, k.mT @ cov_u @ k)


def _random_gaussian_hmm(batch, T, h, o, diag=False):
    init = _random_mvn(*batch, dim=h)
    trans_mat = 0.5 * _randn(*batch, T, h, h)
    trans_noise = _random_mvn(*batch, T, dim=h)
    obs_mat = _randn(*batch, T, h, o)
    if diag:
        obs_noise = dist.Normal(_randn(*batch, T, o), _randn(*batch, T, o).exp()).to_event(1)
    else:
        obs_noise = _random_mvn(*batch, T, dim=o)
    return init, trans_mat, trans_noise, obs_mat, obs_noise


def _unbatch(d, b):
    """The ``b``-th member of a batch of MultivariateNormal / Independent Normal noises."""
    if isinstance(d, torch.distributions.MultivariateNormal):
        return dist.MultivariateNormal(d.loc[b], d.covariance_matrix[b])
    return dist.Normal(d.base_dist.loc[b], d.base_dist.scale[b]).to_event(1)


@pytest.mark.parametrize("diag", [False, True], ids=["full", "diag"])
@pytest.mark.parametrize("T,h,o", [(1, 1, 1), (2, 2, 1), (3, 1, 2), (4, 2, 3), (5, 3, 2)])
def test_gaussian_log_prob_matches_the_joint_multivariate_normal(T, h, o, diag):
    torch.manual_seed(100 * T + 10 * h + o)
    parts = _random_gaussian_hmm((2,), T, h, o, diag)
    d = GaussianHMM(*parts)
    assert d.batch_shape == (2,) and d.event_shape == (T, o)
    x = _randn(3, 2, T, o)
    log_prob = d.log_prob(x)
    assert log_prob.shape == (3, 2)
    init, trans_mat, trans_noise, obs_mat, obs_noise = parts
    for b in range(2):
        joint = _joint_mvn(
            _unbatch(init, b),
            trans_mat[b],
            _unbatch(trans_noise, b),
            obs_mat[b],
            _unbatch(obs_noise, b),
            T,
        )
        expected = joint.log_prob(x[:, b].reshape(3, T * o))
        assert torch.allclose(log_prob[:, b], expected)


def _kalman_filter(init, trans_mat, trans_noise, obs_mat, obs_noise, x):
    """Predict/update in covariance form, the textbook way, with row-vector states."""
    mean, cov = _noise_moments(init)
    mz, qz = _noise_moments(trans_noise)
    mx, rx = _noise_moments(obs_noise)
    for t in range(x.size(0)):
        a, b = trans_mat[t], obs_mat[t]
        mean, cov = mean @ a + mz[t], a.mT @ cov @ a + qz[t]
        innovation = x[t] - (mean @ b + mx[t])
        s = b.mT @ cov @ b + rx[t]
        gain = cov @ b @ torch.linalg.inv(s)
        mean = mean + gain @ innovation
        cov = cov - gain @ s @ gain.mT
    return mean, cov


@pytest.mark.parametrize("T,h,o", [(1, 2, 1), (3, 2, 2), (6, 3, 1)])
def test_gaussian_filter_matches_a_kalman_filter(T, h, o):
    torch.manual_seed(7 + T)
    parts = _random_gaussian_hmm((), T, h, o)
    d = GaussianHMM(*parts)
    x = _randn(T, o)
    final = d.filter(x)
    assert isinstance(final, dist.MultivariateNormal) and final.event_shape == (h,)
    mean, cov = _kalman_filter(*parts, x)
    assert torch.allclose(final.loc, mean)
    assert torch.allclose(final.covariance_matrix, cov)


def test_gaussian_rsample_moments_match_the_joint_multivariate_normal():
    # N = 40000 draws: a mean has standard error sd / 200; a variance's relative standard error
    # is sqrt(2 / N) = 0.7 %. Tolerances of 4.5 standard errors over the six coordinates.
    torch.manual_seed(11)
    T, h, o = 3, 2, 2
    parts = _random_gaussian_hmm((), T, h, o)
    d = GaussianHMM(*parts)
    n = 40000
    draws = d.rsample((n,)).reshape(n, T * o)
    joint = _joint_mvn(*parts, T)
    sd = joint.covariance_matrix.diagonal().sqrt()
    assert torch.all((draws.mean(0) - joint.loc).abs() < 4.5 * sd / math.sqrt(n))
    var = draws.var(0)
    assert torch.all((var / sd.pow(2) - 1).abs() < 4.5 * math.sqrt(2 / n))


def test_gaussian_rsample_is_differentiable_in_the_parameters():
    loc = torch.zeros(1, dtype=F64, requires_grad=True)
    mvn = dist.MultivariateNormal(torch.zeros(1, dtype=F64), torch.eye(1, dtype=F64))
    noise = dist.Normal(loc, 1.0).to_event(1)
    d = GaussianHMM(mvn, torch.eye(1, dtype=F64), mvn, torch.eye(1, dtype=F64), noise, duration=4)
    d.rsample((3,)).sum().backward()
    assert torch.allclose(loc.grad, torch.tensor([12.0], dtype=F64))  # 3 draws x 4 steps


def test_gaussian_conjugate_update_is_the_normalized_product():
    torch.manual_seed(12)
    T, h, o = 4, 2, 2
    d = GaussianHMM(*_random_gaussian_hmm((3,), T, h, o))
    like = dist.Normal(_randn(3, T, o), _randn(3, T, o).exp()).to_event(2)
    updated, log_normalizer = d.conjugate_update(like)
    assert updated.batch_shape == (3,) and updated.event_shape == (T, o)
    x = _randn(5, 3, T, o)
    assert torch.allclose(d.log_prob(x) + like.log_prob(x), updated.log_prob(x) + log_normalizer)
    assert updated.rsample((2,)).shape == (2, 3, T, o)


def test_gaussian_prefix_condition_is_the_joint_conditional():
    torch.manual_seed(13)
    T, h, o, t = 4, 2, 1, 2
    parts = _random_gaussian_hmm((), T, h, o)
    d = GaussianHMM(*parts)
    x = _randn(T, o)
    rest = d.prefix_condition(x[:t])
    assert rest.event_shape == (T - t, o)
    # The conditional of the joint normal: log p(x) - log p(x[:t]).
    joint = _joint_mvn(*parts, T)
    head = dist.MultivariateNormal(joint.loc[: t * o], joint.covariance_matrix[: t * o, : t * o])
    expected = joint.log_prob(x.reshape(-1)) - head.log_prob(x[:t].reshape(-1))
    assert torch.allclose(rest.log_prob(x[t:]), expected)


def test_gaussian_shapes_broadcast_like_their_parameters():
    torch.manual_seed(14)
    h, o = 2, 3
    d = GaussianHMM(
        _random_mvn(5, 1, dim=h),
        _randn(6, h, h),  # time 6
        _random_mvn(4, 1, dim=h),  # batch (4,), shared over time
        _randn(h, o),
        dist.Normal(torch.zeros(o, dtype=F64), 1.0).to_event(1),
    )
    assert d.batch_shape == (5, 4) and d.event_shape == (6, o) and d.duration == 6
    assert d.rsample().shape == (5, 4, 6, o) and d.rsample((2,)).shape == (2, 5, 4, 6, o)
    x = _randn(6, o)
    assert d.log_prob(x).shape == (5, 4)
    e = d.expand((3, 5, 4))
    assert torch.allclose(e.log_prob(x), d.log_prob(x).expand(3, 5, 4))
    assert e.rsample().shape == (3, 5, 4, 6, o)
    assert d.filter(x).batch_shape == (5, 4)
    assert d.rsample_posterior(x).shape == (5, 4, 6, h)
    assert d.support.event_dim == 2


def test_gaussian_bad_shapes_name_the_arguments():
    mvn2 = _random_mvn(dim=2)
    with pytest.raises(ShapeError, match=r"transition_dist.event_shape is \(3,\)"):
        GaussianHMM(mvn2, torch.eye(2), _random_mvn(dim=3), torch.ones(2, 1), _random_mvn(dim=1))
    with pytest.raises(ShapeError, match=r"transition_matrix.*observation_matrix"):
        GaussianHMM(
            mvn2, torch.eye(2).expand(4, 2, 2), mvn2, torch.ones(5, 2, 1), _random_mvn(dim=1)
        )
    with pytest.raises(ArgumentError, match="observation_dist must be a MultivariateNormal"):
        GaussianHMM(
            mvn2,
            torch.eye(2, dtype=F64),
            mvn2,
            torch.ones(2, 1, dtype=F64),
            dist.StudentT(3.0, torch.zeros(1), 1.0).to_event(1),
        )
    d = GaussianHMM(
        mvn2, torch.eye(2, dtype=F64), mvn2, torch.ones(2, 1, dtype=F64), _random_mvn(dim=1)
    )
    with pytest.raises(ShapeError, match=r"\(\.\.\., num_steps\) \+ \(1,\)"):
        d.log_prob(torch.zeros(5, 2, dtype=F64))
    with pytest.raises(ArgumentError, match="duration"):
        d.rsample()
