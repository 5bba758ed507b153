"""The other HMM families (issue 17): ``GaussianMRF`` against dense Gaussian algebra written out
by hand, ``GammaGaussianHMM`` against numerical integration over its scale, ``LinearHMM`` draws
against ``GaussianHMM``'s, and ``IndependentHMM`` against its columns scored one by one."""

import math

import pytest
import torch

import engine.distributions as dist
from engine.distributions.hmm import (
    GammaGaussianHMM,
    GaussianHMM,
    GaussianMRF,
    IndependentHMM,
    LinearHMM,
)
from engine.errors import ArgumentError, ShapeError

F64 = torch.float64


def _randn(*shape):
    return torch.randn(*shape, dtype=F64)


def _random_mvn(*batch, dim):
    a = _randn(*batch, dim, 2 * dim)
    cov = a @ a.mT / (2 * dim) + 0.1 * torch.eye(dim, dtype=F64)
    return dist.MultivariateNormal(_randn(*batch, dim), cov)


# ---------------------------------------------------------------- GaussianMRF


def _dense_log_integral(factors, n, fixed_index, fixed_value):
    """``log`` of the integral over the free coordinates of ``prod_k N(v[idx_k]; m_k, C_k)``
    with ``v[fixed_index] = fixed_value``: the information form summed by hand, then the
    Gaussian integral. ``factors``: list of ``(index list, MultivariateNormal)``."""
    precision = torch.zeros(n, n, dtype=F64)
    info = torch.zeros(n, dtype=F64)
    const = torch.tensor(0.0, dtype=F64)
    for index, d in factors:
        p = torch.linalg.inv(d.covariance_matrix)
        idx = torch.tensor(index)
        precision[idx.unsqueeze(-1), idx] += p
        info[idx] += p @ d.loc
        k = len(index)
        const = const - 0.5 * (
            k * math.log(2 * math.pi) + torch.logdet(d.covariance_matrix) + d.loc @ p @ d.loc
        )
    free = torch.tensor([i for i in range(n) if i not in fixed_index], dtype=torch.long)
    fixed = torch.tensor(fixed_index, dtype=torch.long)
    if len(fixed_index):
        const = (
            const
            + info[fixed] @ fixed_value
            - 0.5 * fixed_value @ (precision[fixed.unsqueeze(-1), fixed] @ fixed_value)
        )
        info = info[free] - precision[free.unsqueeze(-1), fixed] @ fixed_value
    else:
        info = info[free]
    p_ff = precision[free.unsqueeze(-1), free]
    m = len(free)
    return (
        const
        + 0.5 * m * math.log(2 * math.pi)
        - 0.5 * torch.logdet(p_ff)
        + 0.5 * info @ torch.linalg.solve(p_ff, info)
    )


@pytest.mark.parametrize("T,h,o", [(1, 1, 1), (2, 1, 2), (3, 2, 1), (4, 2, 2)])
def test_gaussian_mrf_is_the_ratio_of_two_dense_integrals(T, h, o):
    torch.manual_seed(20 + T * 4 + h * 2 + o)
    init = _random_mvn(dim=h)
    trans = _random_mvn(T, dim=2 * h)
    obs = _random_mvn(T, dim=h + o)
    d = GaussianMRF(init, trans, obs)
    assert d.batch_shape == () and d.event_shape == (T, o)
    x = _randn(T, o)
    # Coordinates: z_{-1} .. z_{T-1} (h each), then x_0 .. x_{T-1} (o each).
    n = (T + 1) * h + T * o

    def z(t):  # indices of z_t, t from -1
        return list(range((t + 1) * h, (t + 2) * h))

    def xi(t):
        return list(range((T + 1) * h + t * o, (T + 1) * h + (t + 1) * o))

    factors = [(z(-1), init)]
    factors += [
        (z(t - 1) + z(t), dist.MultivariateNormal(trans.loc[t], trans.covariance_matrix[t]))
        for t in range(T)
    ]
    obs_t = [dist.MultivariateNormal(obs.loc[t], obs.covariance_matrix[t]) for t in range(T)]
    x_index = [i for t in range(T) for i in xi(t)]
    joint = _dense_log_integral(
        factors + [(z(t) + xi(t), obs_t[t]) for t in range(T)], n, x_index, x.reshape(-1)
    )
    # The obs factors with x integrated out: their z marginals.
    marginals = [
        (z(t), dist.MultivariateNormal(obs_t[t].loc[:h], obs_t[t].covariance_matrix[:h, :h]))
        for t in range(T)
    ]
    hidden = _dense_log_integral(factors + marginals, (T + 1) * h, [], torch.zeros(0, dtype=F64))
    assert torch.allclose(d.log_prob(x), joint - hidden)


