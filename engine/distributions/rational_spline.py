"""Monotonic rational splines on ``[-B, B]``, the identity outside: the element-wise bijection of
Pyro's ``Spline`` family.

The box is cut into ``K`` bins by knots ``(x_k, y_k)`` with increasing ``x_k`` and ``y_k``, and
the spline has slope ``d_k > 0`` at each knot (1 at the two ends, so it joins the identity
smoothly). Within bin ``k`` write ``w = x_{k+1} - x_k``, ``h = y_{k+1} - y_k``, ``s = h / w`` and
``t = (x - x_k) / w`` in ``[0, 1]``:

* quadratic order (Durkan et al., 2019, "Neural Spline Flows") is the ratio of two quadratics,
  ``y = y_k + h (s t^2 + d_k t (1 - t)) / (s + (d_k + d_{k+1} - 2 s) t (1 - t))``;
* linear order (Dolatabadi et al., 2020, "Linear Rational Splines") splits the bin at
  ``t = lam`` and uses a ratio of two linear functions on each side, with weights chosen so the
  value and the slope are continuous everywhere.

Both are increasing with a closed-form inverse, and the log-derivative comes out of the same pass.

>>> x = torch.tensor([-4.0, -1.0, 0.0, 2.5])
>>> ones = torch.ones(4) / 4
>>> y, log_dy_dx = rational_spline(x, ones, ones, torch.ones(3), None, bound=3.0)
>>> y  # equal bins and unit slopes: the identity
tensor([-4.0000, -1.0000,  0.0000,  2.5000])
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def spline_knots(lengths: torch.Tensor, bound: float) -> torch.Tensor:
    """The ``K + 1`` knot positions on ``[-bound, bound]`` of bins whose lengths, as fractions of
    the box, are ``lengths`` (last dim ``K``, summing to one). The end knots are exact.

    >>> spline_knots(torch.tensor([0.25, 0.75]), 2.0)
    tensor([-2., -1.,  2.])
    """
    inner = -bound + 2 * bound * lengths[..., :-1].cumsum(-1)
    return F.pad(F.pad(inner, (1, 0), value=-bound), (0, 1), value=bound)


def _pick(table: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """Each element's entry of ``table`` (last dim: bins) at its bin, broadcasting batch dims
    (the parameters of a conditioned spline may carry batch dims of their own)."""
    return (table * one_hot).sum(-1)


def _quadratic(t, w, h, s, d0, d1, y0):
    """Value and log-slope of the rational-quadratic piece at ``t`` in ``[0, 1]``."""
    middle = t * (1 - t)
    denominator = s + (d0 + d1 - 2 * s) * middle
    y = y0 + h * (s * t.square() + d0 * middle) / denominator
    slope = s.square() * (d1 * t.square() + 2 * s * middle + d0 * (1 - t).square())
    return y, slope.log() - 2 * denominator.log()


def _quadratic_inverse(y, w, h, s, d0, d1, y0):
    """``t`` in ``[0, 1]`` with ``_quadratic(t) == y``: the root of ``a t^2 + b t + c`` that lies
    in the bin, written as ``2c / (-b - sqrt(b^2 - 4ac))`` so it stays exact when ``a`` is 0."""
    rise = y - y0
    curvature = d0 + d1 - 2 * s
    a = h * (s - d0) + rise * curvature
    b = h * d0 - rise * curvature
    c = -s * rise
    discriminant = (b.square() - 4 * a * c).clamp(min=0)
    return 2 * c / (-b - discriminant.sqrt())


def _linear_weights(h, s, d0, d1, lam, y0):
    """The weights ``(w_b, w_c)`` at the right end and at the split (the left one is 1) and the
    value ``y_c`` at the split that make the linear rational spline continuous with slopes
    ``d0``, ``d1`` at the ends and the same slope from both sides of the split."""
    w_b = (d0 / d1).sqrt()
    w_c = (lam * d0 + (1 - lam) * w_b * d1) / s
    y_c = y0 + lam * w_b * h / ((1 - lam) + lam * w_b)
    return w_b, w_c, y_c


def _linear(t, w, h, s, d0, d1, lam, y0):
    """Value and log-slope of the linear rational piece at ``t`` in ``[0, 1]``."""
    w_b, w_c, y_c = _linear_weights(h, s, d0, d1, lam, y0)
    y1 = y0 + h
    # Each side is evaluated on its own half only (clamped), so neither side divides by zero
    # where it is not used: a NaN there would reach the gradients through torch.where.
    left_t = torch.minimum(t, lam)
    left_den = (lam - left_t) + w_c * left_t
    left_y = (y0 * (lam - left_t) + w_c * y_c * left_t) / left_den
    left_log_slope = (w_c * lam * (y_c - y0)).log() - 2 * left_den.log()
    right_t = torch.maximum(t, lam)
    right_den = w_c * (1 - right_t) + w_b * (right_t - lam)
    right_y = (w_c * y_c * (1 - right_t) + w_b * y1 * (right_t - lam)) / right_den
    right_log_slope = (w_b * w_c * (1 - lam) * (y1 - y_c)).log() - 2 * right_den.log()
    on_left = t <= lam
    y = torch.where(on_left, left_y, right_y)
    log_dy_dt = torch.where(on_left, left_log_slope, right_log_slope)
    return y, log_dy_dt - w.log()


def _linear_inverse(y, w, h, s, d0, d1, lam, y0):
    """``t`` in ``[0, 1]`` with ``_linear(t) == y``: each side's ratio solved for ``t``."""
    w_b, w_c, y_c = _linear_weights(h, s, d0, d1, lam, y0)
    y1 = y0 + h
    left_y = torch.minimum(y, y_c)
    left_t = lam * (y0 - left_y) / (y0 - w_c * y_c + left_y * (w_c - 1))
    right_y = torch.maximum(y, y_c)
    right_t = (w_c * (y_c - right_y) + lam * w_b * (right_y - y1)) / (
        w_c * y_c - w_b * y1 + right_y * (w_b - w_c)
    )
    return torch.where(y <= y_c, left_t, right_t)


