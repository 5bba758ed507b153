"""Special functions for the goodness-of-fit checks (Pyro's ``pyro.distributions.testing.special``).

>>> round(chi2sf(3.84, 1), 3)  # the 5 % critical value of a chi-square with one degree of freedom
0.05
"""

from __future__ import annotations

import torch


def chi2sf(x: float, s: float) -> float:
    """Survival function ``P(X > x)`` of a chi-square variable ``X`` with ``s`` degrees of freedom:
    the regularized upper incomplete gamma function ``Q(s / 2, x / 2)``.

    >>> chi2sf(0.0, 4)
    1.0
    """
    s_half = torch.tensor(float(s) / 2, dtype=torch.float64)
    return float(torch.special.gammaincc(s_half, torch.tensor(float(x) / 2, dtype=torch.float64)))
