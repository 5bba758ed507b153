"""Enumeration: exact marginals against brute force and the forward algorithm, MAP against
Viterbi, a Gaussian mixture fitted with AutoDelta, guide-side enumeration, and the errors."""

import functools
import itertools

import numpy as np
import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import ModelGuideMismatchError
from engine.infer import (
    SVI,
    EnumerationError,
    Trace_ELBO,
    TraceEnum_ELBO,
    config_enumerate,
    infer_discrete,
)
from engine.infer.autoguide import AutoDelta
from engine.ops.indexing import Vindex
from engine.optim import Adam

# -- a small discrete model with nested plates, against brute force ---------------------------

P_A = torch.tensor([0.2, 0.5, 0.3])
P_B = torch.tensor([0.3, 0.6, 0.8])
DATA = torch.tensor([[0.3, -1.2], [2.1, 0.4], [1.0, 1.7]])


@config_enumerate
def nested_model(data):
    a = engine.sample("a", dist.Categorical(P_A))
    with engine.plate("rows", 3, dim=-2):
        b = engine.sample("b", dist.Bernoulli(P_B[a]))
        with engine.plate("cols", 2, dim=-1):
            c = engine.sample("c", dist.Bernoulli(0.2 + 0.5 * b))
            engine.sample("x", dist.Normal(a.float() + c, 1.0), obs=data)


def every_assignment(data):
    """``(log p(x, a, b, c), (a, b, c))`` for every assignment of a, b (3) and c (3 x 2)."""
    for a in range(3):
        for bs in itertools.product(range(2), repeat=3):
            for cs in itertools.product(range(2), repeat=6):
                log_p = P_A[a].log()
                for r, b in enumerate(bs):
                    log_p = log_p + dist.Bernoulli(P_B[a]).log_prob(torch.tensor(float(b)))
                    for j in range(2):
                        c = cs[2 * r + j]
                        p_c = dist.Bernoulli(torch.tensor(0.2 + 0.5 * b))
                        log_p = log_p + p_c.log_prob(torch.tensor(float(c)))
                        log_p = log_p + dist.Normal(float(a + c), 1.0).log_prob(data[r, j])
                yield log_p, (a, bs, cs)


@functools.cache
def assignments_of_data():
    return list(every_assignment(DATA))


def brute_force_log_marginal():
    return torch.logsumexp(torch.stack([log_p for log_p, _ in assignments_of_data()]), 0)


def empty_guide(*args, **kwargs):
    pass


def test_marginal_likelihood_equals_brute_force_with_sites_in_nested_plates():
    expected = brute_force_log_marginal().item()
    for nesting in (2, None):  # given, and read off the model
        elbo = TraceEnum_ELBO() if nesting is None else TraceEnum_ELBO(max_plate_nesting=nesting)
        assert elbo.loss(nested_model, empty_guide, DATA) == pytest.approx(-expected, abs=1e-4)


def test_infer_discrete_map_equals_the_brute_force_joint_map_in_nested_plates():
    _, (a, bs, cs) = max(assignments_of_data(), key=lambda pair: pair[0].item())
    tr = poutine.trace(infer_discrete(nested_model, temperature=0)).get_trace(DATA)
    assert int(tr.nodes["a"]["value"]) == a
    assert tr.nodes["b"]["value"].shape == (3, 1)
    assert tr.nodes["b"]["value"].flatten().tolist() == list(bs)
    assert tr.nodes["c"]["value"].flatten().tolist() == list(cs)


def test_the_shape_table_shows_enumeration_dims_apart_from_plates():
    enumerated = poutine.enum(nested_model, first_available_dim=-3)
    table = poutine.trace(enumerated).get_trace(DATA).format_shapes()
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert rows["a"].rstrip().endswith("*a@-3")
    assert "rows@-2 cols@-1" in rows["x"] and rows["x"].rstrip().endswith("a@-3 c@-5")
    assert "enum" in table.splitlines()[1]


