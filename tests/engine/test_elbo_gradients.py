"""Every ELBO's gradient estimator is unbiased: many particles against the exact gradient.

Model: z ~ N(0, 1), x_i ~ N(z, 1) observed; guide q(z) = N(m, s) with s = exp(log_s). The ELBO and
its gradient are closed-form:
    dELBO/dm = -m + sum_i (x_i - m),   dELBO/dlog_s = s * (-(n + 1) s + 1 / s).
Each check repeats the estimate R times and compares the mean with the exact value within a few
standard errors of that mean.
"""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.distributions import constraints
from engine.infer import Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO

DATA = torch.tensor([0.5, 1.5, -0.3, 2.0, 1.1])
M0, S0 = 0.3, 0.8


class ScoreNormal(dist.Normal):
    """A Normal whose draws carry no pathwise gradient: forces the score-function estimator."""

    has_rsample = False


def model():
    z = pyro.sample("z", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(DATA)):
        pyro.sample("x", dist.Normal(z, 1.0), obs=DATA)


def make_guide(family, baseline=None):
    def guide():
        m = pyro.param("m", torch.tensor(M0))
        s = pyro.param("s", torch.tensor(S0), constraint=constraints.positive)
        infer = {"baseline": baseline} if baseline else {}
        pyro.sample("z", family(m, s), infer=infer)

    return guide


def exact_gradient():
    n = len(DATA)
    d_m = -M0 + (DATA - M0).sum()
    d_log_s = S0 * (-(n + 1) * S0 + 1 / S0)
    return -torch.stack([d_m, torch.tensor(d_log_s)])  # gradients of the loss = -ELBO


def estimated_gradients(elbo, guide, repeats):
    estimates = []
    for _ in range(repeats):
        pyro.clear_param_store()
        elbo.loss_and_grads(model, guide)
        elbo.commit_step()  # what SVI does after a step: baselines move on
        leaves = dict(pyro.get_param_store().named_parameters())
        estimates.append(torch.stack([leaves["m"].grad, leaves["s"].grad]))
    return torch.stack(estimates)


def assert_unbiased(estimates, exact):
    mean = estimates.mean(0)
    standard_error = estimates.std(0) / math.sqrt(len(estimates))
    # Meaningful only if the test could see a real error: errors well below the gradient's size.
    assert torch.all(standard_error < 0.1 * exact.abs())
    assert torch.all((mean - exact).abs() < 4.5 * standard_error), (mean, exact, standard_error)


@pytest.mark.parametrize(
    "elbo_class, family",
    [
        (Trace_ELBO, dist.Normal),
        (Trace_ELBO, ScoreNormal),
        (TraceMeanField_ELBO, dist.Normal),
        (TraceGraph_ELBO, dist.Normal),
        (TraceGraph_ELBO, ScoreNormal),
    ],
)
def test_global_gradient_is_unbiased(elbo_class, family):
    pyro.set_rng_seed(0)
    elbo = elbo_class(num_particles=400, vectorize_particles=True)
    estimates = estimated_gradients(elbo, make_guide(family), repeats=60)
    assert_unbiased(estimates, exact_gradient())


def test_score_function_with_decaying_baseline_is_unbiased_and_less_noisy():
    pyro.set_rng_seed(1)
    plain = estimated_gradients(
        TraceGraph_ELBO(num_particles=50), make_guide(ScoreNormal), repeats=80
    )
    baseline = {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}
    elbo = TraceGraph_ELBO(num_particles=50)
    with_baseline = estimated_gradients(elbo, make_guide(ScoreNormal, baseline), repeats=80)
    assert_unbiased(with_baseline, exact_gradient())
    assert with_baseline.std(0)[0] < plain.std(0)[0]


def exact_elbo():
    n = len(DATA)
    log_2pi = math.log(2 * math.pi)
    prior = -0.5 * log_2pi - 0.5 * (M0**2 + S0**2)
    likelihood = -0.5 * n * log_2pi - 0.5 * ((DATA - M0) ** 2 + S0**2).sum().item()
    entropy = 0.5 * (log_2pi + 1) + math.log(S0)
    return prior + likelihood + entropy


