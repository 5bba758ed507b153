"""Dirichlet and beta laws whose ``rsample`` normalises reparameterised gamma draws.

torch draws a Dirichlet with its own implicit-gradient kernel; these "naive" versions draw
``Gamma(concentration_i, 1)`` values with their (also implicit) gradients and divide by the sum.
The law is the same, so tests use them to check gradient estimators against a second route.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number

import torch

from engine.distributions.torch_wrappers import Beta, Dirichlet, Gamma


class NaiveDirichlet(Dirichlet):
    """``Dirichlet(concentration)`` drawn as normalised gamma draws.

    >>> x = NaiveDirichlet(torch.tensor([1.0, 2.0, 3.0])).rsample()
    >>> bool(torch.isclose(x.sum(), torch.tensor(1.0)))
    True
    """

    has_rsample = True

    def __init__(self, concentration: torch.Tensor, validate_args: bool | None = None):
        super().__init__(concentration, validate_args=validate_args)
        self._gamma = Gamma(concentration, torch.ones_like(concentration))

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        gammas = self._gamma.rsample(sample_shape)
        return gammas / gammas.sum(-1, keepdim=True)


class NaiveBeta(Beta):
    """``Beta(concentration1, concentration0)`` drawn as ``g1 / (g1 + g0)`` from gamma draws.

    >>> x = NaiveBeta(torch.tensor(2.0), torch.tensor(3.0)).rsample((4,))
    >>> bool(((x > 0) & (x < 1)).all())
    True
    """

    has_rsample = True

    def __init__(
        self,
        concentration1: torch.Tensor | Number,
        concentration0: torch.Tensor | Number,
        validate_args: bool | None = None,
    ):
        super().__init__(concentration1, concentration0, validate_args=validate_args)
        both = torch.stack([self.concentration1, self.concentration0], dim=-1)
        self._gamma = Gamma(both, torch.ones_like(both))

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        gammas = self._gamma.rsample(sample_shape)
        return gammas[..., 0] / gammas.sum(-1)