def test_gradients_of_the_exact_marginal_match_brute_force():
    loc = torch.tensor(0.5, requires_grad=True)

    @config_enumerate
    def model():
        z = engine.sample("z", dist.Categorical(torch.tensor([0.3, 0.7])))
        engine.sample("x", dist.Normal(loc * z.float(), 1.0), obs=torch.tensor(1.3))

    TraceEnum_ELBO().differentiable_loss(model, empty_guide).backward()
    grad = loc.grad.clone()
    loc.grad = None
    exact = -torch.logsumexp(
        torch.stack(
            [
                torch.tensor(0.3).log() + dist.Normal(0.0, 1.0).log_prob(torch.tensor(1.3)),
                torch.tensor(0.7).log() + dist.Normal(loc, 1.0).log_prob(torch.tensor(1.3)),
            ]
        ),
        0,
    )
    exact.backward()
    assert grad.item() == pytest.approx(loc.grad.item(), abs=1e-6)


# -- a hidden Markov model under markov: forward algorithm and Viterbi -------------------------

INIT = torch.tensor([0.6, 0.4])
TRANS = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
LOCS = torch.tensor([-1.0, 1.0])


def hmm_data(steps=100, seed=1):
    generator = torch.Generator().manual_seed(seed)
    states = [int(torch.multinomial(INIT, 1, generator=generator))]
    for _ in range(steps - 1):
        states.append(int(torch.multinomial(TRANS[states[-1]], 1, generator=generator)))
    return LOCS[torch.tensor(states)] + torch.randn(steps, generator=generator)


@config_enumerate
def hmm(ys):
    x = engine.sample("x_0", dist.Categorical(INIT))
    engine.sample("y_0", dist.Normal(LOCS[x], 1.0), obs=ys[0])
    for t in engine.markov(range(1, len(ys))):
        x = engine.sample(f"x_{t}", dist.Categorical(TRANS[x]))
        engine.sample(f"y_{t}", dist.Normal(LOCS[x], 1.0), obs=ys[t])


def forward_algorithm(ys):
    emission = dist.Normal(LOCS, 1.0).log_prob(ys[:, None])
    alpha = INIT.log() + emission[0]
    for t in range(1, len(ys)):
        alpha = torch.logsumexp(alpha[:, None] + TRANS.log(), 0) + emission[t]
    return torch.logsumexp(alpha, 0)


def viterbi(ys):
    emission = dist.Normal(LOCS, 1.0).log_prob(ys[:, None])
    delta, pointers = INIT.log() + emission[0], []
    for t in range(1, len(ys)):
        scores = delta[:, None] + TRANS.log()
        pointers.append(scores.argmax(0))
        delta = scores.amax(0) + emission[t]
    path = [int(delta.argmax())]
    for pointer in reversed(pointers):
        path.append(int(pointer[path[-1]]))
    return path[::-1]


def test_a_100_step_hmm_under_markov_matches_the_forward_algorithm():
    ys = hmm_data()
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(hmm, empty_guide, ys)
    assert loss == pytest.approx(-forward_algorithm(ys).item(), rel=1e-5)
    # markov recycles dims: 100 states fit in a handful of dims (torch allows 64 at most)
    enumerated = poutine.trace(poutine.enum(hmm, first_available_dim=-1)).get_trace(ys)
    dims = {enumerated.nodes[f"x_{t}"]["infer"]["_enumerate_dim"] for t in range(100)}
    assert len(dims) <= 3


def test_infer_discrete_map_is_the_viterbi_path():
    ys = hmm_data()
    map_run = infer_discrete(hmm, first_available_dim=-1, temperature=0)
    tr = poutine.trace(map_run).get_trace(ys)
    assert [int(tr.nodes[f"x_{t}"]["value"]) for t in range(100)] == viterbi(ys)
    assert tr.nodes["x_0"]["value"].shape == ()


