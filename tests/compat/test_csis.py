"""CSIS as Pyro's inference-compilation tutorial (``csis.ipynb``) uses it: a model that takes its
data as ``observations={...}``, a ``torch.nn`` guide that reads them, ``csis.step(prior_mean)`` to
compile, ``csis.run(prior_mean, observations=...)`` and ``EmpiricalMarginal`` to infer.

The tutorial's model is conjugate: z ~ Normal(1, sqrt 5), x1, x2 ~ Normal(z, sqrt 2). Given
x1 = 8 and x2 = 9 the posterior precision is 1/5 + 2/2 = 6/5, so z | x ~ Normal(7.25, sqrt(5/6)).
"""

import math

import pytest
import torch
from torch import nn

import engine as pyro
import engine.distributions as dist
import engine.infer
import engine.optim
from engine.errors import (
    ArgumentError,
    ModelGuideMismatchError,
    NonFiniteError,
    ObservationNameError,
)
from engine.infer import CSIS, EmpiricalMarginal, Importance

PRIOR_MEAN = torch.tensor(1.0)
DATA = {"x1": torch.tensor(8.0), "x2": torch.tensor(9.0)}
POSTERIOR_MEAN = 7.25
POSTERIOR_SD = math.sqrt(5 / 6)
# The smallest expected validation loss: E[-log q(z | x)] is least, over all proposals, when q is
# the posterior, whose entropy is the same for every x (a Normal of variance 5/6).
CONDITIONAL_ENTROPY = 0.5 * math.log(2 * math.pi * math.e * 5 / 6)


def model(prior_mean, observations={"x1": 0, "x2": 0}):  # noqa: B006 (the tutorial's signature)
    z = pyro.sample("z", dist.Normal(prior_mean, torch.tensor(5**0.5)))
    pyro.sample("x1", dist.Normal(z, torch.tensor(2**0.5)), obs=observations["x1"])
    pyro.sample("x2", dist.Normal(z, torch.tensor(2**0.5)), obs=observations["x2"])
    return z


class LinearGuide(nn.Module):
    """Proposes z from the mean of the two observations. The posterior mean is linear in it
    and the posterior sd constant, so a linear layer can learn the exact posterior; it starts as
    the prior, the proposal that plain importance sampling uses."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 2)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.copy_(torch.tensor([1.0, 0.5 * math.log(5.0)]))

    def forward(self, prior_mean, observations={"x1": 0, "x2": 0}):  # noqa: B006
        pyro.module("guide", self)
        centred = (observations["x1"] + observations["x2"]) / 2 - prior_mean
        loc, log_scale = self.linear(centred.reshape(1))
        pyro.sample("z", dist.Normal(loc, log_scale.exp()))


@pytest.fixture(scope="module")
def compiled():
    """One compilation shared by the tests that look at its result (training takes seconds)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = LinearGuide()
    csis = CSIS(
        model,
        guide,
        engine.optim.Adam({"lr": 0.1}),
        num_inference_samples=400,
        training_batch_size=10,
        validation_batch_size=200,
    )
    csis.set_validation_batch(PRIOR_MEAN)
    before = csis.validation_loss(PRIOR_MEAN)
    losses = [csis.step(PRIOR_MEAN) for _ in range(100)]
    after = csis.validation_loss(PRIOR_MEAN)
    return csis, guide, before, after, losses


def test_the_validation_loss_falls_to_the_posteriors_entropy(compiled):
    csis, _, before, after, losses = compiled
    assert len(losses) == 100 and all(math.isfinite(loss) for loss in losses)
    # Each of the 200 validation terms is -log q(z_i | x_i); under the exact posterior it is
    # the entropy plus (chi2_1 - 1) / 2, whose sd is sqrt(2) / 2, so the batch mean has
    # MCSE sqrt(2) / 2 / sqrt(200) = 0.05. The untrained guide is the prior: its expected loss
    # is the prior's entropy, 0.90 above the posterior's.
    mcse = math.sqrt(2) / 2 / math.sqrt(200)
    prior_entropy = 0.5 * math.log(2 * math.pi * math.e * 5)
    assert before == pytest.approx(prior_entropy, abs=4 * mcse)
    assert after < before - 0.5
    # A trained guide is at best the posterior (the loss is the entropy plus an average KL >= 0).
    assert CONDITIONAL_ENTROPY - 4 * mcse < after < CONDITIONAL_ENTROPY + 4 * mcse + 0.05
    # The validation batch is fixed: asking again gives the same number.
    assert csis.validation_loss(PRIOR_MEAN) == after