def test_gaussian_mrf_with_observations_independent_of_the_state():
    # A block-diagonal observation factor leaves x independent of z: p(x) is its own marginal.
    torch.manual_seed(21)
    h, o, T = 2, 2, 3
    cov = torch.block_diag(
        _random_mvn(dim=h).covariance_matrix, _random_mvn(dim=o).covariance_matrix
    )
    obs = dist.MultivariateNormal(_randn(T, h + o), cov)
    d = GaussianMRF(_random_mvn(dim=h), _random_mvn(T, dim=2 * h), obs)
    x = _randn(5, T, o)
    marginal = dist.MultivariateNormal(obs.loc[..., h:], cov[h:, h:])
    assert torch.allclose(d.log_prob(x), marginal.log_prob(x).sum(-1))


def test_gaussian_mrf_shapes_and_errors():
    torch.manual_seed(22)
    d = GaussianMRF(_random_mvn(4, 1, dim=2), _random_mvn(7, dim=4), _random_mvn(3, 1, dim=3))
    assert d.batch_shape == (4, 3) and d.event_shape == (7, 1)
    x = _randn(7, 1)
    assert d.log_prob(x).shape == (4, 3)
    assert torch.allclose(d.expand((2, 4, 3)).log_prob(x), d.log_prob(x).expand(2, 4, 3))
    with pytest.raises(ShapeError, match=r"transition_dist needs event_shape \(4,\)"):
        GaussianMRF(_random_mvn(dim=2), _random_mvn(dim=3), _random_mvn(dim=3))
    with pytest.raises(ShapeError, match=r"transition_dist.batch_shape \(7,\)"):
        GaussianMRF(_random_mvn(dim=2), _random_mvn(7, dim=4), _random_mvn(6, dim=3))


# ---------------------------------------------------------------- GammaGaussianHMM


def _scaled(d, s):
    """``d`` with its covariance divided by each ``s`` (new batch dims on the left)."""
    cov = d.covariance_matrix
    return dist.MultivariateNormal(d.loc, cov / s.reshape(s.shape + (1,) * cov.dim()))


def _gamma_gaussian_parts(T, h, o):
    return (
        dist.Gamma(torch.tensor(2.5, dtype=F64), torch.tensor(1.5, dtype=F64)),
        _random_mvn(dim=h),
        0.5 * _randn(T, h, h),
        _random_mvn(T, dim=h),
        _randn(T, h, o),
        _random_mvn(T, dim=o),
    )


def _given_scale(parts, s):
    _, init, a, q, b, r = parts
    return GaussianHMM(_scaled(init, s), a, _scaled(q, s), b, _scaled(r, s))


def _log_grid(n=4001):
    """Quadrature nodes in log s over [1e-5, 1e3] and their trapezoid weights (in s)."""
    u = torch.linspace(math.log(1e-5), math.log(1e3), n, dtype=F64)
    w = torch.full_like(u, float(u[1] - u[0]))
    w[0] = w[-1] = w[0] / 2
    return u.exp(), w


@pytest.mark.parametrize("T,h,o", [(1, 1, 1), (3, 2, 1), (4, 1, 2)])
def test_gamma_gaussian_log_prob_integrates_the_scale_out(T, h, o):
    # p(x) = integral Gamma(s) p(x | s) ds, by the trapezoid rule in log s (4001 nodes; the
    # integrand is smooth and negligible beyond the grid), where p(x | s) is a GaussianHMM with
    # every covariance divided by s.
    torch.manual_seed(30 + T)
    parts = _gamma_gaussian_parts(T, h, o)
    d = GammaGaussianHMM(*parts)
    assert d.event_shape == (T, o)
    x = _randn(T, o)
    s, w = _log_grid()
    given = _given_scale(parts, s).log_prob(x)
    integrand = parts[0].log_prob(s) + given + s.log()  # ds = s d(log s)
    expected = (integrand + w.log()).logsumexp(0)
    assert torch.allclose(d.log_prob(x), expected, atol=1e-6)


def test_gamma_gaussian_filter_posteriors():
    torch.manual_seed(31)
    T, h, o = 3, 2, 1
    parts = _gamma_gaussian_parts(T, h, o)
    d = GammaGaussianHMM(*parts)
    x = _randn(T, o)
    scale, state = d.filter(x)
    # The posterior mean of s by quadrature.
    s, w = _log_grid()
    log_post = parts[0].log_prob(s) + _given_scale(parts, s).log_prob(x)
    weights = (log_post + s.log() + w.log()).softmax(0)
    assert torch.allclose(scale.mean, (weights * s).sum(), rtol=1e-6)
    # Given s = 1 the last state is the GaussianHMM's filtered state.
    unit = _given_scale(parts, torch.tensor(1.0, dtype=F64)).filter(x)
    assert torch.allclose(state.loc, unit.loc)
    assert torch.allclose(state.covariance_matrix, unit.covariance_matrix)


