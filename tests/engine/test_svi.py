"""SVI: posterior recovery on conjugate models, failure handling, progress, saved state."""

import math

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.distributions import constraints
from engine.errors import ModelGuideMismatchError, NonFiniteError
from engine.infer import SVI, Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from engine.optim import Adam

DATA = torch.tensor([0.5, 1.5, -0.3, 2.0, 1.1])


def normal_model(data):
    z = pyro.sample("z", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(data)):
        pyro.sample("x", dist.Normal(z, 1.0), obs=data)


def normal_guide(data):
    loc = pyro.param("loc", torch.tensor(0.0))
    scale = pyro.param("scale", torch.tensor(1.0), constraint=constraints.positive)
    pyro.sample("z", dist.Normal(loc, scale))


def batch_means_error(iterates, batches=10):
    """The Monte Carlo standard error of the mean of autocorrelated iterates, by batch means."""
    means = iterates[: len(iterates) // batches * batches].reshape(batches, -1).mean(1)
    return means.std(0) / batches**0.5


def run_and_average(svi, steps, tail, *args):
    """Run SVI, then report the mean and spread of each param over the last `tail` steps."""
    history = {}
    for step in range(steps):
        svi.step(*args)
        if step >= steps - tail:
            for name, value in pyro.get_param_store().items():
                history.setdefault(name, []).append(value.detach().clone())
    return {name: torch.stack(values) for name, values in history.items()}


@pytest.mark.parametrize("elbo_class", [Trace_ELBO, TraceMeanField_ELBO, TraceGraph_ELBO])
def test_normal_normal_posterior(elbo_class):
    pyro.set_rng_seed(0)
    elbo = elbo_class(num_particles=8, vectorize_particles=True)
    svi = SVI(normal_model, normal_guide, Adam({"lr": 0.02}), elbo)
    history = run_and_average(svi, 2000, 500, DATA)
    precision = 1.0 + len(DATA)
    exact = {"loc": DATA.sum().item() / precision, "scale": precision**-0.5}
    for name, value in exact.items():
        iterates = history[name]
        # the Monte Carlo error of the averaged iterates, by batch means
        assert abs(iterates.mean().item() - value) < 4.5 * batch_means_error(iterates).item(), name


def test_beta_bernoulli_coin():
    data = torch.cat([torch.ones(6), torch.zeros(4)])

    def model(data):
        f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Bernoulli(f), obs=data)

    def guide(data):
        alpha_q = pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
        beta_q = pyro.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
        pyro.sample("latent_fairness", dist.Beta(alpha_q, beta_q))

    pyro.set_rng_seed(1)
    svi = SVI(
        model, guide, Adam({"lr": 0.01}), Trace_ELBO(num_particles=8, vectorize_particles=True)
    )
    history = run_and_average(svi, 3000, 500, data)
    means = history["alpha_q"] / (history["alpha_q"] + history["beta_q"])
    exact_mean = 16.0 / 30.0
    assert abs(means.mean().item() - exact_mean) < 4.5 * batch_means_error(means).item()


def overflowing_model():
    w = pyro.param("w", torch.tensor(1e30))
    # (0 - 1e30)^2 overflows float32: the log-density is -inf
    pyro.sample("x", dist.Normal(w, 1.0), obs=torch.tensor(0.0))


def test_nonfinite_loss_names_the_site_and_changes_nothing():
    svi = SVI(overflowing_model, lambda: None, Adam({"lr": 0.1}), Trace_ELBO())
    with pytest.raises(NonFiniteError) as info:
        svi.step()
    message = str(info.value)
    assert "model site 'x'" in message and "log-prob" in message
    assert "on_nonfinite='skip'" in message
    assert "w" not in pyro.get_param_store()  # created by the failed step: taken back out


def test_nonfinite_gradient_is_reported_with_the_param():
    def model():
        w = pyro.param("w", torch.tensor(0.0))
        pyro.factor("kink", torch.sqrt(w.abs()))  # finite value, NaN gradient at 0

    pyro.param("w", torch.tensor(0.0))
    svi = SVI(model, lambda: None, Adam({"lr": 0.1}), Trace_ELBO())
    with pytest.raises(NonFiniteError, match="param 'w'"):
        svi.step()
    assert pyro.param("w").item() == 0.0


def test_skip_mode_keeps_going_and_reports():
    pyro.param("w", torch.tensor(1e30))
    svi = SVI(overflowing_model, lambda: None, Adam({"lr": 0.1}), Trace_ELBO(), on_nonfinite="skip")
    events = []
    svi.progress.subscribe(events.append)
    loss = svi.step()
    assert math.isnan(loss)
    assert svi.skipped_steps == [1] and events[0].info["skipped"] is True
    assert "No parameter was changed" in events[0].info["message"]  # what a live view shows
    assert pyro.param("w").item() == torch.tensor(1e30).item()


