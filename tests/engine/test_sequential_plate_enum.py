"""Sequential enumeration of a guide site in a plate (a batched site), as Pyro does it: each run
of the guide gives every element of the plate one value, and each element's costs are weighted
by that element's probability of it, so the runs add up to the exact ELBO and gradient. A site
drawn beside it without reparameterisation gets its score-function term against those weighted
costs, an unbiased estimate as in Pyro."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine.distributions import constraints
from engine.errors import EnumerationError
from engine.infer import TraceEnum_ELBO
from engine.ops.indexing import Vindex

DATA = torch.tensor([0.2, 2.4, 1.1, -0.5])
Q_GLOBAL = torch.tensor([0.35, 0.65])
Q_LOCAL = torch.tensor([[0.2, 0.6, 0.5, 0.9], [0.7, 0.3, 0.4, 0.1]])  # P(z_i = 1 | g)


def model(data):
    g = engine.sample("g", dist.Categorical(torch.tensor([0.5, 0.5])))
    engine.sample("tilt", dist.Normal(g.float(), 1.0), obs=torch.tensor(0.8))  # outside the plate
    with engine.plate("points", len(data)):
        z = engine.sample("z", dist.Bernoulli(torch.tensor([0.3, 0.6])[g]))
        engine.sample("x", dist.Normal(2.0 * z + 0.5 * g, 1.0), obs=data)


def make_guide(strategy_z, strategy_g="parallel", expand=False):
    def guide(data):
        q_global = engine.param("q_global", Q_GLOBAL.clone())
        q_local = engine.param("q_local", Q_LOCAL.clone())
        g = engine.sample("g", dist.Categorical(q_global), infer={"enumerate": strategy_g})
        with engine.plate("points", len(data)):
            infer = {"enumerate": strategy_z, "expand": expand}
            probs = Vindex(q_local)[g, torch.arange(len(data))]
            engine.sample("z", dist.Bernoulli(probs), infer=infer)

    return guide


def loss_and_grads(guide):
    engine.clear_param_store()
    loss = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, DATA)
    loss.backward()
    grads = [engine.param(name).unconstrained().grad.clone() for name in ("q_global", "q_local")]
    engine.clear_param_store()
    return loss.item(), grads


def brute_force_elbo():
    """E_q[log p - log q] over both values of g and all 16 assignments of z, by hand."""
    total = torch.tensor(0.0)
    for g in range(2):
        for code in range(2 ** len(DATA)):
            z = torch.tensor([float((code >> i) & 1) for i in range(len(DATA))])
            log_q = Q_GLOBAL[g].log() + dist.Bernoulli(Q_LOCAL[g]).log_prob(z).sum()
            log_p = torch.tensor(0.5).log() + dist.Normal(float(g), 1.0).log_prob(torch.tensor(0.8))
            log_p = log_p + dist.Bernoulli(torch.tensor([0.3, 0.6])[g]).log_prob(z).sum()
            log_p = log_p + dist.Normal(2.0 * z + 0.5 * g, 1.0).log_prob(DATA).sum()
            total = total + log_q.exp() * (log_p - log_q)
    return total.item()


@pytest.mark.parametrize("expand", [False, True])
def test_a_plated_sequential_site_gives_the_exact_elbo_and_gradient(expand):
    loss, grads = loss_and_grads(make_guide("sequential", "sequential", expand))
    assert loss == pytest.approx(-brute_force_elbo(), rel=1e-5)
    parallel_loss, parallel_grads = loss_and_grads(make_guide("parallel"))
    assert loss == pytest.approx(parallel_loss, rel=1e-5)
    for grad, expected in zip(grads, parallel_grads, strict=True):
        assert torch.allclose(grad, expected, atol=1e-5)


@pytest.mark.parametrize("expand", [False, True])
def test_each_run_gives_every_element_the_same_value(expand):
    from engine.infer.enum.sequential import sequential_branches

    values = []
    for branch in sequential_branches():
        guide = make_guide("sequential", "sequential", expand)
        trace = engine.poutine.trace(branch(guide)).get_trace(DATA)
        values.append(trace.nodes["z"]["value"])
    assert len(values) == 4  # two values of g, then two of z (one for all points)
    # As in Pyro: expanded to the plate's size only when the site asks (infer["expand"]),
    # else one value that broadcasts over the plate.
    shape = (4,) if expand else (1,)
    assert all(value.shape == shape and len(set(value.tolist())) == 1 for value in values)


def test_a_sequential_site_depending_on_a_parallel_one_is_refused_by_name():
    # Its batch has g's enumeration dim: one value per run cannot follow g's values.
    with pytest.raises(EnumerationError, match=r"'z'.*size 2 at dim -2"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(model, make_guide("sequential", "parallel"), DATA)


def test_a_batch_dim_no_plate_declares_is_refused_by_name():
    def guide(data):
        probs = torch.full((4,), 0.5)
        engine.sample("z", dist.Bernoulli(probs), infer={"enumerate": "sequential"})

    def unplated_model(data):
        engine.sample("z", dist.Bernoulli(torch.full((4,), 0.5)))

    with pytest.raises(EnumerationError, match=r"'z'.*no plate declares"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(unplated_model, guide, DATA)


def coin_model(data):
    coin = engine.sample("coin", dist.Bernoulli(0.3))
    engine.sample("flip", dist.Normal(coin, 1.0), obs=torch.tensor(0.9))
    model(data)


def coin_guide(coin_strategy, strategy):
    def guide(data):
        q_coin = engine.param("q_coin", torch.tensor(0.6), constraint=constraints.unit_interval)
        engine.sample("coin", dist.Bernoulli(q_coin), infer={"enumerate": coin_strategy})
        make_guide(strategy, strategy)(data)

    return guide


def coin_loss_and_grads(guide, num_particles):
    engine.clear_param_store()
    elbo = TraceEnum_ELBO(
        max_plate_nesting=1, num_particles=num_particles, vectorize_particles=True
    )
    loss = elbo.differentiable_loss(coin_model, guide, DATA)
    params = [engine.param(name).unconstrained() for name in ("q_coin", "q_global", "q_local")]
    grads = torch.autograd.grad(loss, params)
    engine.clear_param_store()
    return loss.detach(), torch.cat([g.reshape(-1) for g in grads])


def test_a_plated_sequential_site_beside_a_score_function_site_is_unbiased():
    # 'coin' is drawn (a Bernoulli: no reparameterisation, so a score-function term) while z is
    # enumerated one value per run for all its points. Reference: everything enumerated in
    # parallel, the exact ELBO and gradient.
    exact_loss, exact_grads = coin_loss_and_grads(coin_guide("parallel", "parallel"), 1)
    runs = []
    for seed in range(6):
        engine.set_rng_seed(seed)
        runs.append(coin_loss_and_grads(coin_guide(None, "sequential"), 400))
    losses = torch.stack([loss for loss, _ in runs])
    grads = torch.stack([grad for _, grad in runs])
    # The MC error of the mean of 6 independent estimates is their sd / sqrt(6) (measured: at
    # most 0.1 here, on q_coin). The gradients of q_global and q_local do not depend on the
    # coin: exact in every run up to float32 rounding (1e-4). Within 4.5 errors (a t with 5
    # degrees of freedom passes that 99.4 % of the time):
    error = grads.std(0) / 6**0.5
    assert error.max() < 0.15
    assert ((grads.mean(0) - exact_grads).abs() <= 4.5 * error + 1e-4).all()
    assert (losses.mean() - exact_loss).abs() <= 4.5 * losses.std() / 6**0.5 + 1e-4