def test_infer_discrete_samples_follow_the_exact_posterior():
    # one binary state with 2 observations: the posterior is known in closed form
    @config_enumerate
    def model(y):
        z = engine.sample("z", dist.Bernoulli(0.3))
        with engine.plate("data", 2):
            engine.sample("y", dist.Normal(2.0 * z, 1.0), obs=y)
        return z

    y = torch.tensor([1.2, 0.9])
    log_odds = torch.tensor(0.3 / 0.7).log() + (
        dist.Normal(2.0, 1.0).log_prob(y).sum() - dist.Normal(0.0, 1.0).log_prob(y).sum()
    )
    posterior = torch.sigmoid(log_odds).item()
    engine.set_rng_seed(0)
    sampler = infer_discrete(model, temperature=1)
    draws = 4000
    frequency = sum(float(sampler(y)) for _ in range(draws)) / draws
    standard_error = (posterior * (1 - posterior) / draws) ** 0.5
    assert abs(frequency - posterior) < 4 * standard_error


def test_infer_discrete_in_plates_gives_values_of_the_sites_batch_shape():
    ys = torch.tensor([-3.0, 3.0, -2.5, 2.0])

    @config_enumerate
    def model(ys):
        with engine.plate("data", 4):
            z = engine.sample("z", dist.Categorical(torch.tensor([0.5, 0.5])))
            engine.sample("y", dist.Normal(torch.tensor([-3.0, 3.0])[z], 1.0), obs=ys)

    tr = poutine.trace(infer_discrete(model, temperature=0)).get_trace(ys)
    assert tr.nodes["z"]["value"].tolist() == [0, 1, 0, 1]


# -- a Gaussian mixture with AutoDelta on the globals ------------------------------------------


def gmm_data():
    rng = np.random.default_rng(5)  # shared/benchmarks/WORKLOADS.md, gmm_enum
    u, eps = rng.random(500), rng.standard_normal(500)
    z = np.minimum(np.searchsorted(np.cumsum([0.5, 0.3, 0.2]), u, "right"), 2)
    x = np.array([-4.0, 0.0, 4.0])[z] + eps
    return torch.tensor(x, dtype=torch.float32), z


@config_enumerate
def gmm(data):
    weights = engine.sample("weights", dist.Dirichlet(0.5 * torch.ones(3)))
    scale = engine.sample("scale", dist.LogNormal(0.0, 2.0))
    with engine.plate("components", 3):
        locs = engine.sample("locs", dist.Normal(0.0, 10.0))
    with engine.plate("data", len(data)):
        assignment = engine.sample("assignment", dist.Categorical(weights))
        engine.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


def test_a_three_component_mixture_recovers_its_components_with_auto_delta():
    data, z = gmm_data()
    engine.clear_param_store()
    engine.set_rng_seed(0)

    def init(site):
        starts = {
            "weights": torch.ones(3) / 3,
            "scale": torch.tensor(1.0),
            "locs": data.quantile(torch.tensor([1 / 6, 0.5, 5 / 6])),
        }
        return starts[site["name"]]

    guide = AutoDelta(gmm, init_loc_fn=init)  # the enumerated site is left to TraceEnum_ELBO
    svi = SVI(gmm, guide, Adam({"lr": 0.1, "betas": (0.8, 0.99)}), TraceEnum_ELBO())
    for _ in range(400):
        svi.step(data)
    fitted = guide.median(data)
    x = data.numpy()
    for k in range(3):
        members = x[z == k]
        # the MAP of each component's mean is its members' mean up to the prior and the few
        # points of the neighbouring components: within 3 standard errors
        standard_error = members.std() / len(members) ** 0.5
        assert abs(fitted["locs"][k].item() - members.mean()) < 3 * standard_error
        share = len(members) / len(x)
        assert abs(fitted["weights"][k].item() - share) < 3 * (share * (1 - share) / len(x)) ** 0.5
    assert abs(fitted["scale"].item() - 1.0) < 0.1