def test_model_guide_mismatch_is_an_error_and_changes_nothing():
    def guide(data):
        pyro.param("loc", torch.tensor(0.0))

    svi = SVI(normal_model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    with pytest.raises(ModelGuideMismatchError, match="'z'"):
        svi.step(DATA)
    assert len(pyro.get_param_store()) == 0


def test_guide_with_real_support_for_a_positive_site_warns_then_fails_outside():
    def model(loc):
        pyro.sample("scale", dist.HalfNormal(1.0))

    def guide(loc):
        pyro.sample("scale", dist.Normal(pyro.param("m", torch.tensor(loc)), 0.1))

    # Draws near 1 stay positive: it runs, as in Pyro, with a warning naming the site.
    svi = SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO())
    with pytest.warns(UserWarning, match=r"site 'scale'.*LogNormal"):
        svi.step(1.0)
    # Draws near -1 fall outside the model's support: an error naming the site.
    pyro.clear_param_store()
    with pytest.raises(ModelGuideMismatchError, match=r"site 'scale'.*outside"):
        svi.step(-1.0)


def test_progress_events_and_param_snapshots():
    svi = SVI(normal_model, normal_guide, Adam({"lr": 0.01}), Trace_ELBO())
    events = []
    svi.progress.subscribe(events.append, wants_params=True)
    losses = svi.run(3, DATA)
    assert [e.step for e in events] == [1, 2, 3]
    assert [e.loss for e in events] == losses == svi.losses
    assert set(events[-1].params) == {"loc", "scale"}
    assert events[-1].params["scale"] > 0


def test_run_stops_when_the_callback_says_so():
    svi = SVI(normal_model, normal_guide, Adam({"lr": 0.01}), Trace_ELBO())
    losses = svi.run(10, DATA, callback=lambda event: event.step == 4)
    assert len(losses) == 4 and svi.step_count == 4


def test_evaluate_loss_changes_nothing():
    svi = SVI(normal_model, normal_guide, Adam({"lr": 0.01}), Trace_ELBO())
    svi.step(DATA)
    before = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    assert math.isfinite(svi.evaluate_loss(DATA))
    assert all(torch.equal(before[k], v) for k, v in pyro.get_param_store().items())
    assert svi.step_count == 1


def test_saved_state_continues_bit_for_bit(tmp_path):
    path = tmp_path / "svi.pt"
    pyro.set_rng_seed(4)
    svi = SVI(normal_model, normal_guide, Adam({"lr": 0.05}), Trace_ELBO())
    svi.run(5, DATA)
    svi.save(path)
    svi.run(5, DATA)
    expected = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}

    pyro.clear_param_store()
    pyro.set_rng_seed(99)
    resumed = SVI(normal_model, normal_guide, Adam({"lr": 0.05}), Trace_ELBO())
    resumed.load(path)
    assert resumed.step_count == 5
    resumed.run(5, DATA)
    for name, value in pyro.get_param_store().items():
        assert torch.equal(value.detach(), expected[name]), name
    assert torch.load(path, weights_only=True)["step"] == 5


def test_loss_must_be_an_elbo_or_a_function():
    with pytest.raises(TypeError, match="Trace_ELBO"):
        SVI(normal_model, normal_guide, Adam({"lr": 0.01}), loss=0.0)


def test_invalid_distribution_arguments_stop_the_step_naming_the_distribution():
    calls = []

    def model(data):
        calls.append(1)
        scale = -1.0 if len(calls) >= 3 else 1.0  # goes wrong on the third step
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(data)):
            pyro.sample("x", dist.Normal(z, scale), obs=data)

    svi = SVI(model, normal_guide, Adam({"lr": 0.01}), Trace_ELBO())
    svi.step(DATA)
    svi.step(DATA)
    before = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    with pytest.raises(ValueError, match="scale"):
        svi.step(DATA)
    assert all(torch.equal(before[k], v.detach()) for k, v in pyro.get_param_store().items())


def test_a_guide_that_stops_sampling_a_site_is_caught_on_that_step():
    calls = []

    def guide(data):
        calls.append(1)
        loc = pyro.param("loc", torch.tensor(0.0))
        if len(calls) < 3:
            pyro.sample("z", dist.Normal(loc, 1.0))

    svi = SVI(normal_model, guide, Adam({"lr": 0.01}), Trace_ELBO())
    svi.step(DATA)
    svi.step(DATA)
    with pytest.raises(ModelGuideMismatchError, match="'z'"):
        svi.step(DATA)


def test_a_lazily_built_autoguide_resumes_bit_for_bit(tmp_path):
    from engine.infer.autoguide import AutoNormal, init_to_median

    data = torch.randn(20)

    def model(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 20, subsample_size=5) as idx:
            pyro.sample("x", dist.Normal(loc, 1.0), obs=data[idx])

    def fresh_svi():
        guide = AutoNormal(model, init_loc_fn=init_to_median)  # set up by the first step
        elbo = Trace_ELBO(num_particles=3, vectorize_particles=True)  # nesting guessed then too
        return SVI(model, guide, Adam({"lr": 0.05}), elbo)

    pyro.set_rng_seed(5)
    svi = fresh_svi()
    svi.run(2, data)
    svi.save(tmp_path / "after_two.pt")
    svi.run(4, data)
    expected = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    pyro.clear_param_store()
    resumed = fresh_svi()  # its guide sets itself up on the first resumed step
    resumed.load(tmp_path / "after_two.pt")
    resumed.run(4, data)
    for name, value in pyro.get_param_store().items():
        assert torch.equal(value.detach(), expected[name]), name
