"""``AutoLaplaceApproximation``: find the MAP point, then fit a Gaussian by its curvature there.

Trained like ``AutoDelta`` (its one param, ``AutoLaplaceApproximation.loc``, is the MAP point in
unconstrained space), then :meth:`AutoLaplaceApproximation.laplace_approximation` returns an
``AutoMultivariateNormal`` centred at ``loc`` whose covariance is the inverse Hessian of the
negative log joint density (in unconstrained space, log|Jacobian| included) at ``loc``.

>>> import engine, engine.distributions as dist
>>> engine.clear_param_store()
>>> def model():
...     engine.sample("x", dist.Normal(1.0, 2.0))
>>> guide = AutoLaplaceApproximation(model, init_loc_fn=lambda site: torch.tensor(1.0))
>>> gaussian = guide.laplace_approximation()
>>> gaussian.get_posterior().covariance_matrix
tensor([[4.]], grad_fn=<ExpandBackward0>)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from engine.distributions import Delta, constraints
from engine.errors import AutoGuideError
from engine.infer.autoguide.continuous import AutoContinuous
from engine.infer.autoguide.guide import GuideParam
from engine.infer.autoguide.initialization import InitFn, init_to_median
from engine.infer.autoguide.multivariate import AutoMultivariateNormal
from engine.infer.guide_then_model import guide_and_model_traces
from engine.params import get_param_store
from engine.primitives import param

__all__ = ["AutoLaplaceApproximation"]


class AutoLaplaceApproximation(AutoContinuous):
    """A point mass at ``loc`` over the flat unconstrained vector, for MAP training, plus the
    Laplace approximation around it.

    >>> import engine, engine.distributions as dist
    >>> engine.clear_param_store()
    >>> def model():
    ...     engine.sample("s", dist.HalfNormal(1.0))
    >>> sorted(AutoLaplaceApproximation(model, model_args=()).state_dict())
    ['loc']
    """

    def __init__(
        self,
        model: Callable,
        init_loc_fn: InitFn = init_to_median,
        *,
        create_plates: Callable | None = None,
        model_args: tuple | None = None,
        model_kwargs: dict | None = None,
    ):
        super().__init__(model, init_loc_fn, create_plates=create_plates)
        self._setup_if_given(model_args, model_kwargs)

    def _posterior_params(self, init_loc: torch.Tensor) -> list[GuideParam]:
        self._loc = GuideParam("loc", "loc", init_loc, constraints.real)
        return [self._loc]

    def get_posterior(self, *args: Any, **kwargs: Any) -> torch.distributions.Distribution:
        """A point mass at ``loc``."""
        p = self._loc
        return Delta(param(p.name, p.init, p.constraint, p.event_dim), event_dim=1)

    def _loc_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise AutoGuideError(
            "AutoLaplaceApproximation is a point estimate and has no spread: its median is the "
            "MAP point, but for quantiles build the Gaussian first: "
            "guide.laplace_approximation(*model_args).quantiles(...)."
        )

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Every site at the MAP point ``loc``, mapped onto its support."""
        self._setup_once(args, kwargs)
        return self._constrain_all(self._value(self._loc))

    def laplace_approximation(self, *args: Any, **kwargs: Any) -> AutoMultivariateNormal:
        """The Gaussian approximation at the current ``loc``: an ``AutoMultivariateNormal`` (its
        params ``AutoMultivariateNormal.loc``, ``.scale``, ``.scale_tril`` set in the param
        store) with covariance ``H⁻¹``, ``H`` the Hessian of the loss at ``loc``."""
        self._prepare(args, kwargs)
        loc = self._leaf(self._loc)
        guide_trace, model_trace = guide_and_model_traces(self.model, self, args, kwargs)
        loss = guide_trace.log_prob_sum() - model_trace.log_prob_sum()
        (grad,) = torch.autograd.grad(loss, loc, create_graph=True)
        rows = [
            torch.autograd.grad(grad[i], loc, retain_graph=i + 1 < len(grad))[0]
            for i in range(len(grad))
        ]
        hessian = torch.stack(rows).detach()
        hessian = (hessian + hessian.T) / 2
        covariance_tril = _inverse_cholesky(hessian, self.latent_dim)
        # AutoMultivariateNormal's factor is scale[:, None] * unit-lower-triangular.
        scale = covariance_tril.diagonal()
        gaussian = AutoMultivariateNormal(self.model, init_loc_fn=self.init_loc_fn)
        gaussian.setup(*args, **kwargs)
        store = get_param_store()
        store[gaussian._loc.name] = loc.detach().clone()
        store[gaussian._scale.name] = scale
        store[gaussian._scale_tril.name] = covariance_tril / scale[:, None]
        return gaussian


def _inverse_cholesky(hessian: torch.Tensor, dim: int) -> torch.Tensor:
    """The Cholesky factor of ``hessian⁻¹``; an error when the Hessian is not positive definite."""
    factor, info = torch.linalg.cholesky_ex(hessian)
    if int(info) != 0 or not bool(torch.isfinite(hessian).all()):
        raise AutoGuideError(
            f"AutoLaplaceApproximation: the Hessian of the loss at loc ({dim} x {dim}) is not "
            "positive definite, so loc is not a (strict) local optimum. Train the guide longer "
            "(SVI with this guide finds the MAP point), then call laplace_approximation again."
        )
    covariance = torch.cholesky_inverse(factor)
    return torch.linalg.cholesky(covariance)