def test_gamma_gaussian_shapes_and_errors():
    torch.manual_seed(32)
    mvn = _random_mvn(dim=2)
    d = GammaGaussianHMM(
        dist.Gamma(torch.ones(5, dtype=F64), 1.0),
        mvn,
        _randn(6, 2, 2),
        mvn,
        _randn(2, 1),
        _random_mvn(dim=1),
    )
    assert d.batch_shape == (5,) and d.event_shape == (6, 1)
    x = _randn(6, 1)
    assert d.log_prob(x).shape == (5,)
    assert torch.allclose(d.expand((3, 5)).log_prob(x), d.log_prob(x).expand(3, 5))
    scale, state = d.filter(x)
    assert scale.batch_shape == (5,) and state.batch_shape == (5,)
    with pytest.raises(ArgumentError, match="scale_dist must be a Gamma"):
        GammaGaussianHMM(
            dist.Normal(0.0, 1.0), mvn, torch.eye(2), mvn, torch.ones(2, 1), _random_mvn(dim=1)
        )


# ---------------------------------------------------------------- LinearHMM, IndependentHMM


def test_linear_hmm_with_gaussian_noises_draws_like_the_gaussian_hmm():
    # Same model two ways: compare each coordinate's mean and variance over N = 40000 draws
    # (4.5 standard errors: sd / sqrt(N) for a mean, sqrt(2 / N) relative for a variance).
    torch.manual_seed(40)
    T, h, o = 3, 2, 2
    init, a, q, b = (
        _random_mvn(dim=h),
        0.5 * _randn(T, h, h),
        _random_mvn(T, dim=h),
        _randn(T, h, o),
    )
    r = dist.Normal(_randn(T, o), _randn(T, o).exp()).to_event(1)
    n = 40000
    draws = LinearHMM(init, a, q, b, r).rsample((n,)).reshape(n, -1)
    reference = GaussianHMM(init, a, q, b, r).rsample((n,)).reshape(n, -1)
    sd = reference.std(0)
    assert torch.all((draws.mean(0) - reference.mean(0)).abs() < 4.5 * sd * math.sqrt(2 / n))
    assert torch.all((draws.var(0) / reference.var(0) - 1).abs() < 4.5 * 2 * math.sqrt(1 / n))


def test_linear_hmm_shapes_transforms_and_no_log_prob():
    torch.manual_seed(41)
    t = dist.StudentT(3.0, torch.zeros(4, 1, 2, dtype=F64), 1.0).to_event(1)
    shared = dist.StudentT(3.0, torch.zeros(2, dtype=F64), 1.0).to_event(1)
    lognormal = dist.LogNormal(torch.zeros(5, 1, dtype=F64), 1.0).to_event(1)
    d = LinearHMM(t, _randn(2, 2), shared, _randn(2, 1), lognormal)
    assert d.batch_shape == (4, 1) and d.event_shape == (5, 1) and d.duration == 5
    x = d.rsample((3,))
    assert x.shape == (3, 4, 1, 5, 1) and bool((x > 0).all())
    assert d.expand((2, 4, 3)).rsample().shape == (2, 4, 3, 5, 1)
    assert d.support.check(x).all()
    with pytest.raises(NotImplementedError, match="LinearHMMReparam"):
        d.log_prob(x)
    with pytest.raises(ArgumentError, match="rsample"):
        LinearHMM(t, _randn(2, 2), shared, _randn(2, 1), dist.Poisson(torch.ones(5, 1)).to_event(1))
    with pytest.raises(ShapeError, match=r"initial_dist.event_shape is \(2,\)"):
        LinearHMM(t, _randn(3, 3), shared, _randn(3, 1), lognormal)


def test_independent_hmm_scores_each_series_separately():
    torch.manual_seed(42)
    n_series, T, h = 3, 4, 2
    init = _random_mvn(n_series, dim=h)
    a, q = 0.5 * _randn(n_series, T, h, h), _random_mvn(n_series, T, dim=h)
    b, r = _randn(n_series, T, h, 1), _random_mvn(n_series, T, dim=1)
    base = GaussianHMM(init, a, q, b, r)
    d = IndependentHMM(base)
    assert d.batch_shape == () and d.event_shape == (T, n_series) and d.duration == T
    x = _randn(2, T, n_series)
    expected = sum(
        GaussianHMM(
            dist.MultivariateNormal(init.loc[i], init.covariance_matrix[i]),
            a[i],
            dist.MultivariateNormal(q.loc[i], q.covariance_matrix[i]),
            b[i],
            dist.MultivariateNormal(r.loc[i], r.covariance_matrix[i]),
        ).log_prob(x[..., i : i + 1])
        for i in range(n_series)
    )
    assert torch.allclose(d.log_prob(x), expected)
    assert d.rsample((5,)).shape == (5, T, n_series) and d.has_rsample
    assert torch.allclose(d.expand((2,)).log_prob(x[0]), d.log_prob(x[0]).expand(2))
    with pytest.raises(ShapeError, match="event_shape \\(duration, 1\\)"):
        IndependentHMM(GaussianHMM(init, a, q, _randn(n_series, T, h, 2), _random_mvn(dim=2)))
