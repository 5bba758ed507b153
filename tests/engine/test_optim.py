"""engine.optim: fused optimizer wrappers, ClippedAdam, LR schedulers, and their saved state."""

from __future__ import annotations

import functools
import gc
import math
import os
import weakref

import pytest
import torch

import engine
import engine.optim as optim
from engine.errors import StateFileContentError
from engine.optim.clipped_adam import ClippedAdam as TorchClippedAdam
from engine.optim.implementation import fastest_flags
from engine.optim.named_optimizers import TORCH_OPTIMIZERS
from engine.optim.schedulers import TORCH_SCHEDULERS

SHAPES = {"a": (3,), "b": (), "c": (2, 2)}


def make_params(shapes=SHAPES, device="cpu"):
    """Params in the store, by name; returns their unconstrained leaves."""
    gen = torch.Generator().manual_seed(1)
    return {
        name: engine.param(name, torch.randn(shape, generator=gen).to(device)).unconstrained()
        for name, shape in shapes.items()
    }


def set_grads(leaves, step, sparse=False):
    """Deterministic gradients that depend on the step and on the current values."""
    gen = torch.Generator().manual_seed(100 + step)
    for i, p in enumerate(leaves):
        noise = torch.randn(p.shape, generator=gen).to(p.device)
        grad = (p.detach() - i) * 0.5 + noise
        p.grad = grad.to_sparse() if sparse else grad


def clones(leaves):
    return [p.detach().clone().requires_grad_(True) for p in leaves]


def state_names(wrapper):
    return {name: sorted(g["params"]) for name, g in enumerate(wrapper.get_state()["groups"])}


# -- every optimizer steps like torch's own ---------------------------------------------------


def _case(name):
    if name == "Muon":  # orthogonalises matrices: 2-D params only
        return {"w": (3, 4), "v": (2, 2)}, False
    return SHAPES, name == "SparseAdam"


@pytest.mark.parametrize("name", sorted(TORCH_OPTIMIZERS))
def test_each_wrapper_steps_like_the_torch_optimizer(name):
    shapes, sparse = _case(name)
    leaves = list(make_params(shapes).values())
    reference = clones(leaves)
    torch_class = getattr(torch.optim, name)
    args = {"lr": 0.05}
    flags = fastest_flags(torch_class, args, leaves[0].device, leaves[0].dtype)
    plain = torch_class(reference, **args, **flags)
    wrapper = getattr(optim, name)(args)
    for step in range(3):
        set_grads(leaves, step, sparse)
        set_grads(reference, step, sparse)
        wrapper(leaves)
        plain.step()
    for ours, theirs in zip(leaves, reference, strict=True):
        assert torch.equal(ours, theirs)


