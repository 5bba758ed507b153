"""The param store (engine.params) and the constraint codec it saves with."""

from __future__ import annotations

import copy
import io
import os

import pytest
import torch
from torch.distributions import constraints, transform_to, transforms

import engine.params as params_module
from engine.constraint_codec import (
    _SINGLETONS,
    constraints_equal,
    decode_constraint,
    describe_constraint,
    encode_constraint,
    register_constraint,
)
from engine.errors import MissingParamError, ParamError, StateFileContentError, SupportError
from engine.params import ParamStoreDict, clear_param_store, get_param_store


@pytest.fixture
def store() -> ParamStoreDict:
    return ParamStoreDict()


def snapshot(store: ParamStoreDict) -> dict:
    """Everything observable about a store, to check a failing call changed nothing."""
    state = store.get_state()
    return {
        "params": {n: (t, t.detach().clone()) for n, t in state["params"].items()},
        "constraints": dict(state["constraints"]),
        "event_dims": dict(state["event_dims"]),
    }


def assert_unchanged(store: ParamStoreDict, before: dict) -> None:
    state = store.get_state()
    assert state["params"].keys() == before["params"].keys()
    for name, (tensor, values) in before["params"].items():
        assert state["params"][name] is tensor
        assert torch.equal(tensor.detach(), values)
    assert state["constraints"] == before["constraints"]
    assert state["event_dims"] == before["event_dims"]


# --- get_param ------------------------------------------------------------------------------


def test_get_param_creates_from_tensor_number_and_callable(store):
    a = store.get_param("a", torch.tensor([1.0, 2.0]))
    b = store.get_param("b", 3)
    c = store.get_param("c", lambda: torch.full((2, 2), 0.5), constraints.unit_interval)
    assert torch.equal(a.detach(), torch.tensor([1.0, 2.0]))
    assert b.dtype == torch.get_default_dtype() and b.item() == 3.0
    assert torch.allclose(c.detach(), torch.full((2, 2), 0.5))
    assert store.get_state()["constraints"] == {
        "a": constraints.real,
        "b": constraints.real,
        "c": constraints.unit_interval,
    }


def test_lazy_init_is_called_once_and_only_for_a_new_param(store):
    calls = []

    def init():
        calls.append(1)
        return torch.ones(3)

    first = store.get_param("x", init, constraints.positive)
    for _ in range(3):
        again = store.get_param("x", init, constraints.positive)
    assert len(calls) == 1
    assert torch.equal(first.detach(), again.detach())


def test_existing_param_ignores_init_and_returns_current_value(store):
    store.get_param("x", torch.zeros(2))
    with torch.no_grad():
        store["x"].unconstrained().add_(5.0)
    with pytest.warns(UserWarning, match=r"'x' already exists with shape \(2,\).*\(7,\)"):
        value = store.get_param("x", torch.ones(7))
    assert value.shape == (2,)
    assert torch.equal(value.detach(), torch.full((2,), 5.0))


def test_constraint_none_on_an_existing_param_is_not_checked(store):
    store.get_param("s", torch.ones(2), constraints.positive)
    assert torch.allclose(store.get_param("s").detach(), torch.ones(2))
    assert store.get_state()["constraints"]["s"] is constraints.positive


def test_equal_constraint_instances_are_accepted(store):
    store.get_param("p", torch.full((2,), 0.5), constraints.interval(0.0, 1.0))
    store.get_param("p", None, constraints.interval(0.0, 1.0))
    store.get_param("q", torch.ones(1), constraints.interval(torch.tensor(0.0), 2.0))
    store.get_param("q", None, constraints.interval(0.0, torch.tensor(2.0)))


def test_redeclaring_with_another_constraint_raises_and_changes_nothing(store):
    store.get_param("scale", torch.ones(3), constraints.positive)
    before = snapshot(store)
    with pytest.raises(ParamError) as info:
        store.get_param("scale", torch.ones(3), constraints.greater_than(1.0))
    message = str(info.value)
    assert "'scale'" in message
    assert "constraints.positive" in message
    assert "constraints.greater_than(1.0)" in message
    assert "(3,)" in message
    assert "clear_param_store" in message
    assert_unchanged(store, before)


def test_missing_param_without_init_is_a_key_error_naming_it(store):
    store.get_param("loc_q", torch.zeros(1))
    before = snapshot(store)
    with pytest.raises(MissingParamError) as info:
        store.get_param("loc_z")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ParamError)
    message = str(info.value)
    assert "'loc_z'" in message and "no initial value" in message
    assert "Did you mean 'loc_q'" in message
    assert_unchanged(store, before)


