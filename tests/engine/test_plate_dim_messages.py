"""The messages of plate dim clashes: both plates with their sizes, and, when the plate already
at the dim is the one an ELBO entered for its vectorised particles, ``max_plate_nesting`` named
as the cause with the value that fixes it."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine.errors import PlateError
from engine.infer import Trace_ELBO
from engine.infer.elbo import PARTICLE_PLATE


def nested(data):
    with engine.plate("rows", 4, dim=-2):
        row = engine.sample("row", dist.Normal(0.0, 1.0))
        with engine.plate("cols", 3, dim=-1):
            engine.sample("y", dist.Normal(row, 1.0), obs=data)


def row_guide(data):
    with engine.plate("rows", 4, dim=-2):
        engine.sample("row", dist.Normal(0.5, 1.0))


def test_a_clash_names_both_plates_with_their_sizes_and_the_line():
    def clash():
        with engine.plate("rows", 4, dim=-1), engine.plate("cols", 3, dim=-1):
            engine.sample("y", dist.Normal(0.0, 1.0))

    with pytest.raises(PlateError) as raised:
        engine.poutine.trace(clash).get_trace()
    message = str(raised.value)
    assert message.startswith(
        "Plate 'cols' (size 3) asks for dim -1, which plate 'rows' (size 4) already holds."
    )
    assert "test_plate_dim_messages.py" in message


def test_a_subsampled_plate_is_named_with_the_size_of_its_dim():
    expected = r"'b' \(size 2\) asks for dim -1, which plate 'a' \(size 5\)"
    outer, inner = engine.plate("a", 5, dim=-1), engine.plate("b", 10, subsample_size=2, dim=-1)
    with pytest.raises(PlateError, match=expected), outer, inner:
        pass


def test_too_small_max_plate_nesting_is_blamed_not_the_models_plate():
    data = torch.zeros(4, 3)
    elbo = Trace_ELBO(num_particles=5, vectorize_particles=True, max_plate_nesting=1)
    with pytest.raises(PlateError) as raised:
        elbo.loss(nested, row_guide, data)
    message = str(raised.value)
    assert message.startswith(
        "max_plate_nesting=1 is too small: plate 'rows' (size 4) asks for dim -2, where the 5 "
        "vectorised draws go"
    )
    assert "Fix: max_plate_nesting=2 or more" in message
    assert PARTICLE_PLATE not in message
    # The fix it names works, and so does leaving the argument out.
    for fixed in (
        Trace_ELBO(num_particles=5, vectorize_particles=True, max_plate_nesting=2),
        Trace_ELBO(num_particles=5, vectorize_particles=True),
    ):
        assert torch.isfinite(torch.tensor(fixed.loss(nested, row_guide, data)))


def test_the_dims_are_given_back_after_a_clash():
    with pytest.raises(PlateError), engine.plate("a", 5, dim=-1), engine.plate("b", 3, dim=-1):
        pass
    with engine.plate("c", 2, dim=-1) as indices:
        assert indices.shape == (2,)