def test_every_torch_optimizer_but_lbfgs_has_a_wrapper():
    expected = {
        name
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)
    } - {"Optimizer", "LBFGS"}
    assert set(TORCH_OPTIMIZERS) == expected
    assert {"Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "ClippedAdam"} <= set(optim.__all__)
    assert not hasattr(optim, "LBFGS")


def test_fused_kernel_where_torch_has_one_and_foreach_elsewhere():
    cpu, f32 = torch.device("cpu"), torch.float32
    assert fastest_flags(torch.optim.Adam, {"lr": 0.1}, cpu, f32) == {"fused": True}
    assert fastest_flags(torch.optim.RMSprop, {"lr": 0.1}, cpu, f32) == {"foreach": True}
    # The user's explicit choice is left alone; an unsupported dtype falls back to foreach.
    assert fastest_flags(torch.optim.Adam, {"lr": 0.1, "foreach": False}, cpu, f32) == {}
    assert fastest_flags(torch.optim.Adam, {"lr": 0.1}, cpu, torch.complex64) == {"foreach": True}
    assert fastest_flags(TorchClippedAdam, {"lr": 0.1}, cpu, f32) == {}


def test_a_step_bumps_the_version_of_each_param_even_with_the_fused_kernel():
    # torch's fused kernels update in place without bumping versions; autograd's check of saved
    # tensors and the flows' caches rely on them, so the wrapper bumps them itself.
    leaves = list(make_params().values())
    wrapper = optim.Adam({"lr": 0.1})
    set_grads(leaves, 0)
    before = [p._version for p in leaves]
    wrapper(leaves)
    assert wrapper._optimizers[0].defaults.get("fused") is True
    assert all(p._version > v for p, v in zip(leaves, before, strict=True))
    # A graph that saved a param before the step now refuses to backpropagate a stale value.
    saved = (leaves[0] * leaves[0]).sum()
    set_grads(leaves, 0)
    wrapper(leaves)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.backward()


def test_one_torch_optimizer_and_one_group_for_all_params():
    leaves = list(make_params().values())
    wrapper = optim.Adam({"lr": 0.01, "betas": (0.9, 0.999)})
    set_grads(leaves, 0)
    wrapper(leaves)
    assert state_names(wrapper) == {0: ["a", "b", "c"]}
    assert len(wrapper._optimizers) == 1
    assert repr(wrapper) == "Adam({'lr': 0.01, 'betas': (0.9, 0.999)}) over 3 params in 1 group"


def test_empty_call_changes_nothing():
    leaves = list(make_params().values())
    wrapper = optim.Adam({"lr": 0.1})
    wrapper([])
    assert wrapper.get_state() == {"format": "pplkernel-optim-1", "groups": [], "state": {}}
    set_grads(leaves, 0)
    wrapper(leaves)
    before = [p.detach().clone() for p in leaves]
    state = wrapper.get_state()
    wrapper([])
    wrapper(iter(()))
    assert all(torch.equal(p, q) for p, q in zip(leaves, before, strict=True))
    after = wrapper.get_state()
    assert all(
        torch.equal(after["state"][n]["exp_avg"], state["state"][n]["exp_avg"]) for n in "abc"
    )


def test_params_without_grad_are_skipped():
    leaves = make_params()
    wrapper = optim.SGD({"lr": 1.0})
    leaves["a"].grad = torch.ones(3)
    before = leaves["b"].detach().clone()
    wrapper(leaves.values())
    assert torch.equal(leaves["b"], before)
    assert torch.equal(leaves["a"], engine.get_param_store()["a"])


# -- per-param arguments ----------------------------------------------------------------------


def test_per_param_args_pyro_two_argument_form_and_groups():
    leaves = make_params({"loc": (2,), "scale": (2,)})
    net = torch.nn.Linear(2, 1)
    engine.module("net", net)
    calls = []

    def per_param(module_name, param_name):
        calls.append((module_name, param_name))
        return {"lr": 0.1 if module_name == "net" else 0.01}

    wrapper = optim.SGD(per_param)
    params = [*leaves.values(), net.weight, net.bias]
    reference = clones(params)
    plain = torch.optim.SGD(
        [{"params": reference[:2], "lr": 0.01}, {"params": reference[2:], "lr": 0.1}]
    )
    for step in range(2):
        set_grads(params, step)
        set_grads(reference, step)
        wrapper(params)
        plain.step()
    assert sorted(calls) == [("loc", "loc"), ("net", "bias"), ("net", "weight"), ("scale", "scale")]
    groups = {g["hyper"]["lr"]: sorted(g["params"]) for g in wrapper.get_state()["groups"]}
    assert groups == {0.01: ["loc", "scale"], 0.1: ["net$$$bias", "net$$$weight"]}
    assert len(wrapper._optimizers) == 1
    assert all(torch.equal(p, q) for p, q in zip(params, reference, strict=True))


def test_per_param_args_one_argument_form_gets_the_dotted_name():
    net = torch.nn.Linear(2, 1)
    engine.module("net", net)
    seen = []
    wrapper = optim.Adam(lambda name: seen.append(name) or {"lr": 0.1})
    set_grads([net.weight, net.bias], 0)
    wrapper([net.weight, net.bias])
    assert sorted(seen) == ["net.bias", "net.weight"]


def test_per_param_args_errors_name_the_problem():
    leaves = make_params()
    with pytest.raises(optim.OptimError, match="returned list"):
        optim.Adam(lambda m, p: [0.1])([leaves["a"]])
    stray = torch.zeros(2, requires_grad=True)
    with pytest.raises(optim.OptimError, match="not in the param store"):
        optim.Adam(lambda m, p: {"lr": 0.1})([stray])
    with pytest.raises(optim.OptimError, match="unknown keys"):
        optim.Adam({"lr": 0.1}, clip_args={"max_norm": 1.0})([leaves["a"]])
    with pytest.raises(optim.OptimError, match="must be a dict"):
        optim.Adam(0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        leaves["a"].grad = torch.ones(3)
        optim.Adam({"lr": -1.0})([leaves["a"]])


# -- params that come and go ------------------------------------------------------------------


def test_lazily_added_params_join_without_losing_state():
    leaves = make_params()
    a, b = leaves["a"], leaves["b"]
    ref_a, ref_b = clones([a, b])
    wrapper = optim.Adam({"lr": 0.1})
    plain = torch.optim.Adam([ref_a], lr=0.1, fused=True)
    for step in range(2):
        set_grads([a], step)
        set_grads([ref_a], step)
        wrapper([a])
        plain.step()
    plain.param_groups[0]["params"].append(ref_b)
    for step in range(2, 4):
        set_grads([a, b], step)
        set_grads([ref_a, ref_b], step)
        wrapper([a, b])
        plain.step()
    assert torch.equal(a, ref_a) and torch.equal(b, ref_b)
    state = wrapper.get_state()
    assert state_names(wrapper) == {0: ["a", "b"]}
    assert state["state"]["a"]["step"].item() == 4 and state["state"]["b"]["step"].item() == 2


def test_params_left_out_of_a_call_are_not_stepped_and_keep_their_grad():
    leaves = make_params()
    wrapper = optim.Adam({"lr": 0.1})
    set_grads(leaves.values(), 0)
    wrapper(leaves.values())
    set_grads(leaves.values(), 1)
    grad_c, value_c = leaves["c"].grad, leaves["c"].detach().clone()
    wrapper([leaves["a"], leaves["b"]])
    assert torch.equal(leaves["c"], value_c)
    assert leaves["c"].grad is grad_c
    assert wrapper.get_state()["state"]["c"]["step"].item() == 1


def test_deleted_and_replaced_params_are_dropped_and_not_kept_alive():
    leaves = make_params()
    wrapper = optim.Adam({"lr": 0.1})
    set_grads(leaves.values(), 0)
    wrapper(leaves.values())
    store = engine.get_param_store()
    gone = weakref.ref(leaves["a"])
    old_b = weakref.ref(leaves["b"])
    del store["a"]
    store["b"] = torch.tensor(5.0)
    new_b = store["b"].unconstrained()
    del leaves
    survivor = store["c"].unconstrained()
    set_grads([new_b, survivor], 1)
    wrapper([new_b, survivor])
    gc.collect()
    assert gone() is None and old_b() is None
    state = wrapper.get_state()
    assert sorted(state["state"]) == ["b", "c"]
    assert state["state"]["b"]["step"].item() == 1  # the new "b" starts afresh, as in Pyro
    assert state["state"]["c"]["step"].item() == 2


def test_group_of_replaced_params_restarts_with_fresh_hyper_parameters():
    leaves = make_params({"x": (2,)})
    wrapper = optim.ClippedAdam({"lr": 0.1, "lrd": 0.5})
    set_grads(leaves.values(), 0)
    wrapper(leaves.values())
    engine.get_param_store()["x"] = torch.zeros(2)
    new = engine.get_param_store()["x"].unconstrained()
    set_grads([new], 1)
    wrapper([new])
    assert wrapper.get_state()["groups"][0]["hyper"]["lr"] == 0.05


# -- ClippedAdam ------------------------------------------------------------------------------


def test_clipped_adam_clamps_and_decays_like_a_hand_computation():
    x = engine.param("x", torch.tensor([0.5, -2.0])).unconstrained()
    lr, (beta1, beta2), eps, clip, lrd, decay = 0.1, (0.8, 0.9), 1e-6, 1.5, 0.9, 0.01
    wrapper = optim.ClippedAdam(
        {
            "lr": lr,
            "betas": (beta1, beta2),
            "eps": eps,
            "clip_norm": clip,
            "lrd": lrd,
            "weight_decay": decay,
        }
    )
    expected = [0.5, -2.0]
    m, v = [0.0, 0.0], [0.0, 0.0]
    grads = [[4.0, -0.3], [-7.0, 1.2], [0.1, 9.0]]
    for t, g in enumerate(grads, start=1):
        x.grad = torch.tensor(g)
        wrapper([x])
        lr *= lrd
        for i in range(2):
            gi = max(-clip, min(clip, g[i])) + decay * expected[i]
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            step = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
            expected[i] -= step * m[i] / (math.sqrt(v[i]) + eps)
    assert x.detach().tolist() == pytest.approx(expected, rel=1e-5)
    assert x.grad.tolist() == pytest.approx([0.1, 1.5])  # clamped in place, as Pyro does
    assert wrapper.get_state()["groups"][0]["hyper"]["lr"] == pytest.approx(0.1 * 0.9**3)


def test_clipped_adam_matches_pyro_bit_for_bit():
    pyro_clipped_adam = pytest.importorskip("pyro.optim.clipped_adam")
    leaves = list(make_params().values())
    reference = clones(leaves)
    args = {"lr": 0.05, "clip_norm": 0.7, "lrd": 0.97, "centered_variance": True}
    wrapper = optim.ClippedAdam(args)
    per_param = [pyro_clipped_adam.ClippedAdam([p], **args) for p in reference]
    for step in range(5):
        set_grads(leaves, step)
        set_grads(reference, step)
        wrapper(leaves)
        for o in per_param:
            o.step()
    assert all(torch.equal(p, q) for p, q in zip(leaves, reference, strict=True))


# -- clip_args --------------------------------------------------------------------------------


def test_clip_args_clip_each_gradient_before_the_step_as_pyro_does():
    leaves = list(make_params().values())
    reference = clones(leaves)
    wrapper = optim.SGD({"lr": 0.1}, clip_args={"clip_norm": 0.5, "clip_value": 0.2})
    plain = torch.optim.SGD(reference, lr=0.1, fused=True)
    for step in range(2):
        set_grads(leaves, step)
        set_grads(reference, step)
        for p in reference:
            torch.nn.utils.clip_grad_norm_(p, 0.5)
            torch.nn.utils.clip_grad_value_(p, 0.2)
        wrapper(leaves)
        plain.step()
    assert all(torch.equal(p, q) for p, q in zip(leaves, reference, strict=True))


def test_clip_args_per_param():
    leaves = make_params()
    wrapper = optim.SGD({"lr": 1.0}, clip_args=lambda m, p: {"clip_value": 0.1} if p == "a" else {})
    for p in leaves.values():
        p.grad = torch.full_like(p, 3.0)
    start = {n: p.detach().clone() for n, p in leaves.items()}
    wrapper(leaves.values())
    assert torch.allclose(leaves["a"], start["a"] - 0.1)
    assert torch.allclose(leaves["b"], start["b"] - 3.0)


# -- schedulers -------------------------------------------------------------------------------

SCHEDULER_ARGS = {
    "LambdaLR": {"lr_lambda": lambda epoch: 0.5**epoch},
    "MultiplicativeLR": {"lr_lambda": lambda epoch: 0.9},
    "StepLR": {"step_size": 2, "gamma": 0.5},
    "MultiStepLR": {"milestones": [1, 2], "gamma": 0.5},
    "ConstantLR": {"factor": 0.5, "total_iters": 2},
    "LinearLR": {"start_factor": 0.5, "total_iters": 4},
    "ExponentialLR": {"gamma": 0.9},
    "SequentialLR": {
        "schedulers": [
            functools.partial(torch.optim.lr_scheduler.ConstantLR, factor=0.5, total_iters=2),
            functools.partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.9),
        ],
        "milestones": [2],
    },
    "PolynomialLR": {"total_iters": 5, "power": 2.0},
    "CosineAnnealingLR": {"T_max": 5},
    "ChainedScheduler": {
        "schedulers": [
            functools.partial(torch.optim.lr_scheduler.ConstantLR, factor=0.5, total_iters=2),
            functools.partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.9),
        ]
    },
    "ReduceLROnPlateau": {"patience": 0, "factor": 0.5},
    "CyclicLR": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2},
    "CosineAnnealingWarmRestarts": {"T_0": 2},
    "OneCycleLR": {"max_lr": 0.5, "total_steps": 10},
}