def test_missing_param_in_an_empty_store_says_so(store):
    with pytest.raises(KeyError, match="empty"):
        store.get_param("x")


def test_initial_value_outside_support_raises_support_error(store):
    store.get_param("other", torch.zeros(1))
    before = snapshot(store)
    with pytest.raises(SupportError) as info:
        store.get_param("scale", torch.tensor([1.0, -1.0, -2.5]), constraints.positive)
    message = str(info.value)
    assert "'scale'" in message
    assert "2 of 3 entries" in message
    assert "-1, -2.5" in message
    assert "constraints.positive" in message
    assert "(3,)" in message
    assert isinstance(info.value, ValueError)
    assert_unchanged(store, before)


def test_unnormalised_weights_for_a_simplex_start_at_their_proportions(store, recwarn):
    # Pyro accepts this silently (its enumeration tutorial and its TMC tests do it): the
    # transform divides each row by its sum, which is what weights mean.
    unnormalised = torch.tensor([[0.5, 0.5], [0.9, 0.9], [0.2, 0.6]])
    value = store.get_param("probs", unnormalised, constraints.simplex)
    assert torch.allclose(value, torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.25, 0.75]]))
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_an_init_outside_the_support_that_the_transform_maps_is_taken_with_a_warning(store):
    # A lower-Cholesky factor given with entries above the diagonal: the transform drops them,
    # which the user may not mean, so the warning says where the param starts.
    full = torch.tensor([[[1.0, 0.5], [0.3, 2.0]], [[1.0, 0.0], [0.3, 2.0]]])
    with pytest.warns(UserWarning) as caught:
        value = store.get_param("scale_tril", full, constraints.lower_cholesky)
    message = str(caught[0].message)
    assert "param 'scale_tril'" in message and "1 of 2 events (each of shape (2, 2))" in message
    assert "mapped into the support" in message
    assert torch.allclose(value, torch.tensor([[1.0, 0.0], [0.3, 2.0]]).expand(2, 2, 2))


def test_an_init_the_transform_cannot_map_is_refused_counting_events(store):
    bad = torch.tensor([[0.5, 0.5], [-1.0, 2.0]])
    with pytest.raises(SupportError) as info:
        store.get_param("probs", bad, constraints.simplex)
    message = str(info.value)
    assert "1 of 2 events (each of shape (2,))" in message and "cannot map" in message
    assert "probs" not in store


def test_nan_initial_value_is_rejected_even_for_real(store):
    with pytest.raises(SupportError, match="NaN"):
        store.get_param("x", torch.tensor([0.0, float("nan")]))


def test_initial_value_on_the_boundary_or_infinite_is_rejected(store):
    with pytest.raises(SupportError, match="boundary") as info:
        store.get_param("p", torch.tensor([1.0, 0.0, 0.0]), constraints.simplex)
    assert "2 of 3 entries" in str(info.value)
    with pytest.raises(SupportError, match=r"'x'.*infinite"):
        store.get_param("x", torch.tensor([0.0, float("inf")]))
    assert len(store) == 0


def test_failing_lazy_init_leaves_the_store_unchanged(store):
    store.get_param("a", torch.zeros(1))
    before = snapshot(store)

    def init():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.get_param("b", init)
    assert_unchanged(store, before)


def test_integer_init_tensor_and_bad_types_are_rejected(store):
    with pytest.raises(ParamError, match=r"'n'.*torch\.int64.*floating point"):
        store.get_param("n", torch.tensor([1, 2]))
    with pytest.raises(ParamError, match="got a list"):
        store.get_param("l", [1.0, 2.0])
    with pytest.raises(ParamError, match=r"must be a torch.distributions constraint"):
        store.get_param("c", torch.ones(1), "positive")
    with pytest.raises(ParamError, match="event_dim"):
        store.get_param("e", torch.ones(1), event_dim=-1)
    assert len(store) == 0


def test_discrete_constraint_has_no_transform(store):
    with pytest.raises(ParamError, match=r"constraints.integer_interval\(0, 3\).*no transform"):
        store.get_param("k", torch.ones(1), constraints.integer_interval(0, 3))


def test_value_with_too_few_dims_for_the_constraint(store):
    with pytest.raises(ParamError, match=r"last 2 dims.*shape \(3,\)"):
        store.get_param("L", torch.ones(3), constraints.lower_cholesky)


