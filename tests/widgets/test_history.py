"""The monitors' bounded history (widgets.history.Thinned) and the throttle's accounting for
messages its caller sends itself (take / mark_sent)."""

import pytest

from widgets.history import Thinned
from widgets.throttle import Throttle


def expected_rows(max_rows, count):
    """The multiples of the smallest power-of-two stride for which they and the latest row fit
    in ``max_rows``, then the latest row."""
    stride = 1
    while True:
        rows = list(range(0, count, stride))
        if rows[-1] != count - 1:
            rows.append(count - 1)
        if len(rows) <= max_rows:
            return rows
        stride *= 2


@pytest.mark.parametrize(
    ("max_rows", "count"),
    [
        *[(2, 1), (2, 2), (2, 7), (3, 3), (3, 4), (4, 10), (5, 4), (5, 5), (5, 6)],
        *[(10, 1000), (64, 64), (64, 65), (1000, 99_999), (1000, 100_000)],
    ],
)
def test_at_most_max_rows_evenly_spaced_with_the_first_and_the_latest(max_rows, count):
    history = Thinned(max_rows)
    history.extend(range(count))
    assert history.count == count
    assert history.rows() == expected_rows(max_rows, count)
    assert len(history.rows()) <= max_rows
    if count <= max_rows:
        assert history.rows() == list(range(count))  # nothing thinned while there is room


def test_the_kept_rows_are_the_values_at_their_positions():
    history = Thinned(8)
    history.extend((step, step * 0.5) for step in range(1, 301))
    assert all(loss == step * 0.5 for step, loss in history.rows())


def test_clear_starts_again_from_nothing():
    history = Thinned(4)
    history.extend(range(100))
    history.clear()
    history.extend(["a", "b"])
    assert history.rows() == ["a", "b"] and history.count == 2


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True, "10", None])
def test_max_rows_below_two_or_not_an_integer_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=rf"max_points must be an integer of at least 2.*{bad!r}"):
        Thinned(bad, label="max_points")


def test_take_hands_over_the_pending_items_without_sending():
    now, batches = [0.0], []
    throttle = Throttle(batches.append, interval_s=1.0, clock=lambda: now[0])
    throttle.add(1)
    throttle.add(2)
    assert throttle.take_pending() == [1, 2] and throttle.take_pending() == []
    throttle.flush()
    assert batches == []


def test_a_message_the_caller_sent_delays_the_next_batch_a_full_interval():
    now, batches = [0.0], []
    throttle = Throttle(batches.append, interval_s=1.0, clock=lambda: now[0])
    now[0] = 0.8
    throttle.mark_sent()
    now[0] = 1.5  # 1.5 s after the start, but 0.7 s after the caller's message
    throttle.add("a")
    assert batches == []
    now[0] = 1.8
    throttle.add("b")
    assert batches == [["a", "b"]]