def _torch_scheduler(name, optimizer):
    kwargs = dict(SCHEDULER_ARGS[name])
    if "schedulers" in kwargs:
        kwargs["schedulers"] = [make(optimizer) for make in kwargs["schedulers"]]
    return getattr(torch.optim.lr_scheduler, name)(optimizer=optimizer, **kwargs)


@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_each_scheduler_steps_the_lr_like_torch(name):
    leaves = list(make_params().values())
    reference = clones(leaves)
    plain = torch.optim.SGD(reference, lr=0.1, momentum=0.9, fused=True)
    plain_scheduler = _torch_scheduler(name, plain)
    wrapper = getattr(optim, name)(
        {
            "optimizer": torch.optim.SGD,
            "optim_args": {"lr": 0.1, "momentum": 0.9},
            **SCHEDULER_ARGS[name],
        }
    )
    lrs, plain_lrs = [], []
    for epoch in range(4):
        set_grads(leaves, epoch)
        set_grads(reference, epoch)
        wrapper(leaves)
        plain.step()
        metric = (1.0,) if name == "ReduceLROnPlateau" else ()
        wrapper.step(*metric)
        plain_scheduler.step(*metric)
        lrs.append(wrapper.get_state()["groups"][0]["hyper"]["lr"])
        plain_lrs.append(plain.param_groups[0]["lr"])
    assert lrs == plain_lrs
    assert len(set(lrs)) > 1 or name == "ReduceLROnPlateau"
    assert all(torch.equal(p, q) for p, q in zip(leaves, reference, strict=True))


