"""Do the numbers two runs of one tutorial printed agree?

The runner cannot know the Monte Carlo error of each printed number, so it uses one documented
rule, and lists every pair that breaks it for a person to judge:

- The numbers are every decimal or integer token in the standard output (``nan`` and ``inf``
  too), read in order. A token glued to a word (``float32``, ``Line2D``, ``tau_0``) is part of a
  name, not a number; a hexadecimal address (``0x7f3a...``) is dropped.
- The runs agree ("yes") when both printed the same count of numbers and each pair is within
  ``0.1`` absolutely or within 10 % of the larger magnitude (two ``nan`` agree; infinities agree
  with the same sign).
- "no" when the counts differ or a pair breaks the rule; "n.a." when either run failed or neither
  printed a number.

Ten percent is loose for a long run and tight for a two-step smoke run that prints a noisy loss:
the verdict is a screen, the listed pairs are the evidence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

RELATIVE_TOLERANCE = 0.1
ABSOLUTE_TOLERANCE = 0.1

_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_NUMBER = re.compile(
    r"(?<![\w.])(?:[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan)(?![\w.])"
)


def extract_numbers(text: str) -> list[float]:
    """Every number printed in ``text``, in order (see the module docstring).

    >>> extract_numbers("step 10 loss = -3.25e2, tensor([0.5, nan]) float32 at 0x7f3a")
    [10.0, -325.0, 0.5, nan]
    """
    return [float(token) for token in _NUMBER.findall(_HEX.sub(" ", text))]


def numbers_close(
    a: float, b: float, *, rel: float = RELATIVE_TOLERANCE, abs_: float = ABSOLUTE_TOLERANCE
) -> bool:
    """The rule for one pair: within ``abs_``, or within ``rel`` of the larger magnitude.

    >>> numbers_close(100.0, 109.0), numbers_close(100.0, 112.0), numbers_close(0.01, 0.09)
    (True, False, True)
    """
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    difference = abs(a - b)
    return difference <= abs_ or difference <= rel * max(abs(a), abs(b))


@dataclass(frozen=True)
class Agreement:
    """The verdict for one tutorial, with the pairs that differ (index, first run, second run).

    >>> compare_outputs("loss 1.0", "loss 1.05").verdict
    'yes'
    """

    verdict: str
    count_first: int
    count_second: int
    differing: tuple[tuple[int, float, float], ...]

    def summary(self) -> str:
        """``yes (12)``, ``no (3 of 12 differ)``, ``no (count 10 vs 12)`` or ``n.a.``.

        >>> compare_outputs("1 2 3", "1 2 30").summary()
        'no (1 of 3 differ)'
        """
        if self.verdict == "yes":
            return f"yes ({self.count_first})"
        if self.verdict == "no" and self.count_first != self.count_second:
            return f"no (count {self.count_first} vs {self.count_second})"
        if self.verdict == "no":
            return f"no ({len(self.differing)} of {self.count_first} differ)"
        return "n.a."


def compare_outputs(first: str, second: str) -> Agreement:
    """Compare the numbers two runs printed (both runs finished; see the module docstring).

    >>> compare_outputs("a 1.0 b 2.0", "a 1.0 b 5.0").differing
    ((1, 2.0, 5.0),)
    >>> compare_outputs("no numbers", "none").verdict
    'n.a.'
    """
    a, b = extract_numbers(first), extract_numbers(second)
    if not a and not b:
        return Agreement("n.a.", 0, 0, ())
    differing = tuple(
        (i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=False)) if not numbers_close(x, y)
    )
    verdict = "yes" if len(a) == len(b) and not differing else "no"
    return Agreement(verdict, len(a), len(b), differing)


NOT_COMPARED = Agreement("n.a.", 0, 0, ())
"""The verdict where a run failed: nothing to compare."""