def test_event_dim_is_kept_as_metadata(store):
    store.get_param("w", torch.zeros(4, 2), event_dim=1)
    store.get_param("v", torch.zeros(1))
    assert store.get_event_dim("w") == 1
    assert store.get_event_dim("v") is None
    with pytest.raises(KeyError):
        store.get_event_dim("missing")


# --- values, leaves and gradients -----------------------------------------------------------


def test_gradients_flow_from_the_constrained_value_to_the_leaf(store):
    value = store.get_param("s", torch.tensor([1.0, 2.0]), constraints.positive)
    leaf = value.unconstrained()
    assert leaf.is_leaf and leaf.requires_grad
    assert not value.is_leaf
    value.sum().backward()
    assert torch.allclose(leaf.grad, value.detach())  # d exp(u) / du = exp(u)
    assert dict(store.named_parameters()) == {"s": leaf}


def test_real_param_value_is_the_leaf_itself(store):
    value = store.get_param("x", torch.ones(2))
    assert value.is_leaf and value.unconstrained() is value


def test_init_tensor_is_copied_but_an_nn_parameter_is_kept(store):
    init = torch.zeros(2)
    leaf = store.get_param("x", init).unconstrained()
    assert leaf is not init and not init.requires_grad
    with torch.no_grad():
        leaf.add_(1.0)
    assert torch.equal(init, torch.zeros(2))

    weight = torch.nn.Parameter(torch.ones(2))
    assert store.get_param("module$$$weight", weight) is weight


def test_transform_is_cached_per_param(store, monkeypatch):
    store.get_param("s", torch.ones(2), constraints.positive)
    calls = []
    real_transform_to = params_module.transform_to
    monkeypatch.setattr(
        params_module, "transform_to", lambda c: calls.append(c) or real_transform_to(c)
    )
    for _ in range(3):
        store.get_param("s", torch.ones(2), constraints.positive)
        store["s"]
    assert calls == []


def test_returned_values_pickle_and_deepcopy(store):
    value = store.get_param("s", torch.ones(2), constraints.positive)
    real = store.get_param("x", torch.ones(2))
    for tensor in (value, real):
        buffer = io.BytesIO()
        torch.save(tensor, buffer)
        buffer.seek(0)
        assert torch.equal(torch.load(buffer, weights_only=True).detach(), tensor.detach())
    assert copy.deepcopy(real).unconstrained() is real


def test_values_follow_the_device_of_their_init(store):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    value = store.get_param("s", torch.ones(2, device="cuda"), constraints.positive)
    assert value.device.type == "cuda" and value.unconstrained().device.type == "cuda"


# --- the mapping API ------------------------------------------------------------------------


def test_mapping_methods(store):
    store.get_param("a", torch.zeros(2))
    store.get_param("b", torch.ones(3), constraints.positive)
    assert list(store.keys()) == ["a", "b"] == list(store) == store.get_all_param_names()
    assert len(store) == 2 and "a" in store and "c" not in store
    values = list(store.values())
    assert [v.shape for v in values] == [(2,), (3,)]
    assert torch.allclose(values[1].detach(), torch.ones(3))
    items = dict(store.items())
    assert items.keys() == {"a", "b"}
    assert all(v.unconstrained() is store[n].unconstrained() for n, v in items.items())
    del store["a"]
    assert list(store) == ["b"]
    with pytest.raises(KeyError, match="'a'"):
        del store["a"]
    with pytest.raises(KeyError, match="'a'"):
        store["a"]
    store.clear()
    assert len(store) == 0 and list(store.named_parameters()) == []


def test_setitem_keeps_the_constraint_and_makes_a_new_leaf(store):
    store.get_param("s", torch.ones(2), constraints.positive, event_dim=1)
    old_leaf = store["s"].unconstrained()
    store["s"] = torch.full((2,), 3.0)
    new = store["s"]
    assert torch.allclose(new.detach(), torch.full((2,), 3.0))
    assert new.unconstrained() is not old_leaf and new.unconstrained().requires_grad
    assert store.get_state()["constraints"]["s"] is constraints.positive
    assert store.get_event_dim("s") == 1
    assert store.param_name(old_leaf) is None

    store["new"] = -2.0
    assert store.get_state()["constraints"]["new"] is constraints.real

    before = snapshot(store)
    with pytest.raises(SupportError, match="'s'"):
        store["s"] = torch.tensor([1.0, -1.0])
    assert_unchanged(store, before)


