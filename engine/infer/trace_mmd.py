"""``Trace_MMD``: the ELBO's KL term replaced by a maximum mean discrepancy (the MMD-VAE of
InfoVAE, Zhao, Song and Ermon, 2019).

The loss is::

    -E_q[log p(x | z)]  +  sum over latent sites s of  mmd_scale[s] * MMD^2(q(z_s), p(z_s))

The first term is the expected log-likelihood of the observed sites (the model replayed on the
guide's draws). The second compares, site by site, the guide's draws with draws of the prior
(the model run on its own, ancestrally): ``MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y)``
for a positive-definite kernel ``k``, which is zero exactly when P = Q for a characteristic
kernel (a Gaussian RBF, for instance; Gretton et al., 2012). It is estimated here without bias
from the ``num_particles`` draws of each side (the U-statistic, which leaves out each draw's
kernel value with itself), so gradients flow through both sets of draws: the guide's latent
sites and the model's latent sites must be reparameterizable.

Each draw of a site is one point of the kernel's input space: everything but the particles
(the site's plates included) is flattened into its coordinates, so a site's points have as many
coordinates as one particle has numbers, and ``num_particles`` must be large (tens to
hundreds) for the estimate to be useful; drawing them vectorised (the default) is far faster.

A kernel is any callable ``kernel(X, Z)`` that takes two point sets of shapes ``(n, d)`` and
``(m, d)`` and returns their ``(n, m)`` Gram matrix, the call signature of Pyro's
``pyro.contrib.gp.kernels`` (whose instances work here unchanged). The kernel is held fixed:
a ``torch.nn.Module`` kernel's parameters are frozen, as it is not trained with the loss.

>>> import torch, engine as pyro, engine.distributions as dist
>>> pyro.clear_param_store()
>>> def rbf(X, Z):
...     return torch.exp(-0.5 * (X[:, None, :] - Z[None, :, :]).pow(2).sum(-1))
>>> def model():
...     pyro.sample("z", dist.Normal(0.0, 1.0))
>>> def guide():
...     pyro.sample("z", dist.Normal(pyro.param("loc", torch.tensor(3.0)), 1.0))
>>> loss = Trace_MMD(kernel=rbf, num_particles=200).differentiable_loss(model, guide)
>>> bool(loss > 0.2), loss.requires_grad  # q is far from p: a clear discrepancy, to descend
(True, True)
>>> pyro.clear_param_store()
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import torch

from engine.errors import ArgumentError, ReparamError, describe_site, fmt_shape
from engine.infer.elbo import ELBO, PARTICLE_PLATE
from engine.infer.trace_elbo import is_reparameterized, site_total
from engine.infer.util import plate_position, vectorize
from engine.poutine.handlers import trace
from engine.poutine.trace_struct import Trace, compute_site_log_prob
from engine.runtime import Message

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mmd_squared(x: torch.Tensor, y: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """The unbiased estimate of ``MMD^2`` between the distributions of the rows of ``x``
    ``(n, d)`` and of ``y`` ``(m, d)`` (n, m >= 2), under ``kernel``.

    >>> def rbf(X, Z):
    ...     return torch.exp(-0.5 * (X[:, None, :] - Z[None, :, :]).pow(2).sum(-1))
    >>> here, far = torch.zeros(3, 1), torch.full((3, 1), 10.0)
    >>> mmd_squared(here, here, rbf), mmd_squared(here, far, rbf)  # the least and the most
    (tensor(0.), tensor(2.))
    """
    k_xx = _gram(kernel, x, x)
    k_yy = _gram(kernel, y, y)
    k_xy = _gram(kernel, x, y)
    return _off_diagonal_mean(k_xx) + _off_diagonal_mean(k_yy) - 2.0 * k_xy.mean()


def _gram(kernel: Kernel, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    gram = kernel(x, z)
    expected = (x.shape[0], z.shape[0])
    if not isinstance(gram, torch.Tensor) or tuple(gram.shape) != expected:
        got = fmt_shape(gram.shape) if isinstance(gram, torch.Tensor) else type(gram).__name__
        raise ArgumentError(
            f"Trace_MMD: kernel(X, Z) with X of shape {fmt_shape(x.shape)} and Z of shape "
            f"{fmt_shape(z.shape)} returned {got}; a kernel must return the Gram matrix of "
            f"shape {fmt_shape(expected)} (one value per pair of rows)."
        )
    return gram


def _off_diagonal_mean(gram: torch.Tensor) -> torch.Tensor:
    n = gram.shape[0]
    return (gram.sum() - gram.diagonal().sum()) / (n * (n - 1))


def _is_scale(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


class Trace_MMD(ELBO):
    """The MMD-regularised objective; see the module docstring.

    ``kernel`` is one kernel for every latent site, or a dict from site name to kernel;
    ``mmd_scale`` (default 1) weighs the MMD terms, one number or a dict from site name to
    number. ``num_particles`` (at least 2, default 10) draws of the guide and of the prior are
    compared per step, in one vectorised run unless ``vectorize_particles=False``.

    >>> try:
    ...     Trace_MMD(kernel="rbf")
    ... except ArgumentError as error:
    ...     print(str(error)[:65])
    Trace_MMD(kernel='rbf'): a kernel must be a callable kernel(X, Z)
    """

    def __init__(
        self,
        kernel: Kernel | Mapping[str, Kernel],
        mmd_scale: float | Mapping[str, float] = 1,
        num_particles: int = 10,
        max_plate_nesting: int | float = math.inf,
        vectorize_particles: bool = True,
        strict_enumeration_warning: bool = True,
        ignore_jit_warnings: bool = False,
        retain_graph: bool | None = None,
    ):
        if not (isinstance(num_particles, int) and num_particles >= 2):
            raise ArgumentError(
                f"Trace_MMD(num_particles={num_particles!r}): the MMD compares draws with each "
                "other, so it needs num_particles >= 2 (tens to hundreds in practice)."
            )
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
            ignore_jit_warnings=ignore_jit_warnings,
            retain_graph=retain_graph,
        )
        self.kernel = kernel
        self.mmd_scale = mmd_scale

    # -- settings ------------------------------------------------------------------------------

    @property
    def kernel(self) -> Kernel | Mapping[str, Kernel]:
        """The kernel (or the dict of kernels by site name) the MMD terms use."""
        return self._kernel

    @kernel.setter
    def kernel(self, kernel: Kernel | Mapping[str, Kernel]) -> None:
        kernels = kernel.values() if isinstance(kernel, Mapping) else [kernel]
        for each in kernels:
            if not callable(each):
                raise ArgumentError(
                    f"Trace_MMD(kernel={kernel!r}): a kernel must be a callable kernel(X, Z) "
                    "returning the Gram matrix of two point sets (for instance a "
                    "pyro.contrib.gp.kernels instance), or a dict from latent site name to such "
                    "a callable."
                )
            if isinstance(each, torch.nn.Module):
                each.requires_grad_(False)  # a fixed kernel: the loss does not train it
        self._kernel = kernel

    @property
    def mmd_scale(self) -> float | Mapping[str, float]:
        """The weight of the MMD terms (or the dict of weights by site name)."""
        return self._mmd_scale

    @mmd_scale.setter
    def mmd_scale(self, mmd_scale: float | Mapping[str, float]) -> None:
        scales = mmd_scale.values() if isinstance(mmd_scale, Mapping) else [mmd_scale]
        if not all(_is_scale(scale) for scale in scales):
            raise ArgumentError(
                f"Trace_MMD(mmd_scale={mmd_scale!r}): the weight of the MMD terms must be a "
                "finite number >= 0, or a dict from latent site name to such a number."
            )
        self._mmd_scale = mmd_scale

    def _setting_for(self, setting: Any, what: str, site: Message) -> Any:
        if not isinstance(setting, Mapping):
            return setting
        if site["name"] not in setting:
            raise ArgumentError(
                f"Trace_MMD: the {what} dict has no entry for the latent site "
                f"{describe_site(site)} (it has {sorted(setting)}). Fix: add one for every "
                f"latent site of the guide, or pass one {what} for all of them."
            )
        return setting[site["name"]]

    # -- the loss ------------------------------------------------------------------------------

    def _prior_trace(self, model: Callable, args: tuple, kwargs: dict[str, Any]) -> Trace:
        """The model run on its own: ancestral draws of the prior, as many as the guide's."""
        if self.vectorize_particles:
            nesting = int(self.max_plate_nesting)
            model = vectorize(model, self.num_particles, nesting, PARTICLE_PLATE)
        return trace(model).get_trace(*args, **kwargs)

    def _points(self, site: Message) -> torch.Tensor:
        """A site's draws as points: one row per particle, everything else flattened."""
        value = site["value"]
        if not self.vectorize_particles:
            return value.reshape(1, -1)
        dim = plate_position(site, PARTICLE_PLATE)
        return value.movedim(dim, 0).reshape(value.shape[dim], -1)

    def _loss_parts(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The expected log-likelihood of the data and the weighted sum of the MMD terms."""
        guide_points: dict[str, list[torch.Tensor]] = defaultdict(list)
        prior_points: dict[str, list[torch.Tensor]] = defaultdict(list)
        latent_sites: dict[str, Message] = {}
        log_likelihood = torch.zeros(())
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            prior_trace = self._prior_trace(model, args, kwargs)
            for name, site in model_trace.sample_sites():
                if site["is_observed"]:
                    if "log_prob" not in site:
                        compute_site_log_prob(site)
                    log_likelihood = log_likelihood + site_total(site).sum()
                    continue
                guide_site = guide_trace.nodes.get(name)
                if guide_site is None:
                    continue  # drawn from its prior (allowed only with the model checks off)
                prior_site = prior_trace.nodes.get(name)
                if prior_site is None:
                    raise ArgumentError(
                        f"Trace_MMD: the model's run on its own never reached the latent site "
                        f"{describe_site(site)} that the guide samples, so it has no prior draws "
                        "to compare the guide's with. The MMD needs a model whose latent sites "
                        "appear in every run."
                    )
                for part, each in (("guide", guide_site), ("model", prior_site)):
                    if not is_reparameterized(each):
                        raise ReparamError(
                            f"Trace_MMD: the {part}'s site {describe_site(each)} draws from a "
                            f"{type(each['fn']).__name__} without rsample, and the MMD's "
                            "gradients flow through the draws. Fix: use a reparameterizable "
                            "distribution there, or train with an ELBO instead."
                        )
                latent_sites[name] = guide_site
                guide_points[name].append(self._points(guide_site))
                prior_points[name].append(self._points(prior_site))
        penalty = torch.zeros(())
        for name, site in latent_sites.items():
            kernel = self._setting_for(self._kernel, "kernel", site)
            scale = self._setting_for(self._mmd_scale, "mmd_scale", site)
            discrepancy = mmd_squared(
                torch.cat(prior_points[name]), torch.cat(guide_points[name]), kernel
            )
            penalty = penalty + scale * discrepancy
        return log_likelihood / self.num_particles, penalty

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The loss as a tensor whose gradient is the estimator's."""
        log_likelihood, penalty = self._loss_parts(model, guide, args, kwargs)
        return penalty - log_likelihood

    def loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """The loss's estimate, as a number (no gradients)."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """The loss's estimate, with its gradient accumulated into the parameters' ``.grad``."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return loss.item()
