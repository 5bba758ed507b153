"""Axis ticks for the monitors' charts: nice 1-2-5 steps that bracket the data, powers of ten on
a log scale, labels without float noise, and sane answers for degenerate ranges."""

import math
import random

import pytest

from widgets.axes import Extent, linear_axis, log_axis, svg_chart


def random_ranges(count=400, positive=False):
    rng = random.Random(0)
    for _ in range(count):
        scale = 10.0 ** rng.uniform(-8, 8)
        a, b = rng.uniform(-1, 1) * scale, rng.uniform(-1, 1) * scale
        if positive:
            a, b = abs(a) + 1e-12, abs(b) * 10.0 ** rng.uniform(0, 6)
        yield min(a, b), max(a, b)


def check_brackets(axis, low, high):
    ticks = axis["ticks"]
    assert all(math.isfinite(t) for t in ticks)
    assert ticks[0] <= low and ticks[-1] >= high and ticks[0] < ticks[-1]
    assert ticks == sorted(set(ticks))
    assert len(axis["labels"]) == len(ticks) == len(set(axis["labels"]))


@pytest.mark.parametrize("count", [3, 5, 8])
def test_linear_ticks_step_by_one_two_or_five_and_bracket_the_data(count):
    for low, high in random_ranges():
        axis = linear_axis(low, high, count)
        check_brackets(axis, low, high)
        ticks = axis["ticks"]
        assert 3 <= len(ticks) <= count + 3
        step = ticks[1] - ticks[0]
        mantissa = step / 10.0 ** math.floor(math.log10(step) + 1e-9)
        assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-6, (low, high, ticks)
        for t in ticks:  # evenly spaced, every tick a whole multiple of the step
            assert t / step == pytest.approx(round(t / step), abs=1e-6)
        for t, label in zip(ticks, axis["labels"], strict=True):  # labels say the tick's value
            assert float(label) == pytest.approx(t, rel=1e-9, abs=step * 1e-9)


def test_ticks_are_clean_decimals_with_short_labels():
    assert linear_axis(0.1, 0.3)["ticks"] == [0.1, 0.15, 0.2, 0.25, 0.3]
    assert linear_axis(0.1, 0.3)["labels"] == ["0.10", "0.15", "0.20", "0.25", "0.30"]
    assert linear_axis(-7.3, -2.1)["labels"] == ["-8", "-6", "-4", "-2"]
    assert linear_axis(1.2e7, 3.4e7)["labels"][:3] == ["1.0e7", "1.5e7", "2.0e7"]
    assert linear_axis(1e-6, 3e-6)["labels"][:2] == ["1.0e-6", "1.5e-6"]


def test_an_integer_axis_never_steps_by_a_fraction():
    assert linear_axis(1, 3, integer=True)["ticks"] == [1.0, 2.0, 3.0]
    assert linear_axis(1, 3)["ticks"][:2] == [1.0, 1.5]
    assert linear_axis(1, 250, 6, integer=True)["labels"] == ["0", "50", "100", "150", "200", "250"]
    for last in range(1, 60):
        axis = linear_axis(1, last, 6, integer=True)
        check_brackets(axis, 1, last)
        assert all(t == int(t) for t in axis["ticks"])


def test_log_ticks_are_powers_of_ten():
    axis = log_axis(3.0, 4500.0)
    assert axis["scale"] == "log"
    assert axis["ticks"] == [1.0, 10.0, 100.0, 1000.0, 10000.0]
    assert axis["labels"] == ["1", "10", "100", "1000", "10000"]
    assert log_axis(1e-8, 1e-2)["labels"] == ["1e-8", "1e-6", "1e-4", "1e-2"]  # every other


def test_log_ticks_within_a_decade_are_nice_numbers_and_stay_positive():
    axis = log_axis(4.9, 7.8)  # powers of ten would leave the curve one decade of [1, 10]
    assert axis["scale"] == "log" and axis["ticks"] == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert log_axis(0.3, 2.9)["ticks"] == [0.1, 1.0, 10.0]  # nice ticks would reach 0


@pytest.mark.parametrize("count", [3, 5])
def test_log_ticks_bracket_positive_data(count):
    for low, high in random_ranges(positive=True):
        axis = log_axis(low, high, count)
        check_brackets(axis, low, high)
        assert axis["scale"] == "log" and axis["ticks"][0] > 0
        assert 2 <= len(axis["ticks"]) <= count + 3


@pytest.mark.parametrize("value", [0.0, 1.0, -3.5, 250.0, 1e-12, -1e12])
def test_one_point_or_constant_data_gets_room_around_it(value):
    for integer in (False, True):
        check_brackets(linear_axis(value, value, integer=integer), value, value)
    if value > 0:
        check_brackets(log_axis(value, value), value, value)
    assert linear_axis(1, 1, integer=True)["ticks"] == [0.0, 1.0, 2.0]  # one step


@pytest.mark.parametrize(
    "low, high", [(math.nan, 1.0), (0.0, math.inf), (2.0, 1.0), (-1e308, 1e308)]
)
def test_no_axis_for_non_finite_or_reversed_ranges(low, high):
    with pytest.raises(ValueError, match="finite"):
        linear_axis(low, high)


def test_no_log_axis_for_data_that_is_not_positive():
    with pytest.raises(ValueError, match="positive"):
        log_axis(0.0, 10.0)
    with pytest.raises(ValueError, match="positive"):
        log_axis(-5.0, 10.0)


def test_extent_keeps_the_finite_range_only():
    extent = Extent()
    assert not extent
    extent.add([None, math.nan, math.inf, -math.inf])
    assert not extent
    extent.add([3.0, None, -2.0])
    extent.add([1.0])
    assert extent and (extent.low, extent.high) == (-2.0, 3.0)


def test_static_chart_draws_both_axes_and_the_curve_between_the_end_ticks():
    svg = svg_chart([1, 2, 3], [5.0, 6.0, 7.0], linear_axis(1, 3, integer=True), log_axis(5, 7))
    assert "data-axis='x' data-scale='linear' data-ticks='3'" in svg
    assert "data-axis='y' data-scale='log' data-ticks='5'" in svg
    assert ">6.0</text>" in svg
    # 480 x 160 with margins 48, 10, 8, 20: x from 48 to 470, y from 140 (bottom) to 8 (top)
    assert "points='48.0,140.0 259.0," in svg and " 470.0,8.0'" in svg