def test_setdefault(store):
    calls = []
    value = store.setdefault("s", lambda: calls.append(1) or torch.ones(1), constraints.positive)
    again = store.setdefault("s", lambda: calls.append(1) or torch.zeros(1))
    assert calls == [1]
    assert torch.equal(value.detach(), again.detach())
    assert store.get_state()["constraints"]["s"] is constraints.positive
    assert store.setdefault("r", torch.zeros(2)).shape == (2,)


def test_replace_param(store):
    old = store.get_param("s", torch.ones(1), constraints.positive)
    store.replace_param("s", torch.full((1,), 2.0), old)
    assert torch.allclose(store["s"].detach(), torch.full((1,), 2.0))
    before = snapshot(store)
    with pytest.raises(ParamError, match="old_param is not the value"):
        store.replace_param("s", torch.ones(1), old)
    assert_unchanged(store, before)
    current = store["s"]
    store.replace_param("s", torch.full((1,), 4.0), current.unconstrained())
    assert torch.allclose(store["s"].detach(), torch.full((1,), 4.0))
    with pytest.raises(KeyError):
        store.replace_param("missing", torch.ones(1), current)


def test_match_is_anchored_at_the_start(store):
    for name in ["guide.loc", "guide.scale", "model.guide", "w"]:
        store.get_param(name, torch.zeros(1))
    assert sorted(store.match("guide")) == ["guide.loc", "guide.scale"]
    assert list(store.match(r"guide\.loc$")) == ["guide.loc"]
    assert sorted(store.match(".*guide")) == ["guide.loc", "guide.scale", "model.guide"]
    assert store.match("guide")["guide.loc"].requires_grad


def test_param_name_is_the_reverse_lookup_of_leaves(store):
    value = store.get_param("s", torch.ones(1), constraints.positive)
    leaf = value.unconstrained()
    assert store.param_name(leaf) == "s"
    assert store.param_name(value) is None
    assert store.param_name(torch.zeros(1)) is None
    del store["s"]
    assert store.param_name(leaf) is None


def test_repr_lists_names_shapes_and_constraints(store):
    assert "empty" in repr(store)
    store.get_param("scale", torch.ones(3), constraints.positive)
    assert (
        "scale" in repr(store) and "(3,)" in repr(store) and "constraints.positive" in repr(store)
    )


def test_global_store_and_clear_param_store():
    store = get_param_store()
    assert store is get_param_store()
    store.get_param("global_test_param", torch.zeros(1))
    clear_param_store()
    assert "global_test_param" not in get_param_store() and len(get_param_store()) == 0


# --- state ----------------------------------------------------------------------------------


def test_get_state_and_set_state_merge_and_keep_identity(store):
    store.get_param("a", torch.zeros(1))
    store.get_param("s", torch.ones(2), constraints.positive, event_dim=1)
    other = ParamStoreDict()
    other.get_param("a", torch.full((1,), 9.0))
    other.get_param("kept", torch.zeros(1))
    state = store.get_state()
    other.set_state(state)
    assert list(other) == ["a", "kept", "s"]
    assert other["a"] is state["params"]["a"]
    assert other["s"].unconstrained() is state["params"]["s"]
    assert other.get_event_dim("s") == 1
    assert other.param_name(state["params"]["s"]) == "s"


def test_set_state_accepts_pyro_states_without_event_dims(store):
    leaf = torch.zeros(2)
    store.set_state({"params": {"x": leaf}, "constraints": {"x": constraints.real}})
    assert store["x"] is leaf and leaf.requires_grad and store.get_event_dim("x") is None


def test_malformed_state_is_rejected_without_changes(store):
    store.get_param("a", torch.zeros(1))
    before = snapshot(store)
    with pytest.raises(ParamError, match="param store state"):
        store.set_state({"params": {}})
    with pytest.raises(ParamError, match=r"\['b'\]"):
        store.set_state({"params": {"b": torch.zeros(1)}, "constraints": {}})
    good, bad = torch.zeros(1), torch.zeros(1)
    with pytest.raises(ParamError, match=r"'bad'.*no transform"):
        store.set_state(
            {
                "params": {"good": good, "bad": bad},
                "constraints": {"good": constraints.real, "bad": constraints.boolean},
            }
        )
    assert_unchanged(store, before)
    assert not good.requires_grad


# --- save and load --------------------------------------------------------------------------

