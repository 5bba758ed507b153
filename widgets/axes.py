"""Axes for the monitors' charts: "nice" tick values, their labels, and the static chart.

The ticks are computed here, in Python, and travel to the browser with the data (in a trait and
in the batched messages); the ESM files only place the ticks they are given (the chart drawing in
widgets/monitor_base.js).
Why here and not in JavaScript: the SVI monitor's static HTML fallback draws the loss curve with
the same axes, so Python needs the tick code anyway, and one copy of it is better than two. What
the browser decides needs no new ticks: its log-scale switch picks one of the two loss axes sent,
and smoothing (a running average) stays within the data's range.

An axis is a dict ``{"scale": "linear" | "log", "ticks": [...], "labels": [...]}``. Its first
and last ticks bracket the data and are the chart's range. Linear ticks step by 1, 2 or 5 times a
power of ten. Log ticks (positive data only) are powers of ten; data that spans less than a
decade gets linear nice ticks placed on the log scale instead, since powers of ten would leave
it with one or two ticks and the curve squeezed into a corner.

>>> linear_axis(0.13, 0.92)["labels"]
['0', '0.2', '0.4', '0.6', '0.8', '1.0']
>>> linear_axis(-7.3, -2.1)["ticks"]
[-8.0, -6.0, -4.0, -2.0]
>>> log_axis(3.0, 4500.0)["labels"]
['1', '10', '100', '1000', '10000']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from widgets.html import escape


class Extent:
    """The lowest and highest finite value seen so far (None, NaN and infinities are skipped),
    kept as values arrive so that each batch costs only its own length."""

    def __init__(self) -> None:
        self.low, self.high = math.inf, -math.inf

    def add(self, values: Iterable[float | None]) -> None:
        for value in values:
            if value is not None and math.isfinite(value):
                self.low, self.high = min(self.low, value), max(self.high, value)

    def __bool__(self) -> bool:
        return self.low <= self.high


def linear_axis(low: float, high: float, count: int = 5, integer: bool = False) -> dict[str, Any]:
    """About ``count`` ticks from at or below ``low`` to at or above ``high``; ``integer`` keeps
    the step a whole number (for step and iteration counts)."""
    low, high = _widen(low, high)
    mantissa, exponent = _nice_step((high - low) / count)
    if integer and exponent < 0:
        mantissa, exponent = 1, 0
    first = math.floor(low / (mantissa * 10.0**exponent))
    last = math.ceil(high / (mantissa * 10.0**exponent))
    # The divisions above can round across a whole number: step out once more if they did.
    if _tick(first, mantissa, exponent) > low:
        first -= 1
    if _tick(last, mantissa, exponent) < high:
        last += 1
    ticks = [_tick(k, mantissa, exponent) for k in range(first, last + 1)]
    return {"scale": "linear", "ticks": ticks, "labels": _labels(ticks, [exponent] * len(ticks))}


def log_axis(low: float, high: float, count: int = 5) -> dict[str, Any]:
    """Ticks for positive data on a log scale (see the module docstring)."""
    if not low > 0:
        raise ValueError(f"a log axis needs positive values, got {low}")
    if high < 10 * low:
        axis = linear_axis(low, high, count)
        if axis["ticks"][0] > 0:
            return {**axis, "scale": "log"}
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    # log10 can round across a whole number: step out once more if it did.
    if _tick(1, 1, first) > low:
        first -= 1
    if _tick(1, 1, last) < high:
        last += 1
    stride = math.ceil((last - first) / count)  # many decades: every stride-th power
    last = first + stride * math.ceil((last - first) / stride)
    powers = list(range(first, last + 1, stride))
    ticks = [_tick(1, 1, power) for power in powers]
    return {"scale": "log", "ticks": ticks, "labels": _labels(ticks, powers)}


def _widen(low: float, high: float) -> tuple[float, float]:
    """Check the range, and give a single value (one point, constant data) room around it."""
    if not (math.isfinite(high - low) and low <= high):
        raise ValueError(f"an axis needs finite low <= high (and a finite span), got {low}, {high}")
    if low < high:
        return low, high
    pad = abs(low) / 10 or 1.0
    return low - pad, high + pad


def _nice_step(raw: float) -> tuple[int, int]:
    """The smallest 1, 2 or 5 times a power of ten at least ``raw``, as (mantissa, exponent)."""
    exponent = math.floor(math.log10(raw))
    for mantissa in (1, 2, 5):
        if mantissa * 10.0**exponent >= raw * (1 - 1e-9):  # raw can come out a hair above
            return mantissa, exponent
    return 1, exponent + 1


def _tick(k: int, mantissa: int, exponent: int) -> float:
    """k * mantissa * 10**exponent, computed from whole numbers so that 3 * 0.1 is 0.3."""
    whole = k * mantissa
    return float(whole * 10**exponent) if exponent >= 0 else whole / 10**-exponent


def _labels(ticks: list[float], exponents: list[int]) -> list[str]:
    """Each tick with the digits a step of 10**exponent needs; one axis in one form: exponent
    form (1.5e7, 3e-6) when some tick is very large or some step very small."""
    exponent_form = min(exponents) < -4 or max(abs(t) for t in ticks) >= 1e6
    labels = []
    for value, exponent in zip(ticks, exponents, strict=True):
        if value == 0:
            labels.append("0")
        elif not exponent_form:
            labels.append(f"{value:.{max(0, -exponent)}f}")
        else:
            digits = max(0, math.floor(math.log10(abs(value))) - exponent)
            mantissa, power = f"{value:.{digits}e}".split("e")
            labels.append(f"{mantissa}e{int(power)}")
    return labels


# The static chart (the SVI monitor's HTML fallback): the same layout as the live one
# (drawChart in widgets/monitor_base.js).
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 10, 8, 20


def svg_chart(
    xs: Sequence[float],
    ys: Sequence[float],
    x_axis: dict[str, Any],
    y_axis: dict[str, Any],
    width: int = 480,
    height: int = 160,
    label: str = "chart",
) -> str:
    """An inline SVG of ``ys`` against ``xs`` with both axes drawn (labels escaped)."""

    def line(px: Callable[[float], float], py: Callable[[float], float]) -> str:
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
        return f"<polyline fill='none' stroke='steelblue' points='{points}'/>"

    return svg_plot(x_axis, y_axis, line, width, height, label)


def svg_plot(
    x_axis: dict[str, Any],
    y_axis: dict[str, Any],
    marks: Callable[[Callable[[float], float], Callable[[float], float]], str],
    width: int = 480,
    height: int = 160,
    label: str = "chart",
) -> str:
    """An inline SVG with both axes drawn and, on them, the SVG elements ``marks(px, py)``
    returns (``px``/``py`` place a data value in pixels; whatever text ``marks`` puts in must
    be escaped by it).

    >>> axis = linear_axis(0.0, 1.0, 2)
    >>> svg = svg_plot(axis, axis, lambda px, py: f"<circle cx='{px(0.5)}' cy='{py(0.5)}'/>")
    >>> "<circle cx='259.0' cy='74.0'/>" in svg  # the middle of the plotting box
    True
    """
    box = (_LEFT, _TOP, width - _RIGHT, height - _BOTTOM)

    def px(x: float) -> float:
        return _LEFT + _fraction(x_axis, x) * (box[2] - _LEFT)

    def py(y: float) -> float:
        return box[3] - _fraction(y_axis, y) * (box[3] - _TOP)

    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='{escape(label)}' "
        f"font-size='10'>{_static_axis('x', x_axis, px, box)}{_static_axis('y', y_axis, py, box)}"
        f"{marks(px, py)}</svg>"
    )


def _static_axis(
    name: str, axis: dict[str, Any], place: Callable[[float], float], box: tuple[int, ...]
) -> str:
    """One axis as axisGroup in widgets/monitor_base.js draws it: its line and tick marks in
    one path, a text per tick."""
    left, top, right, bottom = box
    places = [place(tick) for tick in axis["ticks"]]
    if name == "x":
        path = f"M{left},{bottom}H{right}" + "".join(f"M{x:.1f},{bottom}v4" for x in places)
        spots = [f"x='{x:.1f}' y='{bottom + 15}' text-anchor='middle'" for x in places]
    else:
        path = f"M{left},{top}V{bottom}" + "".join(f"M{left},{y:.1f}h-4" for y in places)
        spots = [
            f"x='{left - 6}' y='{y:.1f}' text-anchor='end' dominant-baseline='middle'"
            for y in places
        ]
    texts = "".join(
        f"<text {spot} data-value='{tick!r}'>{escape(text)}</text>"
        for spot, tick, text in zip(spots, axis["ticks"], axis["labels"], strict=True)
    )
    return (
        f"<g data-axis='{name}' data-scale='{axis['scale']}' data-ticks='{len(places)}'>"
        f"<path stroke='#888' fill='none' d='{path}'/>{texts}</g>"
    )


def _fraction(axis: dict[str, Any], value: float) -> float:
    """Where ``value`` lies on ``axis``: 0 at its first tick, 1 at its last."""
    scale = math.log10 if axis["scale"] == "log" else float
    low, high = scale(axis["ticks"][0]), scale(axis["ticks"][-1])
    return (scale(value) - low) / (high - low)


def svg_lines(
    series: Sequence[tuple[Sequence[float], Sequence[float | None], str]],
    x_axis: dict[str, Any],
    y_axis: dict[str, Any],
    width: int = 480,
    height: int = 160,
    label: str = "chart",
) -> str:
    """An inline SVG with a polyline per ``(xs, ys, color)`` of ``series`` (points whose y is
    None or not finite are left out) and both axes drawn (labels escaped).

    >>> axis = linear_axis(0, 1)
    >>> svg_lines([([0, 1], [0, 1], "red"), ([0, 1], [1, None], "blue")], axis, axis).count(
    ...     "<polyline")
    2
    """

    def lines(px: Callable[[float], float], py: Callable[[float], float]) -> str:
        drawn = ""
        for xs, ys, color in series:
            points = " ".join(
                f"{px(x):.1f},{py(y):.1f}"
                for x, y in zip(xs, ys, strict=True)
                if y is not None and math.isfinite(y)
            )
            drawn += f"<polyline fill='none' stroke='{escape(color)}' points='{points}'/>"
        return drawn

    return svg_plot(x_axis, y_axis, lines, width, height, label)