def test_run_gives_the_exact_posterior_within_monte_carlo_error(compiled):
    csis, *_ = compiled
    pyro.set_rng_seed(1)
    posterior = csis.run(PRIOR_MEAN, observations=DATA)
    assert isinstance(posterior, Importance) and len(posterior.exec_traces) == 400
    marginal = EmpiricalMarginal(posterior, "z")
    ess = posterior.get_ESS().item()
    # Self-normalised importance sampling: the weighted mean has variance about sd**2 / ESS, the
    # weighted sd about sd**2 / (2 ESS) (a Normal's kurtosis is 3). Four standard errors each.
    assert abs(marginal.mean.item() - POSTERIOR_MEAN) < 4 * POSTERIOR_SD / math.sqrt(ess)
    sd = marginal.variance.sqrt().item()
    assert abs(sd - POSTERIOR_SD) < 4 * POSTERIOR_SD / math.sqrt(2 * ess)
    # Compilation is what makes this cheap: the prior proposes far from x = (8, 9), so plain
    # importance sampling keeps a few percent of its draws, the compiled guide most of them.
    assert ess > 0.8 * 400
    prior_is = Importance(model, num_samples=400).run(PRIOR_MEAN, observations=DATA)
    assert prior_is.get_ESS().item() < 0.2 * 400


def test_the_guide_gets_each_observed_sites_drawn_value_by_name():
    seen = []

    def guide(prior_mean, observations=None):
        seen.append((prior_mean, dict(observations)))
        pyro.sample("z", dist.Normal(observations["x1"], 1.0))

    csis = CSIS(model, guide, engine.optim.Adam({"lr": 0.1}), validation_batch_size=5)
    csis.set_validation_batch(PRIOR_MEAN)
    assert len(csis.validation_batch) == 5
    csis.validation_loss(PRIOR_MEAN)
    assert len(seen) == 5
    for joint, (prior_mean, observations) in zip(csis.validation_batch, seen, strict=True):
        assert prior_mean is PRIOR_MEAN
        assert set(observations) == {"x1", "x2"}
        # The observed sites were drawn from the model (not its default 0) and are marked
        # observed in the joint draw, which the guide's latents are replayed from.
        for name in ("x1", "x2"):
            assert observations[name] is joint.nodes[name]["value"]
            assert observations[name] != 0 and joint.nodes[name]["is_observed"]
    seen.clear()
    csis.step(PRIOR_MEAN)
    assert len(seen) == csis.training_batch_size == 10
    draws = torch.stack([observations["x1"] for _, observations in seen])
    assert len(set(draws.tolist())) == 10  # a fresh data set for each member of the batch


def test_the_tutorials_code_runs_as_written():
    """The tutorial's own guide (a small MLP with ``pyro.module``), a few steps as its smoke
    test takes, then the marginal drawn from as its plot does."""

    class Guide(nn.Module):
        def __init__(self):
            super().__init__()
            self.neural_net = nn.Sequential(nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, 2))

        def forward(self, prior_mean, observations={"x1": 0, "x2": 0}):  # noqa: B006
            pyro.module("guide", self)
            x1 = observations["x1"]
            x2 = observations["x2"]
            v = torch.cat((x1.view(1, 1), x2.view(1, 1)), 1)
            v = self.neural_net(v)
            pyro.sample("z", dist.Normal(v[0, 0], v[0, 1].exp()))

    guide = Guide()
    optimiser = pyro.optim.Adam({"lr": 1e-3})
    csis = pyro.infer.CSIS(model, guide, optimiser, num_inference_samples=50)
    before = guide.neural_net[0].weight.detach().clone()
    for _ in range(2):
        csis.step(PRIOR_MEAN)
    assert not torch.equal(guide.neural_net[0].weight, before)
    assert any(name.startswith("guide$$$") for name in pyro.get_param_store())
    posterior = csis.run(PRIOR_MEAN, observations=DATA)
    marginal = pyro.infer.EmpiricalMarginal(posterior, "z")
    with torch.no_grad():
        samples = torch.stack([marginal() for _ in range(1000)])
    assert samples.shape == (1000,) and torch.isfinite(samples).all()
    assert engine.infer.csis.CSIS is CSIS


