"""The handler stack: order of processing, stop, continuation, type views, stack cleanup."""

import threading

import pytest
import torch

from engine import poutine
from engine.runtime import (
    Messenger,
    apply_stack,
    default_process_message,
    handler_stack,
    handlers_active,
    new_message,
)


class Recorder(Messenger):
    def __init__(self, label, log, stop=False):
        self.label = label
        self.log = log
        self.stop = stop

    def _process_sample(self, msg):
        self.log.append(("process", self.label))
        if self.stop:
            msg["stop"] = True

    def _postprocess_sample(self, msg):
        self.log.append(("post", self.label))


def draw_one():
    return torch.tensor(1.0)


def test_process_innermost_first_and_postprocess_in_reverse():
    log = []
    with Recorder("outer", log), Recorder("inner", log):
        apply_stack(new_message("sample", "x", draw_one))
    assert log == [
        ("process", "inner"),
        ("process", "outer"),
        ("post", "outer"),
        ("post", "inner"),
    ]


def test_stop_hides_the_message_from_outer_handlers():
    log = []
    with Recorder("outer", log), Recorder("inner", log, stop=True):
        msg = apply_stack(new_message("sample", "x", draw_one))
    assert log == [("process", "inner"), ("post", "inner")]
    assert msg["value"] == 1.0


def test_default_draws_only_without_a_value():
    msg = new_message("sample", "x", draw_one, value=torch.tensor(5.0))
    default_process_message(msg)
    assert msg["value"] == 5.0 and msg["done"]
    msg = new_message("sample", "x", draw_one)
    default_process_message(msg)
    assert msg["value"] == 1.0


def test_continuation_runs_after_postprocessing():
    log = []

    class Continue(Messenger):
        def _process_sample(self, msg):
            msg["continuation"] = lambda m: log.append(("continuation", m["value"].item()))

    with Recorder("outer", log), Continue():
        apply_stack(new_message("sample", "x", draw_one))
    assert log[-1] == ("continuation", 1.0)
    assert log[-2] == ("post", "outer")


def test_handlers_that_ignore_a_type_are_not_called_for_it():
    calls = []

    class ParamOnly(Messenger):
        def _process_param(self, msg):
            calls.append(msg["name"])

    with ParamOnly():
        apply_stack(new_message("sample", "x", draw_one))
        apply_stack(new_message("param", "w", draw_one))
    assert calls == ["w"]
    assert not ParamOnly._handles("sample")


def test_generic_handlers_see_every_type():
    seen = []

    class Everything(Messenger):
        def _process_message(self, msg):
            seen.append(msg["type"])

    with Everything():
        apply_stack(new_message("sample", "x", draw_one))
        apply_stack(new_message("custom", "c", draw_one))
    assert seen == ["sample", "custom"]


def test_a_changed_message_type_reaches_outer_handlers_of_the_new_type():
    seen = []

    class SampleWatcher(Messenger):
        def _process_sample(self, msg):
            seen.append(msg["name"])

    class ParamToSample(Messenger):
        def _process_param(self, msg):
            msg["type"] = "sample"

    with SampleWatcher(), ParamToSample():
        apply_stack(new_message("param", "w", draw_one))
    assert seen == ["w"]


def test_messenger_as_decorator_and_stack_cleanup_on_error():
    log = []
    recorder = Recorder("r", log)

    @recorder
    def model():
        assert handler_stack()[-1] is recorder
        apply_stack(new_message("sample", "x", draw_one))
        return "done"

    assert model() == "done"
    assert not handlers_active()

    leaked = Recorder("leaked", log)

    def failing():
        leaked.__enter__()  # an inner handler that never exits
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"), Recorder("outer", log):
        failing()
    assert handler_stack() == []


def test_messenger_rejects_a_non_callable():
    # TypeError and ValueError both catch it (Pyro raises the latter for poutine.mask(False)).
    with pytest.raises(TypeError, match="Recorder wraps a function, but got a int"):
        Recorder("r", [])(3)
    with pytest.raises(ValueError, match=r"not callable.*poutine\.mask\(mask=False\)"):
        poutine.mask(False)


def test_stack_is_per_thread():
    seen_in_thread = []
    with Recorder("main", []):
        worker = threading.Thread(target=lambda: seen_in_thread.append(handlers_active()))
        worker.start()
        worker.join()
        assert handlers_active()
    assert seen_in_thread == [False]


def test_pyro_spelled_handler_methods():
    class Always42(Messenger):
        def _pyro_sample(self, msg):
            msg["value"] = torch.tensor(42.0)

        def _pyro_post_sample(self, msg):
            msg["seen"] = True

    with Always42():
        msg = apply_stack(new_message("sample", "x", draw_one))
    assert msg["value"] == 42.0 and msg["seen"]


def test_effectful_operations_reach_handlers():
    from engine.runtime import effectful

    @effectful(type="double")
    def double(x, name=None):
        return 2 * x

    class Negate(Messenger):
        def _postprocess_double(self, msg):
            msg["value"] = -msg["value"]

    assert double(3) == 6
    with Negate():
        assert double(3, name="d") == -6


def test_a_leaked_seed_handler_restores_the_generators():
    from engine.rng import set_rng_seed

    set_rng_seed(0)
    expected = torch.rand(2)
    set_rng_seed(0)
    with pytest.raises(KeyError), Recorder("outer", []):
        poutine.seed(rng_seed=7).__enter__()
        raise KeyError("left inside")
    assert torch.equal(torch.rand(2), expected)
