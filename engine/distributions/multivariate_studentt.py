"""``MultivariateStudentT``: a heavy-tailed multivariate law for robust regression and priors.

It is a multivariate normal whose covariance is divided by a ``Gamma(df/2, df/2)`` draw, so one
shared scale factor fattens every direction's tails. Draws use exactly that construction, which
is reparameterised because both the normal and torch's gamma sampler are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Number
from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from engine.distributions.param_expand import expand_params
from engine.distributions.torch_distribution import TorchDistribution
from engine.distributions.util import broadcast_shape
from engine.errors import ShapeError, fmt_shape


class MultivariateStudentT(TorchDistribution):
    """Student's t in ``d`` dims with ``df`` degrees of freedom, location ``loc`` and
    lower-triangular scale ``scale_tril`` (the covariance is ``df / (df - 2) * L @ L.T``).

    >>> L = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    >>> d = MultivariateStudentT(4.0, torch.zeros(2), L)
    >>> d.variance  # 4 / 2 * (1, 0.25 + 4)
    tensor([2.0000, 8.5000])
    """

    arg_constraints = {
        "df": constraints.positive,
        "loc": constraints.real_vector,
        "scale_tril": constraints.lower_cholesky,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        df: torch.Tensor | Number,
        loc: torch.Tensor,
        scale_tril: torch.Tensor,
        validate_args: bool | None = None,
    ):
        loc = torch.as_tensor(loc)
        scale_tril = torch.as_tensor(scale_tril, dtype=loc.dtype)
        if loc.dim() < 1 or scale_tril.dim() < 2 or scale_tril.shape[-2:] != loc.shape[-1:] * 2:
            raise ShapeError(
                "MultivariateStudentT: loc must be a vector of size d and scale_tril a d x d "
                f"lower-triangular matrix; got loc {fmt_shape(loc.shape)} and scale_tril "
                f"{fmt_shape(scale_tril.shape)}."
            )
        dim = loc.shape[-1]
        df = torch.as_tensor(df, dtype=loc.dtype, device=loc.device)
        batch_shape = broadcast_shape(df.shape, loc.shape[:-1], scale_tril.shape[:-2])
        self.df = df.expand(batch_shape)
        self.loc = loc.expand((*batch_shape, dim))
        self.scale_tril = scale_tril.expand((*batch_shape, dim, dim))
        super().__init__(batch_shape, (dim,), validate_args=validate_args)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> MultivariateStudentT:
        return expand_params(
            self,
            MultivariateStudentT,
            batch_shape,
            _instance,
            event_dims={"loc": 1, "scale_tril": 2},
        )

    @lazy_property
    def covariance_matrix(self) -> torch.Tensor:
        # The scale matrix L L^T (Pyro's meaning of the name), not the covariance df/(df-2) L L^T.
        return self.scale_tril @ self.scale_tril.transpose(-1, -2)

    @lazy_property
    def precision_matrix(self) -> torch.Tensor:
        return torch.cholesky_inverse(self.scale_tril)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        z = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        half_df = self.df.expand(shape[:-1]) / 2
        # chi2(df) / df = Gamma(df/2, rate=df/2)
        w = torch._standard_gamma(half_df) / half_df
        y = (self.scale_tril @ z.unsqueeze(-1)).squeeze(-1)
        return self.loc + y * w.rsqrt().unsqueeze(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        dim = self.event_shape[0]
        diff = (value - self.loc).unsqueeze(-1)
        scale_tril = self.scale_tril.expand(diff.shape[:-2] + self.scale_tril.shape[-2:])
        solved = torch.linalg.solve_triangular(scale_tril, diff, upper=False).squeeze(-1)
        mahalanobis = solved.pow(2).sum(-1)
        df = self.df
        log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return (
            torch.lgamma((df + dim) / 2)
            - torch.lgamma(df / 2)
            - dim / 2 * torch.log(df * math.pi)
            - log_det
            - (df + dim) / 2 * torch.log1p(mahalanobis / df)
        )

    @property
    def mean(self) -> torch.Tensor:
        # Defined only for df > 1.
        undefined = (self.df <= 1).unsqueeze(-1).expand(self.loc.shape)
        return self.loc.masked_fill(undefined, math.nan)

    @property
    def variance(self) -> torch.Tensor:
        df = self.df.unsqueeze(-1)
        scale2 = self.scale_tril.pow(2).sum(-1)
        var = scale2 * df / (df - 2)
        var = var.masked_fill((df <= 2) & (df > 1), math.inf)
        return var.masked_fill(df <= 1, math.nan)