def test_exponential_lr_spot_check_and_plateau_metric():
    x = make_params({"x": ()})["x"]
    exponential = optim.ExponentialLR(
        {"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1}, "gamma": 0.9}
    )
    exponential.step()  # before any param: nothing to schedule yet
    x.grad = torch.tensor(1.0)
    exponential([x])
    exponential.step()
    exponential.step()
    assert exponential.get_state()["groups"][0]["hyper"]["lr"] == pytest.approx(0.1 * 0.9**2)
    plateau = optim.ReduceLROnPlateau(
        {"optimizer": torch.optim.Adam, "optim_args": {"lr": 0.1}, "patience": 0}
    )
    plateau([x])
    for loss in (1.0, 2.0, 3.0):
        plateau.step(loss)
    assert plateau.get_state()["groups"][0]["hyper"]["lr"] == pytest.approx(0.001)


def test_scheduler_arguments_must_name_the_optimizer():
    with pytest.raises(optim.OptimError, match="'optimizer'"):
        optim.StepLR({"step_size": 1})
    args = {"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1}, "gamma": 0.5}
    optim.ExponentialLR(args)
    assert "optimizer" in args  # the caller's dict is not consumed (Pyro pops from it)


def test_every_torch_scheduler_has_a_wrapper():
    assert set(TORCH_SCHEDULERS) == set(SCHEDULER_ARGS)
    assert isinstance(
        optim.StepLR({"optimizer": torch.optim.SGD, "optim_args": {}}), optim.PyroLRScheduler
    )


# -- state: get/set, save/load, bit-for-bit continuation --------------------------------------


def _run(wrapper, names, steps, start, schedule=False):
    store = engine.get_param_store()
    for step in range(start, start + steps):
        leaves = [store[n].unconstrained() for n in names]
        set_grads(leaves, step)
        wrapper(leaves)
        if schedule:
            wrapper.step()


CONTINUATION_CASES = {
    "Adam": lambda: optim.Adam({"lr": 0.05}),
    "SGD-momentum-per-param": lambda: optim.SGD(
        lambda m, p: {"lr": 0.05 if p == "a" else 0.02, "momentum": 0.9}
    ),
    "ClippedAdam": lambda: optim.ClippedAdam({"lr": 0.05, "lrd": 0.9, "clip_norm": 1.0}),
    "RMSprop-clipped": lambda: optim.RMSprop({"lr": 0.01}, clip_args={"clip_norm": 0.5}),
    "Adagrad": lambda: optim.Adagrad({"lr": 0.1}),
    "ExponentialLR": lambda: optim.ExponentialLR(
        {"optimizer": torch.optim.Adam, "optim_args": {"lr": 0.05}, "gamma": 0.8}
    ),
    "OneCycleLR": lambda: optim.OneCycleLR(
        {
            "optimizer": torch.optim.SGD,
            "optim_args": {"lr": 0.05, "momentum": 0.9},
            "max_lr": 0.1,
            "total_steps": 20,
        }
    ),
}


@pytest.mark.parametrize("case", sorted(CONTINUATION_CASES))
def test_save_and_load_continue_bit_for_bit(case, tmp_path):
    make = CONTINUATION_CASES[case]
    schedule = isinstance(make(), optim.PyroLRScheduler)
    names = list(SHAPES)
    store = engine.get_param_store()
    make_params()
    first = make()
    _run(first, names, steps=4, start=0, schedule=schedule)
    store.save(tmp_path / "params.pt")
    first.save(tmp_path / "optim.pt")
    _run(first, names, steps=3, start=4, schedule=schedule)
    expected = {n: store[n].detach().clone() for n in names}

    engine.clear_param_store()
    second = make()
    store.load(tmp_path / "params.pt")
    second.load(tmp_path / "optim.pt")
    _run(second, names, steps=3, start=4, schedule=schedule)
    for n in names:
        assert torch.equal(store[n], expected[n]), n
    saved = torch.load(tmp_path / "optim.pt", weights_only=True)
    assert saved["format"] == "pplkernel-optim-1"


def test_get_state_is_a_snapshot_and_set_state_continues_in_memory():
    make_params()
    names = list(SHAPES)
    first = optim.Adam({"lr": 0.05})
    _run(first, names, steps=3, start=0)
    params = {n: v.detach().clone() for n, v in engine.get_param_store().named_parameters()}
    state = first.get_state()
    exp_avg = state["state"]["a"]["exp_avg"].clone()
    _run(first, names, steps=2, start=3)
    assert torch.equal(state["state"]["a"]["exp_avg"], exp_avg)
    expected = {n: v.detach().clone() for n, v in engine.get_param_store().named_parameters()}

    engine.clear_param_store()
    for n, v in params.items():
        engine.get_param_store()[n] = v
    second = optim.Adam({"lr": 0.05})
    second.set_state(state)
    _run(second, names, steps=2, start=3)
    for n, v in engine.get_param_store().named_parameters():
        assert torch.equal(v, expected[n])


def test_state_for_params_not_seen_yet_applies_when_they_appear():
    make_params()
    first = optim.Adam({"lr": 0.05})
    _run(first, ["a", "b"], steps=2, start=0)
    state = first.get_state()
    second = optim.Adam({"lr": 0.05})
    second.set_state(state)
    assert second.get_state()["state"].keys() == {"a", "b"}  # still waiting, still saved
    _run(second, ["a"], steps=1, start=2)
    assert second.get_state()["state"]["a"]["step"].item() == 3
    assert second.get_state()["state"]["b"]["step"].item() == 2  # waiting for "b" to appear
    _run(second, ["a", "b"], steps=1, start=3)
    assert second.get_state()["state"]["b"]["step"].item() == 3


def test_set_state_on_a_running_optimizer_applies_at_once():
    make_params()
    wrapper = optim.ClippedAdam({"lr": 0.1, "lrd": 0.5})
    _run(wrapper, ["a"], steps=1, start=0)
    saved = wrapper.get_state()
    _run(wrapper, ["a"], steps=2, start=1)
    wrapper.set_state(saved)
    state = wrapper.get_state()
    assert state["state"]["a"]["step"] == 1 and state["groups"][0]["hyper"]["lr"] == 0.05


class Opaque:
    """An object that only a full unpickler could load."""


def test_loading_rejects_files_that_are_not_optimizer_states(tmp_path):
    torch.save({"x": Opaque()}, tmp_path / "pickled.pt")
    with pytest.raises(StateFileContentError, match="objects other than tensors"):
        optim.Adam({"lr": 0.1}).load(tmp_path / "pickled.pt")
    torch.save({"loc": {}}, tmp_path / "pyro_style.pt")
    with pytest.raises(StateFileContentError, match="format marker"):
        optim.Adam({"lr": 0.1}).load(tmp_path / "pyro_style.pt")
    with pytest.raises(optim.OptimError, match="malformed"):
        optim.Adam({"lr": 0.1}).set_state({"format": "pplkernel-optim-1", "groups": 1, "state": {}})


def test_save_is_atomic_when_writing_crashes(tmp_path, monkeypatch):
    make_params()
    wrapper = optim.Adam({"lr": 0.1})
    _run(wrapper, list(SHAPES), steps=1, start=0)
    path = tmp_path / "optim.pt"
    wrapper.save(path)
    original = path.read_bytes()
    _run(wrapper, list(SHAPES), steps=1, start=1)

    def crash(payload, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        wrapper.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["optim.pt"]
    assert torch.load(path, weights_only=True)["state"]["a"]["step"].item() == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_state_follows_the_params_device(tmp_path):
    leaves = make_params(device="cuda")
    wrapper = optim.Adam({"lr": 0.1})
    _run(wrapper, list(SHAPES), steps=2, start=0)
    state = wrapper.get_state()
    assert state["state"]["a"]["exp_avg"].device.type == "cuda"
    wrapper.save(tmp_path / "optim.pt")
    fresh = optim.Adam({"lr": 0.1})
    fresh.load(tmp_path / "optim.pt", map_location="cpu")
    _run(fresh, list(SHAPES), steps=1, start=2)
    assert fresh.get_state()["state"]["a"]["exp_avg"].device.type == "cuda"
    assert all(p.device.type == "cuda" for p in leaves.values())
