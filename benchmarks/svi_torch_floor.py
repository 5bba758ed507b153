"""The floor of an SVI step: the linear-regression workloads' loss written by hand in torch.

The same objective as WORKLOADS.md's svi_small and svi_plate_large (AutoNormal guide over ``w``,
``b`` and ``sigma``, ``sigma`` moved in log space with its log|Jacobian|, one particle, Adam with
lr 0.01), with every density written out as arithmetic: no handlers, no distribution objects, no
checks. It is what a careful user would write without a PPL, and so the floor a PPL's step is
measured against (``run_svi.py --impls torch engine``).

>>> import torch
>>> from benchmarks.svi_workloads import linreg_data
>>> x, y = linreg_data(100, 3, 0)
>>> step = HandWrittenLinearRegression(x.shape[1])
>>> first = step(x, y)
>>> later = [step(x, y) for _ in range(2000)][-100:]
>>> sum(later) / len(later) < first  # it learns
True
"""

from __future__ import annotations

import math

import torch

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _normal_log_density(
    value: torch.Tensor, loc: torch.Tensor | float, scale: torch.Tensor | float
) -> torch.Tensor:
    z = (value - loc) / scale
    log_scale = scale.log() if isinstance(scale, torch.Tensor) else math.log(scale)
    return -0.5 * z * z - log_scale - _HALF_LOG_2PI


class HandWrittenLinearRegression:
    """One SVI step of the regression ``y ~ Normal(x @ w + b, sigma)`` per call: returns the loss
    (the negative ELBO estimate) as a float, after Adam's update."""

    def __init__(self, num_features: int, lr: float = 0.01):
        self.num_features = num_features
        log_scale = math.log(0.1)  # AutoNormal's init_scale, stored in log space (exp transform)
        self.params = [
            torch.zeros(num_features + 2, requires_grad=True),  # locs of w, b and log(sigma)
            torch.full((num_features + 2,), log_scale, requires_grad=True),  # their log scales
        ]
        self.optimizer = torch.optim.Adam(
            self.params, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True
        )

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        locs, log_scales = self.params
        scales = log_scales.exp()
        noise = torch.randn_like(locs)
        latent = locs + scales * noise
        w, b, log_sigma = latent[:-2], latent[-2], latent[-1]
        sigma = log_sigma.exp()
        # log q of each draw (reparameterised Normal), and the priors: w ~ N(0, 1),
        # b ~ N(0, 10), sigma ~ HalfNormal(1) with the log|Jacobian| of sigma = exp(log_sigma).
        log_q = (-0.5 * noise * noise - log_scales - _HALF_LOG_2PI).sum()
        log_prior = (
            _normal_log_density(w, 0.0, 1.0).sum()
            + _normal_log_density(b, 0.0, 10.0)
            + (_normal_log_density(sigma, 0.0, 1.0) + math.log(2.0))
            + log_sigma
        )
        log_likelihood = _normal_log_density(y, x @ w + b, sigma).sum()
        loss = -(log_likelihood + log_prior - log_q)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()