def test_enumerating_matches_monte_carlo_in_expectation_on_the_mixture():
    data, _ = gmm_data()
    data = data[:20]
    engine.set_rng_seed(1)

    def fixed_guide(data):
        engine.sample("weights", dist.Delta(torch.tensor([0.5, 0.3, 0.2])).to_event(1))
        engine.sample("scale", dist.Delta(torch.tensor(1.0)))
        with engine.plate("components", 3):
            engine.sample("locs", dist.Delta(torch.tensor([-4.0, 0.0, 4.0])))

    exact = TraceEnum_ELBO(max_plate_nesting=1).loss(gmm, fixed_guide, data)
    log_joint = 0.0
    weights, locs = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([-4.0, 0.0, 4.0])
    log_joint += dist.Dirichlet(0.5 * torch.ones(3)).log_prob(weights)
    log_joint += dist.LogNormal(0.0, 2.0).log_prob(torch.tensor(1.0))
    log_joint += dist.Normal(0.0, 10.0).log_prob(locs).sum()
    mixture = weights.log() + dist.Normal(locs, 1.0).log_prob(data[:, None])
    log_joint += torch.logsumexp(mixture, -1).sum()
    assert exact == pytest.approx(-log_joint.item(), rel=1e-5)
    with pytest.raises(ModelGuideMismatchError, match=r"assignment.*TraceEnum_ELBO"):
        Trace_ELBO().loss(gmm, fixed_guide, data)


# -- the guide enumerates ------------------------------------------------------------------------


def test_an_enumerated_guide_site_gives_the_exact_expectation_and_gradient():
    probs = torch.tensor([0.25, 0.75], requires_grad=True)
    y = torch.tensor([0.4, 1.9, 2.2])

    def model(y):
        z = engine.sample("z", dist.Categorical(torch.tensor([0.5, 0.5])))
        with engine.plate("data", 3):
            engine.sample("y", dist.Normal(2.0 * z.float(), 1.0), obs=y)

    @config_enumerate
    def guide(y):
        engine.sample("z", dist.Categorical(probs))

    loss = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, y)
    loss.backward()
    grad = probs.grad.clone()
    probs.grad = None
    q = probs / probs.sum()  # Categorical normalises its probs
    expected = 0.0
    for k in range(2):
        log_p = torch.tensor(0.5).log() + dist.Normal(2.0 * k, 1.0).log_prob(y).sum()
        expected = expected + q[k] * (log_p - q[k].log())
    (-expected).backward()
    assert loss.item() == pytest.approx(-expected.item(), rel=1e-6)
    assert torch.allclose(grad, probs.grad, atol=1e-6)


def test_sequential_guide_enumeration_equals_parallel():
    y = torch.tensor([0.4, 1.9])

    def model(y):
        z = engine.sample("z", dist.Bernoulli(0.4))
        with engine.plate("data", 2):
            engine.sample("y", dist.Normal(2.0 * z, 1.0), obs=y)

    def guide_with(strategy):
        def guide(y):
            engine.sample("z", dist.Bernoulli(0.7), infer={"enumerate": strategy})

        return guide

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    parallel = elbo.loss(model, guide_with("parallel"), y)
    sequential = elbo.loss(model, guide_with("sequential"), y)
    assert sequential == pytest.approx(parallel, rel=1e-6)


def test_model_and_guide_enumeration_together():
    # the guide enumerates a global switch, the model sums out a local assignment given it
    y = torch.tensor([0.1, 2.3, -0.4])

    def model(y):
        s = engine.sample("s", dist.Bernoulli(0.5))
        with engine.plate("data", 3):
            a = engine.sample("a", dist.Bernoulli(0.3 + 0.4 * s), infer={"enumerate": "parallel"})
            engine.sample("y", dist.Normal(2.0 * a, 1.0), obs=y)

    def guide(y):
        engine.sample("s", dist.Bernoulli(0.6), infer={"enumerate": "parallel"})

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide, y)
    expected = 0.0
    for s, q in ((0, 0.4), (1, 0.6)):
        p_a = 0.3 + 0.4 * s
        per_point = torch.logsumexp(
            torch.stack(
                [
                    torch.tensor(1 - p_a).log() + dist.Normal(0.0, 1.0).log_prob(y),
                    torch.tensor(p_a).log() + dist.Normal(2.0, 1.0).log_prob(y),
                ]
            ),
            0,
        )
        expected += q * (torch.tensor(0.5).log() + per_point.sum() - torch.tensor(q).log())
    assert loss == pytest.approx(-float(expected), rel=1e-6)


# -- Vindex ----------------------------------------------------------------------------------