ROUND_TRIP_PARAMS = {
    "interval_tensor_bounds": (
        torch.tensor([0.5, 1.5]),
        constraints.interval(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0])),
    ),
    "greater_than": (torch.tensor([3.0]), constraints.greater_than(2.0)),
    "simplex": (torch.tensor([0.2, 0.3, 0.5]), constraints.simplex),
    "lower_cholesky": (torch.tensor([[2.0, 0.0], [0.5, 1.0]]), constraints.lower_cholesky),
    "independent": (torch.zeros(2, 3), constraints.independent(constraints.real, 1)),
    "positive": (torch.tensor([0.1, 10.0]), constraints.positive),
    "corr_cholesky": (
        torch.linalg.cholesky(torch.tensor([[1.0, 0.3], [0.3, 1.0]])),
        constraints.corr_cholesky,
    ),
    "real": (torch.tensor([-1.0, 1.0]), constraints.real),
}


def filled_store() -> ParamStoreDict:
    store = ParamStoreDict()
    for name, (init, constraint) in ROUND_TRIP_PARAMS.items():
        store.get_param(name, init, constraint, event_dim=constraint.event_dim)
    return store


def test_save_load_round_trip(tmp_path):
    store = filled_store()
    path = tmp_path / "params.pt"
    store.save(path)
    loaded = ParamStoreDict()
    loaded.load(path)
    assert list(loaded) == list(ROUND_TRIP_PARAMS)
    for name, (init, constraint) in ROUND_TRIP_PARAMS.items():
        value = loaded[name]
        assert torch.allclose(value.detach(), store[name].detach(), atol=1e-6), name
        assert torch.allclose(value.detach(), init, atol=1e-5), name
        assert constraints_equal(loaded.get_state()["constraints"][name], constraint), name
        leaf = value.unconstrained()
        assert leaf.is_leaf and leaf.requires_grad, name
        assert loaded.get_event_dim(name) == constraint.event_dim
    assert loaded.get_state()["constraints"]["simplex"] is constraints.simplex
    # A loaded param trains: gradients reach its leaf.
    loaded["positive"].sum().backward()
    assert loaded["positive"].unconstrained().grad is not None


def test_saved_file_is_plain_data_for_weights_only_loading(tmp_path):
    path = tmp_path / "params.pt"
    filled_store().save(path)
    payload = torch.load(path, weights_only=True)
    assert payload["constraints"]["positive"] == {"singleton": "positive"}
    assert payload["constraints"]["greater_than"] == {
        "class": "greater_than",
        "args": {"lower_bound": 2.0},
    }
    assert all(type(t) is torch.Tensor for t in payload["params"].values())


def test_load_merges_and_map_location(tmp_path):
    saved = ParamStoreDict()
    saved.get_param("a", torch.full((1,), 1.0))
    path = tmp_path / "params.pt"
    saved.save(str(path))
    store = ParamStoreDict()
    store.get_param("a", torch.full((1,), 5.0), constraints.positive)
    store.get_param("b", torch.zeros(1))
    store.load(path, map_location="cpu")
    assert list(store) == ["a", "b"]
    assert store["a"].item() == 1.0 and store.get_state()["constraints"]["a"] is constraints.real
    assert store["a"].device == torch.device("cpu")


def test_save_is_atomic_when_serialisation_fails(tmp_path, monkeypatch):
    path = tmp_path / "params.pt"
    original = ParamStoreDict()
    original.get_param("a", torch.ones(2))
    original.save(path)
    before = path.read_bytes()

    def failing_save(obj, f):
        f.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(params_module.torch, "save", failing_save)
    changed = ParamStoreDict()
    changed.get_param("b", torch.zeros(5))
    with pytest.raises(RuntimeError, match="disk full"):
        changed.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["params.pt"]
    monkeypatch.undo()
    reloaded = ParamStoreDict()
    reloaded.load(path)
    assert list(reloaded) == ["a"]


def test_save_of_an_unknown_constraint_names_it_and_writes_nothing(tmp_path):
    class Odd(constraints.Constraint):
        def check(self, value):
            return value == value

    transform_to.register(Odd, lambda c: transforms.identity_transform)
    store = ParamStoreDict()
    store.get_param("x", torch.zeros(1), Odd())
    path = tmp_path / "params.pt"
    with pytest.raises(ParamError, match=r"cannot save param 'x'.*Odd.*register_constraint"):
        store.save(path)
    assert os.listdir(tmp_path) == []


