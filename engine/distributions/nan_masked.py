"""Normal and multivariate normal likelihoods that treat NaN in an observation as "missing".

Data with holes is common (a sensor that dropped a reading, a survey question left blank). Writing
the holes as NaN and observing them with :class:`NanMaskedNormal` or
:class:`NanMaskedMultivariateNormal` scores only what was seen: a missing scalar contributes 0 to
``log_prob``, and a vector with some missing coordinates contributes the density of its observed
coordinates under the marginal of the multivariate normal. Gradients stay finite.

>>> import math, torch
>>> d = NanMaskedNormal(torch.zeros(3), 1.0)
>>> d.log_prob(torch.tensor([0.0, math.nan, 0.0]))
tensor([-0.9189,  0.0000, -0.9189])
"""

from __future__ import annotations

import math

import torch

from engine.distributions.torch_wrappers import MultivariateNormal, Normal

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class _NanMasked:
    """What both NaN-masked families share: validation and scoring of a value whose NaN entries
    are missing. A value with no NaN takes the base family's ``log_prob``; one with holes goes to
    the subclass's ``_log_prob_with_holes``. Listed before the base family in the bases."""

    def _validate_sample(self, value: torch.Tensor) -> None:
        super()._validate_sample(_filled(value))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        observed = ~value.isnan()
        if bool(observed.all()):
            return super().log_prob(value)
        return self._log_prob_with_holes(value, observed)

    def _base_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """The base family's ``log_prob`` (the class after this one in the MRO)."""
        return super().log_prob(value)

    def _log_prob_with_holes(self, value: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NanMaskedNormal(_NanMasked, Normal):
    """``Normal`` whose ``log_prob`` is 0 at NaN entries of the value (missing observations).

    Draws are ordinary Normal draws.

    >>> import math, torch
    >>> loc = torch.zeros(2, requires_grad=True)
    >>> lp = NanMaskedNormal(loc, 1.0).log_prob(torch.tensor([1.0, math.nan])).sum()
    >>> torch.autograd.grad(lp, loc)[0]
    tensor([1., 0.])
    """

    def _log_prob_with_holes(self, value: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        # Score a harmless stand-in where the value is missing, then zero those entries: the
        # stand-in keeps NaN out of the gradients, which torch.where would otherwise propagate.
        log_prob = self._base_log_prob(_filled(value))
        return torch.where(observed, log_prob, torch.zeros((), dtype=log_prob.dtype))


class NanMaskedMultivariateNormal(_NanMasked, MultivariateNormal):
    """``MultivariateNormal`` whose ``log_prob`` ignores NaN coordinates of the value.

    A vector with missing coordinates scores the density of its observed coordinates under the
    marginal distribution of those coordinates; an entirely missing vector scores 0.

    >>> import math, torch
    >>> cov = torch.tensor([[1.0, 0.5], [0.5, 2.0]])
    >>> d = NanMaskedMultivariateNormal(torch.zeros(2), cov)
    >>> lp = d.log_prob(torch.tensor([math.nan, 1.0]))
    >>> torch.allclose(lp, Normal(0.0, math.sqrt(2.0)).log_prob(torch.tensor(1.0)))
    True
    """

    def _log_prob_with_holes(self, value: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        # The marginal of the observed coordinates, for every pattern of holes at once: cut the
        # missing coordinates loose (zero covariance with the rest, unit variance, residual 0).
        # The joint density of that normal is the observed marginal times one standard normal
        # density at 0 per missing coordinate, which is divided out again at the end.
        shape = torch.broadcast_shapes(value.shape, self.loc.shape)
        observed = observed.expand(shape)
        both = observed.unsqueeze(-1) & observed.unsqueeze(-2)
        eye = torch.eye(shape[-1], dtype=value.dtype, device=value.device)
        covariance = torch.where(both, self.covariance_matrix, eye)
        residual = torch.where(observed, value - self.loc, torch.zeros((), dtype=value.dtype))
        scale_tril = torch.linalg.cholesky(covariance)
        white = torch.linalg.solve_triangular(scale_tril, residual.unsqueeze(-1), upper=False)
        half_log_det = scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        n_observed = observed.sum(-1).to(value.dtype)
        return (
            -0.5 * white.squeeze(-1).pow(2).sum(-1) - half_log_det - n_observed * (_HALF_LOG_TWO_PI)
        )


def _filled(value: torch.Tensor) -> torch.Tensor:
    """``value`` with each NaN replaced by 0 (a point inside the real line's support)."""
    return torch.where(value.isnan(), torch.zeros((), dtype=value.dtype), value)