def test_vindex_keeps_enumeration_dims_where_plain_indexing_loses_them():
    trans = torch.tensor([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.3, 0.7]]])  # per sequence

    def model(vindexed):
        with engine.plate("sequences", 2, dim=-1):
            x = engine.sample("x_0", dist.Categorical(torch.tensor([0.5, 0.5])))
            probs = Vindex(trans)[..., x, :] if vindexed else trans[x]
            engine.sample("x_1", dist.Categorical(probs), obs=torch.tensor([1, 0]))

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.loss(config_enumerate(model), empty_guide, True)
    expected = -sum(
        torch.logsumexp(torch.tensor([0.5, 0.5]).log() + trans[s, :, obs].log(), 0)
        for s, obs in ((0, 1), (1, 0))
    )
    assert loss == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(engine.errors.ShapeError, match=r"x_1[\s\S]*Vindex"):
        elbo.loss(config_enumerate(model), empty_guide, False)


# -- errors ----------------------------------------------------------------------------------


def test_a_plate_deeper_than_max_plate_nesting_is_named_with_the_fix():
    with pytest.raises(engine.errors.PlateError) as caught:
        TraceEnum_ELBO(max_plate_nesting=1).loss(nested_model, empty_guide, DATA)
    message = str(caught.value)
    assert "plate 'rows'" in message and "dim -2" in message
    assert "max_plate_nesting=2" in message


def test_a_site_outside_its_markov_window_is_an_error_naming_both_sites():
    @config_enumerate
    def model(ys):
        xs = []
        for t in engine.markov(range(len(ys))):
            probs = TRANS[xs[-2]] if len(xs) >= 2 else INIT  # depends two steps back
            xs.append(engine.sample(f"x_{t}", dist.Categorical(probs)))
            engine.sample(f"y_{t}", dist.Normal(LOCS[xs[-1]], 1.0), obs=ys[t])

    with pytest.raises(EnumerationError) as caught:
        TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty_guide, hmm_data(6))
    message = str(caught.value)
    assert "'x_2'" in message and "'x_0'" in message and "history" in message


def test_sites_enumerated_in_crossing_plates_that_meet_are_an_error():
    @config_enumerate
    def model():
        with engine.plate("rows", 2, dim=-2):
            a = engine.sample("a", dist.Bernoulli(0.5))
        with engine.plate("cols", 3, dim=-1):
            b = engine.sample("b", dist.Bernoulli(0.5))
        with engine.plate("rows", 2, dim=-2), engine.plate("cols", 3, dim=-1):
            engine.sample("x", dist.Normal(a + b, 1.0), obs=torch.zeros(2, 3))

    with pytest.raises(EnumerationError) as caught:
        TraceEnum_ELBO(max_plate_nesting=2).loss(model, empty_guide)
    message = str(caught.value)
    assert "'a'" in message and "'b'" in message and "'x'" in message


def test_sequential_enumeration_in_the_model_says_to_use_parallel():
    def model():
        engine.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})

    with pytest.raises(EnumerationError, match="parallel"):
        TraceEnum_ELBO().loss(model, empty_guide)


def test_enumerating_a_continuous_site_is_refused():
    def model():
        engine.sample("z", dist.Normal(0.0, 1.0), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match="no finite support"):
        TraceEnum_ELBO().loss(model, empty_guide)


# -- particles and subsampling -----------------------------------------------------------------


