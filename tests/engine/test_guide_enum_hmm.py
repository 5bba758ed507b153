"""An HMM whose hidden states are enumerated in the guide (parallel, under ``markov``): the ELBO
is exact (against brute force over every path), and it costs what the forward algorithm costs,
so 30 and 300 steps never build a table larger than one transition step's."""

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import engine
import engine.distributions as dist
from engine.infer import TraceEnum_ELBO, config_enumerate

STATES = 3
MODEL_TRANSITION = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
MODEL_LOCS = torch.tensor([-1.5, 0.0, 1.8])
GUIDE_TRANSITION = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.1, 0.6]])
GUIDE_START = torch.tensor([0.5, 0.2, 0.3])


def model(observed):
    state = 0
    for t in engine.markov(range(len(observed))):
        probs = MODEL_TRANSITION[state]
        state = engine.sample(f"state_{t}", dist.Categorical(probs))
        engine.sample(f"y_{t}", dist.Normal(MODEL_LOCS[state], 1.0), obs=observed[t])


@config_enumerate
def guide(observed):
    transition = engine.param("guide_transition", GUIDE_TRANSITION.clone())
    start = engine.param("guide_start", GUIDE_START.clone())
    state = None
    for t in engine.markov(range(len(observed))):
        probs = start if state is None else transition[state]
        state = engine.sample(f"state_{t}", dist.Categorical(probs))


def brute_force_elbo(observed):
    """E_q[log p(y, states) - log q(states)], summed over every path of states."""
    total = torch.tensor(0.0)
    for path in itertools.product(range(STATES), repeat=len(observed)):
        log_p = log_q = torch.tensor(0.0)
        previous = None
        for t, state in enumerate(path):
            log_p = log_p + MODEL_TRANSITION[0 if previous is None else previous][state].log()
            log_p = log_p + dist.Normal(MODEL_LOCS[state], 1.0).log_prob(observed[t])
            q_row = GUIDE_START if previous is None else GUIDE_TRANSITION[previous]
            log_q = log_q + q_row[state].log()
            previous = state
        total = total + log_q.exp() * (log_p - log_q)
    return total


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any torch operation produces, and stops the run (before memory
    runs out) as soon as one exceeds ``limit`` elements."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
                if tensor.numel() > self.limit:
                    raise AssertionError(
                        f"{func} built a tensor of {tensor.numel()} elements: the guide's "
                        "enumeration is not recycling dims as the forward algorithm does"
                    )
        return out


@pytest.fixture(autouse=True)
def fresh_params():
    engine.clear_param_store()
    yield
    engine.clear_param_store()


def test_the_elbo_of_a_guide_enumerated_hmm_is_exact():
    observed = torch.tensor([0.3, -1.1, 2.0, 1.7, -0.2, 0.9])
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, guide, observed)
    assert loss == pytest.approx(-brute_force_elbo(observed).item(), rel=1e-5)


@pytest.mark.parametrize("steps", [30, 300])
def test_a_long_guide_enumerated_hmm_builds_no_table_larger_than_one_step(steps):
    observed = torch.linspace(-2.0, 2.0, steps)
    elbo = TraceEnum_ELBO(max_plate_nesting=0)
    # One step meets the previous state, the current one and, broadcast, the one before that
    # in the model's recycled dims: STATES ** 3 elements at most, whatever the length. Without
    # recycling the guide's weights grow as STATES ** t (3 ** 30 elements at 30 steps).
    with LargestTensor(limit=STATES**3) as largest:
        loss = elbo.differentiable_loss(model, guide, observed)
        loss.backward()
    assert largest.largest <= STATES**3
    assert torch.isfinite(loss)
    names = ("guide_transition", "guide_start")
    grads = [engine.param(name).unconstrained().grad for name in names]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
