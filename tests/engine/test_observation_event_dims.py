"""An observed site whose plate's data dim was also made an event dim (``.to_event`` on a
distribution the plate batched) would score the whole value once per plate entry; it is refused
with a message naming the site, the plate and the shapes. Values that broadcast along the
inference's own plates (vectorised particles) and proper event dims inside plates still work."""

import math

import pytest
import torch

import engine
import engine.distributions as dist
from engine import poutine
from engine.errors import ShapeError
from engine.infer import Trace_ELBO

DATA = torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4])


def normal_log_density(x: torch.Tensor, loc: float, scale: float) -> float:
    return float((-0.5 * ((x - loc) / scale) ** 2 - math.log(scale * math.sqrt(2 * math.pi))).sum())


def test_the_plate_dim_made_an_event_dim_is_refused_with_site_plate_and_shapes():
    def doubled():
        with engine.plate("readings", 5):
            engine.sample("y", dist.Normal(torch.zeros(5), 1.0).to_event(1), obs=DATA)

    with pytest.raises(ShapeError) as raised:
        poutine.trace(doubled).get_trace()
    message = str(raised.value)
    assert message.startswith(
        "Observed site 'y' (plate 'readings' (size 5, dim -1)): the observed value has shape "
        "(5,), the Normal.to_event(1) has batch shape (5,) and event shape (5,)."
    )
    assert "the data is counted 5 times" in message
    assert "Fix: drop the `.to_event(...)`" in message


def test_two_plates_whose_dims_both_went_into_the_event_are_refused():
    table = torch.zeros(2, 3)

    def doubled():
        with engine.plate("rows", 2, dim=-2), engine.plate("cols", 3, dim=-1):
            engine.sample("y", dist.Normal(torch.zeros(2, 3), 1.0).to_event(2), obs=table)

    with pytest.raises(ShapeError, match=r"plate 'rows'.*plate 'cols'.*counted [23] times"):
        poutine.trace(doubled).get_trace()


def test_the_fix_scores_each_reading_once():
    def fixed():
        with engine.plate("readings", 5):
            engine.sample("y", dist.Normal(0.0, 1.0), obs=DATA)

    trace = poutine.trace(fixed).get_trace()
    assert trace.log_prob_sum().item() == pytest.approx(normal_log_density(DATA, 0.0, 1.0))


def test_event_dims_that_no_plate_claims_are_fine_inside_a_plate():
    pairs = torch.zeros(5, 2)

    def paired():
        with engine.plate("readings", 5):
            engine.sample("y", dist.Normal(torch.zeros(2), 1.0).to_event(1), obs=pairs)

    trace = poutine.trace(paired).get_trace()
    assert trace.nodes["y"]["fn"].batch_shape == (5,)
    assert trace.log_prob_sum().item() == pytest.approx(normal_log_density(pairs, 0.0, 1.0))


def test_a_joint_observation_under_vectorised_particles_of_the_same_size_is_fine():
    # Five particles and a five-vector observed whole: the particle plate broadcasts the value,
    # as it should, although its size matches the event's.
    def model():
        loc = engine.sample("loc", dist.Normal(0.0, 1.0))
        joint = dist.Normal(loc.unsqueeze(-1) * torch.ones(5), 1.0).to_event(1)
        engine.sample("y", joint, obs=DATA)

    def guide():
        engine.sample("loc", dist.Normal(0.0, 1.0))

    elbo = Trace_ELBO(num_particles=5, vectorize_particles=True)
    assert math.isfinite(elbo.loss(model, guide))


def test_a_deterministic_site_inside_a_plate_is_recorded_not_refused():
    # deterministic's Delta holds the whole value as its event and is never scored, so the
    # plate's dim in its event counts nothing twice.
    def non_centred():
        with engine.plate("schools", 5):
            offset = engine.sample("offset", dist.Normal(0.0, 1.0))
            engine.deterministic("theta", 2.0 + 3.0 * offset)
            engine.sample("y", dist.Normal(2.0 + 3.0 * offset, 1.0), obs=DATA)

    traced = poutine.trace(non_centred).get_trace()
    assert torch.equal(traced.nodes["theta"]["value"], 2.0 + 3.0 * traced.nodes["offset"]["value"])
    assert traced.log_prob_sum() == pytest.approx(
        normal_log_density(traced.nodes["offset"]["value"], 0.0, 1.0)
        + normal_log_density(DATA - traced.nodes["theta"]["value"], 0.0, 1.0),
        rel=1e-5,
    )


def test_a_scalar_observed_for_every_element_of_a_vector_event_is_scored_per_element():
    # Torch (and Pyro) broadcast a value smaller than the event up to it: each of the three
    # elements is observed equal to 0.5. A value that does not broadcast is still refused.
    def model(y):
        engine.sample("y", dist.Normal(torch.tensor([0.0, 1.0, -1.0]), 1.0).to_event(1), obs=y)

    trace = poutine.trace(model).get_trace(torch.tensor(0.5))
    expected = sum(normal_log_density(torch.tensor(0.5), m, 1.0) for m in (0.0, 1.0, -1.0))
    assert trace.log_prob_sum().item() == pytest.approx(expected)
    assert trace.nodes["y"]["log_prob"].shape == ()
    with pytest.raises(ShapeError, match=r"broadcast to\) the event shape"):
        poutine.trace(model).get_trace(torch.zeros(2))


def test_a_scalar_against_a_plate_dim_made_an_event_dim_is_still_refused():
    def doubled():
        with engine.plate("readings", 5):
            engine.sample("y", dist.Normal(torch.zeros(5), 1.0).to_event(1), obs=torch.tensor(0.0))

    with pytest.raises(ShapeError, match="counted 5 times"):
        poutine.trace(doubled).get_trace()