def local_mixture(data, subsample=None):
    loc = engine.sample("loc", dist.Normal(0.0, 5.0))
    with engine.plate("data", len(data), subsample=subsample) as idx:
        z = engine.sample("z", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
        engine.sample("x", dist.Normal(loc * z, 1.0), obs=data[idx])


def point_guide(data, subsample=None):
    engine.sample("loc", dist.Delta(torch.tensor(2.0)))


def local_log_marginals(data):
    return torch.logsumexp(
        torch.stack(
            [
                torch.tensor(0.7).log() + dist.Normal(0.0, 1.0).log_prob(data),
                torch.tensor(0.3).log() + dist.Normal(2.0, 1.0).log_prob(data),
            ]
        ),
        0,
    )


def test_a_subsampled_plate_scales_each_marginalised_element():
    data = torch.tensor([0.1, 2.2, -0.3, 1.8])
    subsample = torch.tensor([0, 2])
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(local_mixture, point_guide, data, subsample)
    prior = dist.Normal(0.0, 5.0).log_prob(torch.tensor(2.0))
    expected = prior + (4 / 2) * local_log_marginals(data)[subsample].sum()
    assert loss == pytest.approx(-expected.item(), rel=1e-6)


@pytest.mark.parametrize("vectorize", [False, True])
def test_particles_average_the_exact_elbo(vectorize):
    data = torch.tensor([0.1, 2.2, -0.3])
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=3, vectorize_particles=vectorize)
    expected = dist.Normal(0.0, 5.0).log_prob(torch.tensor(2.0)) + local_log_marginals(data).sum()
    assert elbo.loss(local_mixture, point_guide, data) == pytest.approx(-expected.item(), rel=1e-6)


@pytest.mark.slow  # dynamo traces the whole ELBO: seconds even with the eager backend
def test_the_compiled_enumerated_elbo_computes_the_same_objective():
    from engine.infer import JitTraceEnum_ELBO

    data = torch.tensor([0.1, 2.2, -0.3])
    eager = TraceEnum_ELBO(max_plate_nesting=1)
    compiled = JitTraceEnum_ELBO(max_plate_nesting=1, jit_options={"backend": "eager"})
    expected = eager.differentiable_loss(local_mixture, point_guide, data).item()
    for _ in range(2):  # the first call runs eagerly, the second compiled
        value = compiled.differentiable_loss(local_mixture, point_guide, data).item()
        assert value == pytest.approx(expected, rel=1e-6)


# -- regressions found in review: each against brute force or a hand computation ---------------


def brute_force(sites, log_joint):
    """-log of the sum of exp(log_joint(values)) over every assignment of binary ``sites``."""
    terms = [
        log_joint(dict(zip(sites, values, strict=True)))
        for values in itertools.product(range(2), repeat=len(sites))
    ]
    return -torch.logsumexp(torch.stack(terms), 0).item()


def bern(p, value):
    return torch.tensor(p if value else 1 - p).log()


def test_independent_enumerated_groups_at_one_plate_level():
    @config_enumerate
    def model():
        engine.sample("a", dist.Bernoulli(0.3))
        b = engine.sample("b", dist.Bernoulli(0.6))
        engine.sample("x", dist.Normal(b, 1.0), obs=torch.tensor(0.0))

    def joint(v):
        return (
            bern(0.3, v["a"])
            + bern(0.6, v["b"])
            + dist.Normal(float(v["b"]), 1.0).log_prob(torch.tensor(0.0))
        )

    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty_guide)
    assert loss == pytest.approx(brute_force(["a", "b"], joint), rel=1e-6)


@pytest.mark.parametrize("in_plate", [False, True])
def test_a_poutine_scale_multiplies_the_marginal_not_the_densities(in_plate):
    x = torch.tensor([0.4, 1.7])

    @config_enumerate
    def model():
        z = engine.sample("z", dist.Bernoulli(0.3))
        if in_plate:
            with engine.plate("data", 2):
                engine.sample("x", dist.Normal(2.0 * z, 1.0), obs=x)
        else:
            engine.sample("x", dist.Normal(2.0 * z, 1.0), obs=x[0])

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    unscaled = elbo.loss(model, empty_guide)
    assert elbo.loss(poutine.scale(model, scale=0.5), empty_guide) == pytest.approx(
        0.5 * unscaled, rel=1e-6
    )


def test_a_subsampled_sequential_plate_scales_each_marginal():
    data = torch.tensor([[0.3, 1.9], [2.2, -0.1], [0.0, 0.4], [1.1, 2.5]])

    @config_enumerate
    def model(subsample):
        for i in engine.plate("sequences", 4, subsample=subsample):
            z = engine.sample(f"z_{i}", dist.Bernoulli(0.4))
            engine.sample(f"x_{i}", dist.Normal(2.0 * z, 1.0), obs=data[i, 0])

    def marginal(i):
        return brute_force(
            ["z"], lambda v: bern(0.4, v["z"]) + dist.Normal(2.0 * v["z"], 1.0).log_prob(data[i, 0])
        )

    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty_guide, torch.tensor([2]))
    assert loss == pytest.approx(4 * marginal(2), rel=1e-6)