def test_load_rejects_files_it_did_not_write(tmp_path):
    pickled = tmp_path / "pickled.pt"
    torch.save({"params": {}, "constraints": {"x": constraints.positive}}, pickled)
    with pytest.raises(StateFileContentError, match=r"as a param store: it holds objects other"):
        ParamStoreDict().load(pickled)
    plain = tmp_path / "plain.pt"
    torch.save({"params": {}}, plain)
    with pytest.raises(StateFileContentError, match="format marker"):
        ParamStoreDict().load(plain)


# --- the constraint codec -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in dir(constraints)
        if not n.startswith("_") and isinstance(getattr(constraints, n), constraints.Constraint)
    ],
)
def test_every_torch_constraint_object_round_trips_to_itself(name):
    c = getattr(constraints, name)
    assert decode_constraint(encode_constraint(c)) is c


@pytest.mark.parametrize(
    "c",
    [
        constraints.interval(-1.0, 2.0),
        constraints.interval(torch.zeros(2), torch.ones(2)),
        constraints.half_open_interval(0.0, 1.0),
        constraints.greater_than(1.0),
        constraints.greater_than_eq(torch.tensor(0.5)),
        constraints.less_than(3.0),
        constraints.integer_interval(0, 5),
        constraints.independent(constraints.independent(constraints.positive, 1), 2),
        constraints.multinomial(10),
        constraints.cat([constraints.real, constraints.positive], dim=-1, lengths=[2, 3]),
        constraints.stack([constraints.real, constraints.unit_interval], dim=0),
    ],
    ids=lambda c: type(c).__name__,
)
def test_parameterised_constraints_round_trip(c):
    decoded = decode_constraint(encode_constraint(c))
    assert type(decoded) is type(c)
    assert constraints_equal(decoded, c)


def test_fresh_instance_of_a_named_constraint_encodes_by_name():
    assert encode_constraint(type(constraints.simplex)()) == {"singleton": "simplex"}


def test_decoding_rejects_unknown_and_malformed_data():
    with pytest.raises(ParamError, match="unknown constraint 'nope'"):
        decode_constraint({"singleton": "nope"})
    with pytest.raises(ParamError, match=r"unknown constraint class 'os.system'"):
        decode_constraint({"class": "os.system", "args": {}})
    with pytest.raises(ParamError, match="arguments"):
        decode_constraint({"class": "interval", "args": {"lower_bound": 0.0}})
    with pytest.raises(ParamError, match="holds a str"):
        decode_constraint({"class": "greater_than", "args": {"lower_bound": "0"}})
    with pytest.raises(ParamError, match="malformed"):
        decode_constraint(["positive"])


def test_register_constraint():
    class Even(constraints.Constraint):
        def check(self, value):
            return value % 2 == 0

    even = Even()
    with pytest.raises(ParamError, match="Even"):
        encode_constraint(even)
    register_constraint("test_params_even", even)
    register_constraint("test_params_even", even)
    try:
        assert decode_constraint(encode_constraint(even)) is even
        assert describe_constraint(even) == "constraints.test_params_even"
        with pytest.raises(ValueError, match="already registered"):
            register_constraint("test_params_even", Even())
    finally:
        _SINGLETONS.pop("test_params_even")


def test_constraints_equal():
    assert constraints_equal(constraints.interval(0, 1), constraints.interval(0, 1))
    assert constraints_equal(constraints.interval(0.0, 1.0), constraints.unit_interval)
    assert constraints_equal(constraints.greater_than(0.0), constraints.positive)
    assert not constraints_equal(constraints.positive, constraints.greater_than(1.0))
    assert not constraints_equal(constraints.positive, constraints.nonnegative)
    assert not constraints_equal(constraints.interval(0, 1), constraints.half_open_interval(0, 1))
    assert constraints_equal(
        constraints.independent(constraints.positive, 1),
        constraints.independent(constraints.greater_than(0.0), 1),
    )
    assert not constraints_equal(
        constraints.independent(constraints.positive, 1),
        constraints.independent(constraints.positive, 2),
    )
    assert constraints_equal(
        constraints.interval(torch.zeros(2), 1.0), constraints.interval(torch.zeros(2), 1)
    )
    assert not constraints_equal(
        constraints.interval(torch.zeros(2), 1.0), constraints.interval(torch.zeros(3), 1.0)
    )
    assert not constraints_equal(
        constraints.cat([constraints.real], lengths=[2]),
        constraints.cat([constraints.real, constraints.real], lengths=[1, 1]),
    )
