"""config_enumerate as Pyro documents it: bare and parametrised decorator, positional use, the
three strategies, expand, and clear errors for what the engine refuses."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import ArgumentError, EnumerationError
from engine.infer import MCMC, NUTS, TraceEnum_ELBO, config_enumerate, infer_discrete

OBSERVED = torch.tensor([0.4, -0.3, 1.9, 2.2])
PRIOR = torch.tensor([0.25, 0.45, 0.3])
LOCS = torch.tensor([-1.0, 0.5, 2.0])


def mixture():
    with engine.plate("points", 4):
        k = engine.sample("k", dist.Categorical(PRIOR))
        engine.sample("x", dist.Normal(LOCS[k], 0.8), obs=OBSERVED)
    engine.sample("noise", dist.Normal(0.0, 1.0))


def infer_marks(fn):
    tr = poutine.trace(fn).get_trace()
    return {name: site["infer"] for name, site in tr.nodes.items() if site["type"] == "sample"}


def test_bare_decorator_marks_only_discrete_latent_sites():
    marks = infer_marks(config_enumerate(mixture))
    assert marks["k"] == {"enumerate": "parallel", "expand": False}
    assert marks["noise"] == {} and marks["x"] == {}


def test_decorator_with_arguments_and_positional_strategy():
    @config_enumerate(default="sequential", expand=True)
    def decorated():
        return mixture()

    assert infer_marks(decorated)["k"] == {"enumerate": "sequential", "expand": True}
    positional = config_enumerate(mixture, "sequential")
    assert infer_marks(positional)["k"] == {"enumerate": "sequential", "expand": False}


def test_default_none_marks_sites_as_not_enumerated():
    marked = config_enumerate(mixture, default=None)
    assert infer_marks(marked)["k"] == {"enumerate": None, "expand": False}
    # poutine.enum then leaves the site to be drawn: one value per point, no enumeration dim.
    tr = poutine.trace(poutine.enum(marked, first_available_dim=-2)).get_trace()
    assert tr.nodes["k"]["value"].shape == (4,)


def test_a_site_keeps_what_it_says_itself():
    def model():
        engine.sample("a", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})
        engine.sample("b", dist.Bernoulli(0.5), infer={"expand": True})

    marks = infer_marks(config_enumerate(model, expand=False))
    assert marks["a"] == {"enumerate": "sequential", "expand": False}
    assert marks["b"] == {"enumerate": "parallel", "expand": True}


@pytest.mark.parametrize("expand, shape", [(False, (3, 1)), (True, (3, 4))])
def test_expand_gives_values_expanded_over_the_plate(expand, shape):
    enumerated = poutine.enum(config_enumerate(mixture, expand=expand), first_available_dim=-2)
    assert poutine.trace(enumerated).get_trace().nodes["k"]["value"].shape == shape


def test_expanded_and_broadcast_enumeration_give_the_same_loss():
    def guide():
        engine.sample("noise", dist.Normal(0.0, 1.0))

    losses = []
    for expand in (False, True):
        engine.set_rng_seed(3)
        model = config_enumerate(mixture, expand=expand)
        losses.append(TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide))
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"default": "flat"}, "default='flat'"),
        ({"expand": "yes"}, "expand must be True or False"),
        ({"tmc": "full"}, "tmc='full'"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, fragment):
    with pytest.raises(ArgumentError, match=fragment):
        config_enumerate(mixture, **kwargs)


def test_a_strategy_given_as_the_first_argument_says_how_to_write_it():
    with pytest.raises(ArgumentError, match=r"config_enumerate\(default='sequential'\)"):
        config_enumerate("sequential")


def test_num_samples_marks_every_latent_site_discrete_or_not():
    marks = infer_marks(config_enumerate(mixture, num_samples=10, tmc="mixture"))
    sampled = {"enumerate": "parallel", "num_samples": 10, "expand": False, "tmc": "mixture"}
    assert marks["k"] == sampled and marks["noise"] == sampled
    assert marks["x"] == {}


def test_num_samples_has_no_sequential_form():
    with pytest.raises(EnumerationError, match=r"sequential.*default='parallel'"):
        config_enumerate(mixture, "sequential", num_samples=10)


@pytest.mark.parametrize("num_samples", [0, -3, 2.5, True])
def test_num_samples_must_be_a_positive_int(num_samples):
    with pytest.raises(ArgumentError, match="num_samples"):
        config_enumerate(mixture, num_samples=num_samples)


def test_exact_enumeration_refuses_sampled_sites_naming_tmc():
    def model():
        engine.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel", "num_samples": 4})

    with pytest.raises(EnumerationError, match=r"'z'.*num_samples.*TraceTMC_ELBO"):
        TraceEnum_ELBO(max_plate_nesting=0).loss(model, lambda: None)
    with pytest.raises(EnumerationError, match=r"'z'.*num_samples.*TraceTMC_ELBO"):
        infer_discrete(model, first_available_dim=-1)()

    def regression():
        m = engine.sample("m", dist.Normal(0.0, 1.0))
        model()
        engine.sample("x", dist.Normal(m, 1.0), obs=torch.tensor(0.3))

    with pytest.raises(EnumerationError, match=r"MCMC.*'z'.*num_samples.*TraceTMC_ELBO"):
        MCMC(NUTS(regression), num_samples=2, warmup_steps=2).run()