def test_a_model_site_met_before_the_guide_enumerated_site_it_depends_on():
    data = torch.tensor([0.2, 1.5, -0.3])
    p_a, q_a, q_loc = (
        torch.tensor(v) for v in ([0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.1, 0.5, -0.2])
    )

    def model(data):
        loc = engine.sample("loc", dist.Normal(0.0, 2.0))  # before "a", yet its value depends on a
        a = engine.sample("a", dist.Categorical(p_a))
        with engine.plate("data", 3):
            engine.sample("x", dist.Normal(a.float() + loc, 1.0), obs=data)

    def guide(data):
        a = engine.sample("a", dist.Categorical(q_a), infer={"enumerate": "parallel"})
        engine.sample("loc", dist.Delta(q_loc[a]))

    values = torch.arange(3.0)
    per_value = (
        p_a.log()
        + dist.Normal(0.0, 2.0).log_prob(q_loc)
        + dist.Normal((values + q_loc)[:, None], 1.0).log_prob(data).sum(-1)
        - q_a.log()
    )
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide, data)
    assert loss == pytest.approx(-(q_a * per_value).sum().item(), rel=1e-6)


def test_markov_history_three_two_chains_and_a_recursive_tree():
    obs = torch.tensor([0.3, -1.0, 2.0, 0.5, 1.2])
    table = torch.tensor([[0.7, 0.3], [0.2, 0.8]])

    @config_enumerate
    def third_order():
        xs = [0, 0, 0]
        for t in engine.markov(range(5), history=3):
            p = 0.2 + 0.2 * (xs[-3] + xs[-2] + xs[-1]) / 3 * 3
            xs.append(engine.sample(f"x_{t}", dist.Bernoulli(p)))
            engine.sample(f"y_{t}", dist.Normal(xs[-1], 1.0), obs=obs[t])

    def third_joint(v):
        xs, total = [0, 0, 0], torch.tensor(0.0)
        for t in range(5):
            total = total + bern(0.2 + 0.2 * sum(xs[-3:]), v[f"x_{t}"])
            xs.append(v[f"x_{t}"])
            total = total + dist.Normal(float(xs[-1]), 1.0).log_prob(obs[t])
        return total

    @config_enumerate
    def two_chains():
        w, x = 0, 0
        for t in engine.markov(range(3)):
            w = engine.sample(f"w_{t}", dist.Categorical(table[w]))
            x = engine.sample(f"x_{t}", dist.Categorical(table.flip(0)[x]))
            engine.sample(f"y_{t}", dist.Normal((w + 2 * x).float(), 1.0), obs=obs[t])

    def chains_joint(v):
        total, w, x = torch.tensor(0.0), 0, 0
        for t in range(3):
            total = total + table[w, v[f"w_{t}"]].log() + table.flip(0)[x, v[f"x_{t}"]].log()
            w, x = v[f"w_{t}"], v[f"x_{t}"]
            total = total + dist.Normal(float(w + 2 * x), 1.0).log_prob(obs[t])
        return total

    names = ["n", "nL", "nLL", "nLR", "nR", "nRL", "nRR"]

    @config_enumerate
    def tree():
        @engine.markov
        def node(name, parent):
            x = engine.sample(name, dist.Categorical(table[parent]))
            engine.sample(f"{name}_obs", dist.Normal(x.float(), 1.0), obs=obs[len(name) - 1])
            if len(name) < 3:
                node(name + "L", x)
                node(name + "R", x)

        node("n", 0)

    def tree_joint(v):
        total = torch.tensor(0.0)
        for name in names:
            parent = v[name[:-1]] if len(name) > 1 else 0
            total = total + table[parent, v[name]].log()
            total = total + dist.Normal(float(v[name]), 1.0).log_prob(obs[len(name) - 1])
        return total

    elbo = TraceEnum_ELBO(max_plate_nesting=0)
    cases = [
        (third_order, [f"x_{t}" for t in range(5)], third_joint),
        (two_chains, [f"{c}_{t}" for t in range(3) for c in "wx"], chains_joint),
        (tree, names, tree_joint),
    ]
    for model, sites, joint in cases:
        assert elbo.loss(model, empty_guide) == pytest.approx(brute_force(sites, joint), rel=1e-5)