def test_score_function_with_a_module_baseline_is_unbiased_and_less_noisy():
    # A module that guesses the ELBO itself (what z's downstream cost averages to): whatever
    # the module outputs, it does not depend on the draw, so the estimate stays unbiased.
    net = torch.nn.Linear(1, 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.fill_(exact_elbo())
    pyro.set_rng_seed(4)
    plain = estimated_gradients(
        TraceGraph_ELBO(num_particles=50), make_guide(ScoreNormal), repeats=80
    )
    baseline = {"nn_baseline": lambda x: net(x).squeeze(-1), "nn_baseline_input": torch.ones(1)}
    with_baseline = estimated_gradients(
        TraceGraph_ELBO(num_particles=50), make_guide(ScoreNormal, baseline), repeats=80
    )
    assert_unbiased(with_baseline, exact_gradient())
    assert with_baseline.std(0)[0] < plain.std(0)[0]


LOCAL_DATA = torch.tensor([0.5, 1.5, -0.3, 2.0, 1.1, -1.2])
LOCAL_M = torch.tensor([0.1, -0.2, 0.4, 0.0, 0.3, -0.5])
LOCAL_S = torch.tensor([0.7, 0.9, 1.1, 0.6, 0.8, 1.0])


def local_model(subsample_size):
    with pyro.plate("data", len(LOCAL_DATA), subsample_size=subsample_size) as idx:
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=LOCAL_DATA[idx])


def make_local_guide(family):
    def guide(subsample_size):
        with pyro.plate("data", len(LOCAL_DATA), subsample_size=subsample_size):
            # read inside the plate: the plate hands back this mini-batch's rows
            m = pyro.param("m", LOCAL_M.clone(), event_dim=0)
            s = pyro.param("s", LOCAL_S.clone(), constraint=constraints.positive, event_dim=0)
            pyro.sample("z", family(m, s))

    return guide


@pytest.mark.parametrize(
    "elbo_class, family",
    [(Trace_ELBO, dist.Normal), (Trace_ELBO, ScoreNormal), (TraceGraph_ELBO, ScoreNormal)],
)
def test_local_gradients_with_subsampling_are_unbiased(elbo_class, family):
    # Per element: dELBO/dm_i = x_i - 2 m_i, dELBO/dlog s_i = 1 - 2 s_i^2 (full data).
    exact = -torch.cat([LOCAL_DATA - 2 * LOCAL_M, 1 - 2 * LOCAL_S**2])
    pyro.set_rng_seed(2)
    elbo = elbo_class(num_particles=200, vectorize_particles=True, max_plate_nesting=1)
    guide = make_local_guide(family)
    estimates = []
    for _ in range(300):
        pyro.clear_param_store()
        elbo.loss_and_grads(local_model, guide, 3)
        leaves = dict(pyro.get_param_store().named_parameters())
        estimates.append(torch.cat([leaves["m"].grad, leaves["s"].grad]))
    estimates = torch.stack(estimates)
    mean = estimates.mean(0)
    standard_error = estimates.std(0) / math.sqrt(len(estimates))
    assert torch.all((mean - exact).abs() < 4.5 * standard_error + 1e-6), (mean, exact)
    assert torch.all(standard_error < 0.25 * exact.abs().clamp(min=0.3))


@pytest.mark.parametrize("elbo_class", [Trace_ELBO, TraceMeanField_ELBO, TraceGraph_ELBO])
def test_loss_is_the_negative_elbo(elbo_class):
    pyro.set_rng_seed(3)
    guide = make_guide(dist.Normal)
    log2pi = math.log(2 * math.pi)
    exact_elbo = (
        -0.5 * log2pi
        - 0.5 * (M0**2 + S0**2)
        + sum(-0.5 * log2pi - 0.5 * ((x - M0) ** 2 + S0**2) for x in DATA.tolist())
        + 0.5 * math.log(2 * math.pi * math.e * S0**2)
    )
    elbo = elbo_class(num_particles=50, vectorize_particles=True)
    estimates = torch.tensor([elbo.loss(model, guide) for _ in range(200)])
    standard_error = estimates.std().item() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item() + exact_elbo) < 4.5 * standard_error
