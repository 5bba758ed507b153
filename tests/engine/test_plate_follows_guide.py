"""A model's plate that takes all its elements follows the mini-batch of a guide that subsamples
the plate of the same name (Pyro's semantics), while plates that disagree are errors."""

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.distributions import constraints
from engine.errors import PlateError
from engine.infer import SVI, Trace_ELBO
from engine.optim import SGD

N, BATCH = 12, 4


def whole_model(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 5.0))
    with pyro.plate("data", len(data)) as idx:
        local = pyro.sample("local", dist.Normal(loc, 1.0))
        pyro.sample("obs", dist.Normal(local, 1.0), obs=data[idx])
    return idx


def subsampling_guide(data, batch=BATCH, size=None):
    pyro.sample("loc", dist.Normal(pyro.param("loc_mean", torch.tensor(0.3)), 0.5))
    size = size or len(data)
    with pyro.plate("data", size, subsample_size=batch) as idx:
        means = pyro.param("local_means", torch.linspace(-1.0, 1.0, size), event_dim=0)
        pyro.sample("local", dist.Normal(means, 0.5))
    return idx


DATA = torch.arange(N, dtype=torch.float32)


def test_a_whole_model_plate_takes_the_guides_mini_batch():
    guide_trace = poutine.trace(subsampling_guide).get_trace(DATA)
    model_trace = poutine.trace(poutine.replay(whole_model, trace=guide_trace)).get_trace(DATA)
    drawn = guide_trace.nodes["_RETURN"]["value"]
    assert drawn.shape == (BATCH,)
    assert torch.equal(model_trace.nodes["_RETURN"]["value"], drawn)
    # The model's sites hold the mini-batch's rows and count for N / BATCH elements each.
    assert torch.equal(model_trace.nodes["obs"]["value"], DATA[drawn])
    assert torch.equal(model_trace.nodes["local"]["value"], guide_trace.nodes["local"]["value"])
    assert model_trace.nodes["obs"]["scale"] == N / BATCH
    frame = model_trace.nodes["obs"]["cond_indep_stack"][0]
    assert (frame.name, frame.size, frame.full_size) == ("data", BATCH, N)
    # The indices the model took are in its trace, as its own mini-batch would be.
    assert torch.equal(model_trace.nodes["data"]["value"], drawn)


def test_a_sequential_model_plate_takes_the_guides_mini_batch():
    def model(data):
        return [i for i in pyro.plate("data", len(data))]

    guide_trace = poutine.trace(subsampling_guide).get_trace(DATA)
    taken = poutine.replay(model, trace=guide_trace)(DATA)
    assert taken == guide_trace.nodes["_RETURN"]["value"].tolist()


def test_the_loss_is_that_of_a_model_subsampling_the_same_mini_batch():
    def subsampling_model(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 5.0))
        with pyro.plate("data", len(data), subsample_size=BATCH) as idx:
            local = pyro.sample("local", dist.Normal(loc, 1.0))
            pyro.sample("obs", dist.Normal(local, 1.0), obs=data[idx])

    losses = []
    for model in (whole_model, subsampling_model):
        pyro.clear_param_store()
        pyro.set_rng_seed(3)
        losses.append(Trace_ELBO().loss(model, subsampling_guide, DATA))
    # The same draws from the same seed: the whole plate changes nothing but where the
    # mini-batch comes from, so the two estimates are the same number.
    assert losses[0] == losses[1]