def rational_spline(
    inputs: torch.Tensor,
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    lambdas: torch.Tensor | None,
    bound: float,
    inverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the spline (or its inverse) element-wise; return the result and ``log |dy/dx|``
    at the corresponding ``x`` (so the inverse's log-derivative is its negative).

    ``widths``/``heights`` (``(..., D, K)``, positive, summing to one over ``K``) are the bins'
    shares of the box, ``derivatives`` (``(..., D, K - 1)``, positive) the slopes at the inner
    knots, and ``lambdas`` (``(..., D, K)`` in ``(0, 1)``) the split points of a linear spline
    (``None``: quadratic). ``inputs`` is ``(..., D)``; the parameters' batch dims broadcast
    against it.

    >>> x = torch.tensor([[0.3, -1.2]])
    >>> w = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    >>> d = torch.tensor([[2.0], [0.5]])
    >>> y, _ = rational_spline(x, w, w.flip(-1), d, None, bound=3.0)
    >>> x_back, _ = rational_spline(y, w, w.flip(-1), d, None, bound=3.0, inverse=True)
    >>> torch.allclose(x_back, x)
    True
    """
    count_bins = widths.shape[-1]
    x_knots = spline_knots(widths, bound)
    y_knots = spline_knots(heights, bound)
    ones = torch.ones_like(derivatives[..., :1])
    # The slope is 1 at both ends, where the spline meets the identity outside the box.
    slopes = torch.cat([ones, derivatives, ones], dim=-1)

    inside = (inputs >= -bound) & (inputs <= bound)
    # Points outside the box are computed at its edge and then replaced, keeping every
    # intermediate finite.
    clamped = inputs.clamp(-bound, bound)
    knots = y_knots if inverse else x_knots
    bin_index = (clamped.unsqueeze(-1) >= knots[..., 1:-1]).sum(-1)
    one_hot = F.one_hot(bin_index, count_bins).to(inputs.dtype)

    x0 = _pick(x_knots[..., :-1], one_hot)
    y0 = _pick(y_knots[..., :-1], one_hot)
    w = _pick(x_knots[..., 1:] - x_knots[..., :-1], one_hot)
    h = _pick(y_knots[..., 1:] - y_knots[..., :-1], one_hot)
    d0 = _pick(slopes[..., :-1], one_hot)
    d1 = _pick(slopes[..., 1:], one_hot)
    s = h / w

    if lambdas is None:
        if inverse:
            t = _quadratic_inverse(clamped, w, h, s, d0, d1, y0)
            _, log_dy_dx = _quadratic(t, w, h, s, d0, d1, y0)
        else:
            t = (clamped - x0) / w
            y, log_dy_dx = _quadratic(t, w, h, s, d0, d1, y0)
    else:
        lam = _pick(lambdas, one_hot)
        if inverse:
            t = _linear_inverse(clamped, w, h, s, d0, d1, lam, y0)
            _, log_dy_dx = _linear(t, w, h, s, d0, d1, lam, y0)
        else:
            t = (clamped - x0) / w
            y, log_dy_dx = _linear(t, w, h, s, d0, d1, lam, y0)

    outputs = x0 + t * w if inverse else y
    outputs = torch.where(inside, outputs, inputs)
    log_dy_dx = torch.where(inside, log_dy_dx, torch.zeros_like(log_dy_dx))
    return outputs, log_dy_dx
