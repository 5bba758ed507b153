"""ELBO estimators in the harder cases: guide order differing from the model's, local discrete
sites in large plates, auxiliary guide sites, vectorised particles without plates, baselines."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.infer import SVI, Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from engine.infer.autoguide import AutoDiagonalNormal
from engine.optim import Adam


def test_tracegraph_counts_model_costs_when_the_guide_samples_in_another_order():
    # model: w, then z; guide: z, then w | z. dELBO/dphi = (-3 - phi) p (1 - p), p = sigmoid(phi).
    phi = torch.tensor(0.3, requires_grad=True)

    def model():
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        pyro.sample("z", dist.Bernoulli(0.5))
        pyro.sample("x", dist.Normal(w, 1.0), obs=torch.tensor(2.0))

    def guide():
        z = pyro.sample("z", dist.Bernoulli(torch.sigmoid(phi)))
        pyro.sample("w", dist.Normal(3.0 * z, 1.0))

    p = torch.sigmoid(phi).item()
    exact = (-3.0 - 0.3) * p * (1 - p)
    pyro.set_rng_seed(0)
    grads = []
    for _ in range(20):
        phi.grad = None
        elbo = TraceGraph_ELBO(num_particles=5000, vectorize_particles=True)
        elbo.loss_and_grads(model, guide)
        grads.append(-phi.grad.item())
    grads = torch.tensor(grads)
    standard_error = grads.std().item() / math.sqrt(len(grads))
    assert abs(grads.mean().item() - exact) < 4.5 * standard_error


def local_bernoulli_gradients(elbo_class, n, repeats=300):
    x = torch.linspace(-1.0, 3.0, n)

    def model():
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(2 * z, 1.0), obs=x)

    def guide():
        phi = pyro.param("phi", torch.zeros(n))
        with pyro.plate("data", n):
            pyro.sample("z", dist.Bernoulli(logits=phi))

    grads = []
    for _ in range(repeats):
        pyro.clear_param_store()
        elbo_class(max_plate_nesting=1).loss_and_grads(model, guide)
        grads.append(dict(pyro.get_param_store().named_parameters())["phi"].grad[0].item())
    return torch.tensor(grads)


@pytest.mark.parametrize("elbo_class", [Trace_ELBO, TraceGraph_ELBO])
def test_a_local_sites_score_term_only_sees_its_own_plate_element(elbo_class):
    # Rao-Blackwellised by the plate, element 0's gradient among 100 elements is distributed as
    # if it were alone: compare the two standard deviations (relative SE of an SD from m draws is
    # about 1 / sqrt(2 m); allow 5 of them on the ratio).
    pyro.set_rng_seed(1)
    alone = local_bernoulli_gradients(elbo_class, n=1)
    among_many = local_bernoulli_gradients(elbo_class, n=100)
    tolerance = 5 * math.sqrt(2 / (2 * len(alone)))
    assert abs(among_many.std().item() / alone.std().item() - 1) < tolerance


def test_meanfield_elbo_with_an_auxiliary_guide_site():
    def model():
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(1.0))

    guide = AutoDiagonalNormal(model)
    pyro.set_rng_seed(2)
    meanfield = torch.tensor([TraceMeanField_ELBO().loss(model, guide) for _ in range(2000)])
    plain = torch.tensor([Trace_ELBO().loss(model, guide) for _ in range(2000)])
    standard_error = math.sqrt(meanfield.var() / 2000 + plain.var() / 2000)
    assert abs(meanfield.mean() - plain.mean()) < 4.5 * standard_error


@pytest.mark.parametrize("elbo_class", [Trace_ELBO, TraceMeanField_ELBO, TraceGraph_ELBO])
def test_vectorised_particles_without_plates(elbo_class):
    p = torch.tensor(0.3, requires_grad=True)

    def model():
        pyro.sample("z", dist.Bernoulli(0.5))

    def guide():
        pyro.sample("z", dist.Bernoulli(p))

    # The exact ELBO is -KL(Bernoulli(0.3) || Bernoulli(0.5)).
    exact = 0.3 * math.log(0.3 / 0.5) + 0.7 * math.log(0.7 / 0.5)
    pyro.set_rng_seed(3)
    losses = torch.tensor(
        [
            elbo_class(num_particles=50, vectorize_particles=True).loss(model, guide)
            for _ in range(200)
        ]
    )
    standard_error = losses.std().item() / math.sqrt(len(losses)) + 1e-9
    assert abs(losses.mean().item() - exact) < 4.5 * standard_error + 1e-6


def baseline_model():
    coin = pyro.sample("coin", dist.Bernoulli(0.5))
    pyro.sample("x", dist.Normal(coin, 1.0), obs=torch.tensor(0.0))


def baseline_guide():
    logit = pyro.param("logit", torch.tensor(0.0))
    baseline = {"use_decaying_avg_baseline": True, "baseline_beta": 0.5}
    pyro.sample("coin", dist.Bernoulli(logits=logit), infer={"baseline": baseline})


def test_baselines_move_only_with_a_taken_step():
    elbo = TraceGraph_ELBO()
    svi = SVI(baseline_model, baseline_guide, Adam({"lr": 0.01}), elbo)
    svi.step()
    averages = dict(elbo.get_state()["decaying_averages"])
    svi.evaluate_loss()
    assert elbo.get_state()["decaying_averages"] == averages
    svi.step()
    assert elbo.get_state()["decaying_averages"] != averages


def coin_guide_with(baseline):
    def guide():
        logit = pyro.param("logit", torch.tensor(0.0))
        pyro.sample("coin", dist.Bernoulli(logits=logit), infer={"baseline": baseline})

    return guide


@pytest.mark.parametrize(
    "baseline, match",
    [
        ({"nn_baselin": torch.nn.Linear(1, 1)}, "unknown baseline options.*nn_baselin"),
        ({"nn_baseline": torch.nn.Linear(1, 1)}, "nn_baseline_input"),
        ({"nn_baseline": 3.0, "nn_baseline_input": torch.ones(1)}, "must be a module"),
        (
            {"nn_baseline": torch.nn.Linear(1, 1), "baseline_value": torch.zeros(())},
            "not both",
        ),
        ({"nn_baseline": torch.nn.Linear(1, 2), "nn_baseline_input": torch.ones(1)}, r"\(2,\)"),
    ],
)
def test_bad_baseline_options_are_refused_naming_the_site(baseline, match):
    with pytest.raises(ValueError, match="site 'coin'.*" + match):
        TraceGraph_ELBO().loss_and_grads(baseline_model, coin_guide_with(baseline))


def test_a_module_baseline_is_fitted_to_the_downstream_cost_and_not_its_input():
    # The guide is certain (coin = 1), so the downstream cost is known exactly:
    # log p(coin = 1) + log N(0; 1, 1) - log q(1) = log 0.5 - log(2 pi) / 2 - 1 / 2.
    # The loss gains (cost - b)^2, so the bias of b = bias gets the gradient 2 (b - cost), and
    # the decaying average (0 at the first step) adds to b without taking part in the gradient.
    net = torch.nn.Linear(1, 1)
    with torch.no_grad():
        net.weight.fill_(0.5)
        net.bias.fill_(-1.0)
    reading = torch.tensor([2.0], requires_grad=True)

    def guide():
        pyro.module("net", net)
        baseline = {
            "nn_baseline": lambda x: net(x).squeeze(-1),
            "nn_baseline_input": reading,
            "use_decaying_avg_baseline": True,
        }
        pyro.sample("coin", dist.Bernoulli(probs=1.0), infer={"baseline": baseline})

    pyro.clear_param_store()
    TraceGraph_ELBO().loss_and_grads(baseline_model, guide)
    cost = math.log(0.5) - 0.5 * math.log(2 * math.pi) - 0.5
    guess = 0.5 * 2.0 - 1.0
    assert net.bias.grad.item() == pytest.approx(2 * (guess - cost), rel=1e-5)
    assert net.weight.grad.item() == pytest.approx(2 * (guess - cost) * 2.0, rel=1e-5)
    assert reading.grad is None


def test_a_failed_state_load_changes_nothing():
    svi = SVI(baseline_model, baseline_guide, Adam({"lr": 0.01}), Trace_ELBO())
    svi.step()
    state = svi.get_state()
    pyro.get_param_store()["logit"] = torch.tensor(5.0)
    state["optim"] = {"format": "not an optimizer state"}
    with pytest.raises(ValueError):
        svi.set_state(state)
    assert pyro.param("logit").item() == 5.0