def test_without_a_subsampling_guide_a_whole_plate_leaves_no_site():
    def model():
        with pyro.plate("data", 3):
            pyro.sample("x", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3):  # built twice under one name: fine, as before
            pyro.sample("y", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    assert list(tr.nodes) == ["_INPUT", "x", "y", "_RETURN"]
    replayed = poutine.trace(poutine.replay(model, trace=tr)).get_trace()
    assert list(replayed.nodes) == ["_INPUT", "x", "y", "_RETURN"]
    assert torch.equal(replayed.nodes["y"]["value"], tr.nodes["y"]["value"])


@pytest.mark.parametrize("model_batch", [BATCH + 1, N])
def test_different_mini_batch_sizes_are_an_error(model_batch):
    def model(data):
        with pyro.plate("data", len(data), subsample_size=model_batch) as idx:
            pyro.sample("obs", dist.Normal(0.0, 1.0), obs=data[idx])

    guide_trace = poutine.trace(subsampling_guide).get_trace(DATA)
    with pytest.raises(PlateError, match=rf"'data' asks for subsample_size={model_batch}.*{BATCH}"):
        poutine.replay(model, trace=guide_trace)(DATA)


def test_plates_of_different_sizes_are_an_error():
    guide_trace = poutine.trace(subsampling_guide).get_trace(DATA, size=N + 8)
    with pytest.raises(PlateError, match=rf"size {N}.*plate of size {N + 8}"):
        poutine.replay(whole_model, trace=guide_trace)(DATA)


FIT_N, FIT_BATCH, PRIOR_SCALE, K = 40, 8, 3.0, 10


def global_model(x):
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SCALE))
    with pyro.plate("data", len(x)) as idx:  # no subsample_size: it follows the guide
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x[idx])


def global_guide(x):
    mu_loc = pyro.param("mu_loc", torch.tensor(0.0))
    mu_scale = pyro.param("mu_scale", torch.tensor(1.0), constraint=constraints.positive)
    pyro.sample("mu", dist.Normal(mu_loc, mu_scale))
    with pyro.plate("data", len(x), subsample_size=FIT_BATCH):
        pass  # the guide only picks the mini-batch the model scores


@pytest.mark.slow
def test_a_whole_plate_model_fitted_with_a_subsampling_guide_reaches_the_exact_posterior():
    x = 1.5 + 1.4 * torch.randn(FIT_N, generator=torch.Generator().manual_seed(0))
    # Conjugate normal: the posterior of mu is N(m, 1 / P) with precision P = 1/9 + N and
    # m = sum(x) / P. The mini-batch loss is unbiased, and its expected gradients in
    # (mu_loc, log mu_scale) are P (mu_loc - m) and P mu_scale² - 1. Plain SGD moves each
    # param by a fixed multiple of its gradient, so where the iterates are stationary these
    # average to zero: the iterates' means of mu_loc and of mu_scale² are m and 1 / P exactly
    # (the mean of mu_scale itself sits below 1 / sqrt(P), by Jensen; Adam, which divides by a
    # running norm of noisy gradients, has no such exact fixed point).
    precision = PRIOR_SCALE**-2 + FIT_N
    exact = torch.tensor([x.sum() / precision, 1 / precision])
    pyro.set_rng_seed(2)
    svi = SVI(global_model, global_guide, SGD({"lr": 0.01}), Trace_ELBO())
    store, history, steps, burn_in = pyro.get_param_store(), [], 4000, 1000
    for step in range(steps):
        svi.step(x)
        if step >= burn_in:
            history.append(torch.stack([store["mu_loc"], store["mu_scale"] ** 2]).detach())
    # K batch means of 300 steps each: log mu_scale, the slowest coordinate, relaxes at a rate
    # lr * 2 P mu_scale² = 0.02 a step, so a batch spans six of its correlation times, and
    # the batch means' spread gives the MCSE.
    batch_means = torch.stack(history).reshape(K, -1, 2).mean(1)
    average, mcse = batch_means.mean(0), batch_means.std(0) / K**0.5
    # Each z-score is Student-t with K - 1 = 9 dof, beyond 4.3 with probability 0.2 %.
    z_scores = (average - exact) / mcse
    assert z_scores.abs().max() < 4.3, (average, exact, mcse)


def test_conditioning_a_site_named_like_its_plate_leaves_the_plate_whole():
    # Tutorials name a plate after the data it holds; the data is the site's, not the plate's.
    def coin(n=4):
        p = pyro.sample("p", dist.Beta(2.0, 2.0))
        with pyro.plate("flips", n):
            return pyro.sample("flips", dist.Bernoulli(p))

    observed = torch.tensor([1.0, 0.0, 1.0, 1.0])
    for handler in (poutine.condition, poutine.do):
        tr = poutine.trace(handler(coin, data={"flips": observed})).get_trace()
        assert tr.nodes["flips"]["fn"].batch_shape == (4,)
    conditioned = poutine.trace(poutine.condition(coin, data={"flips": observed})).get_trace()
    assert conditioned.nodes["flips"]["is_observed"]
    assert torch.equal(conditioned.nodes["flips"]["value"], observed)