def test_a_masked_enumerated_element_contributes_nothing():
    @config_enumerate
    def model(x, mask):
        with engine.plate("data", 2), poutine.mask(mask=mask):
            z = engine.sample("z", dist.Categorical(torch.ones(3) / 3))
            engine.sample("x", dist.Normal(z.float(), 1.0), obs=x)

    x = torch.tensor([0.5, 7.0])
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, empty_guide, x, torch.tensor([1, 0]) > 0)
    log_p0 = torch.logsumexp(dist.Normal(torch.arange(3.0), 1.0).log_prob(x[0]) - np.log(3), 0)
    assert loss == pytest.approx(-log_p0.item(), rel=1e-6)


def test_vindex_without_ellipsis_indexes_the_leftmost_dims():
    probs = torch.rand(3, 3, 4)
    w, x = torch.arange(3).reshape(3, 1, 1), torch.arange(3).reshape(3, 1)
    assert Vindex(probs)[w, x].shape == (3, 3, 1, 4)
    assert torch.equal(Vindex(probs)[w, x][2, 1, 0], probs[2, 1])


def test_a_tensor_scale_on_an_enumerated_site_is_refused_with_the_fix():
    @config_enumerate
    def model():
        with engine.plate("rows", 3), poutine.scale(scale=torch.tensor([1.0, 2.0, 3.0])):
            engine.sample("z", dist.Bernoulli(0.5))

    with pytest.raises(EnumerationError, match=r"'z'[\s\S]*scalar poutine.scale"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(model, empty_guide)


def test_a_drawn_non_reparameterised_guide_site_gets_an_unbiased_gradient():
    # The guide enumerates a and draws k ~ Poisson(rate[a]) once per value of a: the score term
    # weights each draw by q(a). Against the exact gradient (k summed up to 30, where the
    # remaining mass is below 1e-20), within 4 standard errors of the mean of 400 draws.
    data = torch.tensor([0.2, 1.5, -0.3])
    p_a = torch.tensor([0.2, 0.5, 0.3])

    def model(data):
        a = engine.sample("a", dist.Categorical(p_a))
        k = engine.sample("k", dist.Poisson(2.0))
        with engine.plate("data", 3):
            engine.sample("x", dist.Normal(a.float() + 0.3 * k, 1.0), obs=data)

    def leaves():
        return torch.tensor([0.1, -0.3, 0.2], requires_grad=True), torch.tensor(
            [1.0, 2.0, 0.5], requires_grad=True
        )

    def guide_of(logits, rate):
        def guide(data):
            a = engine.sample("a", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
            engine.sample("k", dist.Poisson(rate[a]))

        return guide

    logits, rate = leaves()
    q_a = logits.softmax(0)
    elbo = 0.0
    for a in range(3):
        for k in range(30):
            value = torch.tensor(float(k))
            log_q_k = dist.Poisson(rate[a]).log_prob(value)
            log_p = p_a[a].log() + dist.Poisson(2.0).log_prob(value)
            log_p = log_p + dist.Normal(a + 0.3 * value, 1.0).log_prob(data).sum()
            elbo = elbo + q_a[a] * log_q_k.exp() * (log_p - q_a[a].log() - log_q_k)
    (-elbo).backward()
    exact = torch.cat([logits.grad, rate.grad])
    engine.set_rng_seed(0)
    grads = []
    for _ in range(400):
        logits, rate = leaves()
        TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(
            model, guide_of(logits, rate), data
        ).backward()
        grads.append(torch.cat([logits.grad, rate.grad]))
    grads = torch.stack(grads)
    standard_error = grads.std(0) / len(grads) ** 0.5
    assert ((grads.mean(0) - exact).abs() <= 4 * standard_error + 1e-6).all()