def test_only_the_guide_is_trained():
    def model_with_param(observations={"x": 0.0}):  # noqa: B006
        loc = pyro.param("prior_loc", torch.tensor(0.0))
        z = pyro.sample("z", dist.Normal(loc, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=observations["x"])

    def guide(observations=None):
        slope = pyro.param("slope", torch.tensor(0.0))
        pyro.sample("z", dist.Normal(slope * observations["x"], 1.0))

    csis = CSIS(model_with_param, guide, engine.optim.Adam({"lr": 0.1}))
    for _ in range(3):
        csis.step()
    assert pyro.param("prior_loc").item() == 0.0
    assert pyro.param("slope").item() != 0.0


def test_a_guide_without_an_observations_keyword_is_refused_at_once():
    def guide(prior_mean):
        pyro.sample("z", dist.Normal(prior_mean, 1.0))

    with pytest.raises(ArgumentError, match="observations") as caught:
        CSIS(model, guide, engine.optim.Adam({"lr": 0.1}))
    assert "guide(prior_mean)" in str(caught.value)
    assert "def guide(..., observations=None)" in str(caught.value)

    class Net(nn.Module):
        def forward(self, prior_mean):
            pyro.sample("z", dist.Normal(prior_mean, 1.0))

    with pytest.raises(ArgumentError, match=r"Net\(prior_mean\).*def forward"):
        CSIS(model, Net(), engine.optim.Adam({"lr": 0.1}))

    def guide_with_kwargs(prior_mean, **kwargs):
        pyro.sample("z", dist.Normal(kwargs["observations"]["x1"], 1.0))

    CSIS(model, guide_with_kwargs, engine.optim.Adam({"lr": 0.1})).step(PRIOR_MEAN)


def test_a_guide_reading_an_observation_the_model_does_not_make_is_told_which_it_makes():
    def guide(prior_mean, observations=None):
        pyro.sample("z", dist.Normal(observations["X1"], 1.0))

    csis = CSIS(model, guide, engine.optim.Adam({"lr": 0.1}))
    with pytest.raises(ObservationNameError) as caught:
        csis.step(PRIOR_MEAN)
    message = str(caught.value)
    assert "observations['X1']" in message and "['x1', 'x2']" in message
    assert "Did you mean 'x1'?" in message
    assert isinstance(caught.value, KeyError)  # what a plain dict raises, for except KeyError


def test_a_guide_sampling_an_observed_site_is_a_mismatch_naming_it():
    def guide(prior_mean, observations=None):
        pyro.sample("z", dist.Normal(prior_mean, 1.0))
        pyro.sample("x1", dist.Normal(prior_mean, 1.0))

    csis = CSIS(model, guide, engine.optim.Adam({"lr": 0.1}))
    with pytest.raises(
        ModelGuideMismatchError,
        match=r"CSIS: the guide samples 'x1' \(the model observes that site\)",
    ):
        csis.step(PRIOR_MEAN)


def test_a_nonfinite_step_names_csis_and_changes_nothing():
    def guide(prior_mean, observations=None):
        scale = pyro.param("scale", torch.tensor(1.0))
        pyro.sample("z", dist.Normal(observations["x1"], scale * 0.0))

    csis = CSIS(model, guide, engine.optim.Adam({"lr": 0.1}))
    pyro.enable_validation(False)  # let the zero scale through, to show up as a NaN loss
    with pytest.raises(NonFiniteError, match="CSIS step 1: the loss is") as caught:
        csis.step(PRIOR_MEAN)
    message = str(caught.value)
    assert "First non-finite value: guide site 'z'" in message  # found in a fresh joint draw
    assert "on_nonfinite" not in message  # an SVI option that CSIS does not have
    assert "scale" not in pyro.get_param_store()  # created in the failed step, so taken back


@pytest.mark.parametrize("kwargs", [{"num_inference_samples": 0}, {"training_batch_size": 2.5}])
def test_counts_must_be_whole_and_positive(kwargs):
    def guide(prior_mean, observations=None):
        pyro.sample("z", dist.Normal(prior_mean, 1.0))

    with pytest.raises(ArgumentError, match=f"CSIS: {next(iter(kwargs))}"):
        CSIS(model, guide, engine.optim.Adam({"lr": 0.1}), **kwargs)
