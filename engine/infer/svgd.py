"""``SVGD``: Stein variational gradient descent, a set of particles pushed together towards a
model's posterior, with its kernels ``RBFSteinKernel`` and ``IMQSteinKernel``.

Each particle is one point of the model's latent sites, packed into one flat unconstrained vector
(the layout HMC moves on, :class:`~engine.infer.mcmc.potential.Potential`). A step moves every
particle ``x_m`` along

    phi(x_m) = mean over n of  k(x_n, x_m) * grad log p(x_n)  +  grad_{x_n} k(x_n, x_m)

(Liu and Wang, 2016): the first term pulls the particles up the log density, weighted by how
near they are, the second pushes them apart, so they spread over the posterior instead of all
climbing to its mode. ``log p`` includes the log|Jacobian| of each site's map from unconstrained
space, so the particles, mapped back, are draws of the posterior on the sites' supports. The
particles live in the param store as ``"svgd_particles"`` (shape ``(num_particles, D)``), so an
``engine.optim`` optimizer moves them and the store's save/load keeps them.

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.optim import Adam
>>> def model():
...     pyro.sample("scale", dist.LogNormal(0.0, 0.5))
>>> svgd = SVGD(model, RBFSteinKernel(), Adam({"lr": 0.1}), num_particles=20, max_plate_nesting=0)
>>> for _ in range(3):
...     squared_steps = svgd.step()
>>> sorted(squared_steps), svgd.get_named_particles()["scale"].shape
(['scale'], torch.Size([20]))
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch

from engine.argument_checks import as_count
from engine.errors import ArgumentError, NonFiniteError, ParamError, fmt_shape
from engine.infer.autoguide.initialization import init_to_sample
from engine.infer.mcmc.potential import Potential
from engine.params import get_param_store

__all__ = ["SVGD", "IMQSteinKernel", "RBFSteinKernel", "SteinKernel"]

PARTICLES_PARAM = "svgd_particles"
_MODES = ("univariate", "multivariate")


class SteinKernel(ABC):
    """A kernel for :class:`SVGD`, given as its logarithm per dimension.

    :meth:`log_kernel_and_grad` takes the particles ``x`` (N, D) and returns two (N, N, D)
    tensors: ``log_kernel[n, m, d]``, the log of the kernel between particles ``n`` and ``m``
    along dimension ``d``, and ``kernel_grad[n, m, d]``, its derivative with respect to
    ``x[n, d]``. SVGD's ``"univariate"`` mode uses one kernel per dimension,
    ``exp(log_kernel[n, m, d])``; its ``"multivariate"`` mode their product,
    ``exp(log_kernel[n, m].sum())``, whose log has the same derivatives.
    """

    @abstractmethod
    def log_kernel_and_grad(self, particles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_kernel, kernel_grad)``, both (N, N, D), for ``particles`` (N, D)."""


class _MedianBandwidthKernel(SteinKernel):
    """A stationary kernel of the scaled squared distance ``(x_nd - x_md)^2 / h_d`` whose
    bandwidth ``h_d`` follows the particles: the median over pairs of particles of their squared
    distance along dimension ``d``, divided by ``log(N + 1)`` (Liu and Wang's heuristic, which
    makes a particle's kernel weights over the others sum to about one), times
    :attr:`bandwidth_factor`."""

    def __init__(self, bandwidth_factor: float | None = None):
        self.bandwidth_factor = bandwidth_factor

    @property
    def bandwidth_factor(self) -> float:
        """The factor the heuristic bandwidth is multiplied by (1.0 unless set). A schedule
        that grows it during a run lets the particles spread out more at the end."""
        return self._bandwidth_factor

    @bandwidth_factor.setter
    def bandwidth_factor(self, factor: float | None) -> None:
        factor = 1.0 if factor is None else float(factor)
        if not (math.isfinite(factor) and factor > 0):
            raise ArgumentError(
                f"{type(self).__name__}: bandwidth_factor={factor} must be a positive number "
                "(it scales the kernel's bandwidth; None means 1.0)."
            )
        self._bandwidth_factor = factor

    def bandwidth(self, squared_distances: torch.Tensor) -> torch.Tensor:
        """The bandwidth per dimension (D,) from the (N, N, D) squared distances.

        >>> x = torch.tensor([[0.0], [1.0], [3.0]])
        >>> RBFSteinKernel().bandwidth((x - x.unsqueeze(1)) ** 2)  # median of 1, 4, 9; log 4
        tensor([2.8854])
        """
        n = squared_distances.shape[0]
        rows, cols = torch.triu_indices(n, n, offset=1, device=squared_distances.device)
        pairs = squared_distances[rows, cols]
        if len(pairs) == 0:  # a single particle: no spread to measure
            median = torch.ones_like(squared_distances[0, 0])
        else:
            median = pairs.quantile(0.5, dim=0)
        # Particles that coincide along a dim (no spread yet) would give h = 0: keep the
        # kernel finite there, where it is flat in that dim anyway.
        tiny = torch.finfo(squared_distances.dtype).tiny
        return (self.bandwidth_factor * median / math.log(n + 1)).clamp(min=tiny)

    def log_kernel_and_grad(self, particles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See :class:`SteinKernel`."""
        differences = particles.unsqueeze(1) - particles  # [n, m] = x_n - x_m
        squared = differences.square()
        h = self.bandwidth(squared)
        return self._log_kernel_and_grad(differences, squared / h, h)

    @abstractmethod
    def _log_kernel_and_grad(
        self, differences: torch.Tensor, scaled: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The log kernel of the scaled squared distances, and its derivative in ``x_n``."""


class RBFSteinKernel(_MedianBandwidthKernel):
    """The Gaussian (RBF) kernel ``k(x, y) = exp(-(x - y)^2 / h)`` per dimension, with the
    median bandwidth of the particles (times ``bandwidth_factor``, 1.0 by default).

    >>> x = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    >>> log_kernel, kernel_grad = RBFSteinKernel().log_kernel_and_grad(x)
    >>> log_kernel.shape, bool((log_kernel.diagonal() == 0).all())
    (torch.Size([2, 2, 2]), True)
    """

    def _log_kernel_and_grad(
        self, differences: torch.Tensor, scaled: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return -scaled, -2.0 * differences / h


class IMQSteinKernel(_MedianBandwidthKernel):
    """The inverse multi-quadratic kernel ``k(x, y) = (alpha + (x - y)^2 / h)^beta`` per
    dimension (Chen et al., "Stein Points"), with the median bandwidth of the particles (times
    ``bandwidth_factor``). Its tails are heavier than the RBF kernel's, so far-apart particles
    still interact. ``alpha > 0`` and ``-1 < beta < 0``; the defaults are 0.5 and -0.5.

    >>> log_kernel, _ = IMQSteinKernel().log_kernel_and_grad(torch.tensor([[0.0], [1.0]]))
    >>> bool(log_kernel[0, 0, 0] == -0.5 * math.log(0.5))  # (alpha + 0) ** beta on the diagonal
    True
    """

    def __init__(
        self, alpha: float = 0.5, beta: float = -0.5, bandwidth_factor: float | None = None
    ):
        alpha, beta = float(alpha), float(beta)
        if not alpha > 0:
            raise ArgumentError(f"IMQSteinKernel: alpha={alpha} must be positive.")
        if not -1 < beta < 0:
            raise ArgumentError(
                f"IMQSteinKernel: beta={beta} must lie strictly between -1 and 0 (the kernel "
                "must decay with distance, and slower than the distance grows)."
            )
        super().__init__(bandwidth_factor)
        self.alpha = alpha
        self.beta = beta

    def _log_kernel_and_grad(
        self, differences: torch.Tensor, scaled: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        base = self.alpha + scaled
        return self.beta * base.log(), self.beta * 2.0 * differences / (h * base)


class SVGD:
    """Stein variational gradient descent over ``num_particles`` particles of ``model``'s latent
    sites, moved by ``optim`` (an :mod:`engine.optim` wrapper such as ``Adam({"lr": 0.1})``)
    along the kernelised Stein direction of ``kernel`` (a :class:`SteinKernel`).

    The model's latent sites must be continuous (a discrete site left unmarked is summed out by
    enumeration, as HMC does). Its sites are scored for all particles in one run, under a plate
    left of its own ``max_plate_nesting`` plates: write it vectorised (a model that is not is
    run under ``torch.func.vmap``, or once per particle, which is slower). ``mode``
    ``"univariate"`` gives every dimension its own kernel (Singhal et al.'s kernelised complete
    conditional Stein discrepancy: it keeps working in many dimensions), ``"multivariate"`` uses
    the product kernel over all dimensions (Liu and Wang's original SVGD).

    :meth:`step` takes the model's arguments; the particles are drawn from the prior at the
    first step. :meth:`get_named_particles` maps them back onto the sites' supports.

    >>> import torch, engine as pyro, engine.distributions as dist
    >>> from engine.optim import Adam
    >>> def model(data):
    ...     loc = pyro.sample("loc", dist.Normal(0.0, 2.0))
    ...     with pyro.plate("data", len(data)):
    ...         pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)
    >>> data = torch.tensor([4.0, 5.0, 6.0])
    >>> pyro.clear_param_store()  # the particles of an earlier SVGD would be taken up
    >>> svgd = SVGD(model, RBFSteinKernel(), Adam({"lr": 0.2}), 50, max_plate_nesting=1)
    >>> for _ in range(100):
    ...     _ = svgd.step(data)
    >>> loc = svgd.get_named_particles()["loc"]  # (50, 1): the particle plate at dim -2
    >>> loc.shape, abs(loc.mean().item() - 4.615) < 0.05  # the posterior mean is 15 / 3.25
    (torch.Size([50, 1]), True)
    """

    def __init__(
        self,
        model: Callable,
        kernel: SteinKernel,
        optim: Callable,
        num_particles: int,
        max_plate_nesting: int,
        mode: str = "univariate",
    ):
        if not callable(getattr(kernel, "log_kernel_and_grad", None)):
            raise ArgumentError(
                f"SVGD: kernel must be a SteinKernel (RBFSteinKernel(), IMQSteinKernel(), or "
                f"an object with log_kernel_and_grad), not {type(kernel).__name__}."
            )
        if not callable(optim):
            raise ArgumentError(
                f"SVGD: optim must be an engine.optim optimizer such as Adam({{'lr': 0.1}}), "
                f"not {type(optim).__name__}."
            )
        if mode not in _MODES:
            raise ArgumentError(
                f"SVGD: mode={mode!r} is not one of {list(_MODES)}: 'univariate' gives each "
                "dimension its own kernel, 'multivariate' one kernel over all of them."
            )
        self.model = model
        self.kernel = kernel
        self.optim = optim
        self.num_particles = as_count(
            num_particles,
            "SVGD: num_particles",
            minimum=2,
            fix="SVGD needs at least 2 particles to spread (a single one only climbs to the "
            "mode: use AutoDelta with SVI for that).",
        )
        self.max_plate_nesting = as_count(
            max_plate_nesting,
            "SVGD: max_plate_nesting",
            minimum=0,
            fix="It is how many plates the model nests, e.g. 0 without plates.",
        )
        self.mode = mode
        self._potential: Potential | None = None

    def step(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Move every particle one optimizer step along the SVGD direction; ``args`` and
        ``kwargs`` go to the model. Returns ``{site: mean squared SVGD direction}`` over that
        site's coordinates and all particles, a measure of how far from settled they are. A
        step that raises leaves the particles and the param store as they were."""
        store = get_param_store()
        with store.transaction():
            potential = self._potential_for(args, kwargs)
            leaf = self._particles(potential)
            direction = self._direction(potential, leaf.detach())
            leaf.grad = -direction  # the optimizers descend; the particles move up phi
            try:
                self.optim([leaf])
            finally:
                leaf.grad = None
        return {
            slot.name: direction[:, slot.offset : slot.offset + slot.size].square().mean().item()
            for slot in potential.slots
        }

    def get_named_particles(self) -> dict[str, torch.Tensor]:
        """The particles as ``{site: values}``, each on its site's support with the particles
        along the leading dim, laid out as in a run of the model under the particle plate: a
        site with fewer batch dims than ``max_plate_nesting`` keeps size-1 dims after it."""
        store = get_param_store()
        if self._potential is None or PARTICLES_PARAM not in store:
            raise ParamError(
                "SVGD.get_named_particles: there are no particles yet (or the param store was "
                "cleared since): call svgd.step(...) first, which draws them."
            )
        potential = self._potential
        particles = store.leaves([PARTICLES_PARAM])[0].detach()
        values = potential.site_values(particles)
        named = {}
        for slot in potential.slots:
            value = values[slot.name]
            padding = max(0, self.max_plate_nesting - potential.batch_rank(slot.name))
            named[slot.name] = value.reshape(self.num_particles, *(1,) * padding, *value.shape[1:])
        return named

    def _potential_for(self, args: tuple, kwargs: dict) -> Potential:
        """The model's log density over flat particles, built at the first step and then given
        each step's arguments."""
        if self._potential is None:
            self._potential = Potential(
                self.model,
                args,
                kwargs,
                init_strategy=init_to_sample,
                max_plate_nesting=self.max_plate_nesting,
                algorithm="SVGD",
            )
        else:
            self._potential.model_args, self._potential.model_kwargs = tuple(args), dict(kwargs)
        return self._potential

    def _particles(self, potential: Potential) -> torch.Tensor:
        """The particles' leaf (N, D) in the param store; drawn from the prior when absent."""
        store = get_param_store()
        shape = (self.num_particles, potential.num_latent)
        if PARTICLES_PARAM not in store:
            store.setdefault(PARTICLES_PARAM, potential.initial_points(self.num_particles))
        leaf = store.leaves([PARTICLES_PARAM])[0]
        if tuple(leaf.shape) != shape:
            raise ParamError(
                f"SVGD: the param store holds '{PARTICLES_PARAM}' of shape "
                f"{fmt_shape(leaf.shape)}, but {self.num_particles} particles of this model's "
                f"{potential.num_latent} unconstrained coordinates need {fmt_shape(shape)}: it "
                "was left by another SVGD run. Clear it first: pyro.clear_param_store() or "
                f"del pyro.get_param_store()['{PARTICLES_PARAM}']."
            )
        return leaf

    def _direction(self, potential: Potential, particles: torch.Tensor) -> torch.Tensor:
        """The SVGD direction phi (N, D) at ``particles`` (N, D)."""
        with torch.enable_grad():
            points = particles.detach().requires_grad_(True)
            energy = potential.energy(points)
            (score,) = torch.autograd.grad(-energy.sum(), points)
        bad = ~(torch.isfinite(energy) & torch.isfinite(score).all(-1))
        if bool(bad.any()):
            raise NonFiniteError(self._describe_nonfinite(potential, particles, bad))
        log_kernel, kernel_grad = self.kernel.log_kernel_and_grad(particles)
        expected = (len(particles), len(particles), particles.shape[-1])
        for name, tensor in (("log_kernel", log_kernel), ("kernel_grad", kernel_grad)):
            if tuple(tensor.shape) != expected:
                raise ArgumentError(
                    f"SVGD: {type(self.kernel).__name__}.log_kernel_and_grad returned a "
                    f"{name} of shape {fmt_shape(tensor.shape)}; it must be (N, N, D) = "
                    f"{fmt_shape(expected)} for {len(particles)} particles of "
                    f"{particles.shape[-1]} coordinates."
                )
        if self.mode == "multivariate":
            kernel = log_kernel.sum(-1, keepdim=True).exp()  # (N, N, 1): one kernel for all dims
        else:
            kernel = log_kernel.exp()  # (N, N, D): a kernel per dim
        # [n, m]: particle n's pull up the density and push away, as felt by particle m.
        return (kernel * (score.unsqueeze(1) + kernel_grad)).mean(0)

    def _describe_nonfinite(
        self, potential: Potential, particles: torch.Tensor, bad: torch.Tensor
    ) -> str:
        """Which particle has a non-finite log density or gradient, and at which site."""
        index = int(bad.nonzero()[0])
        with torch.no_grad():
            densities = potential.log_densities(particles[index : index + 1])
        culprits = [name for name, value in densities.items() if not bool(torch.isfinite(value))]
        where = (
            f"the log density of {', '.join(repr(name) for name in culprits)} is not finite"
            if culprits
            else "the log density is finite, its gradient is not"
        )
        return (
            f"SVGD.step: {int(bad.sum())} of {self.num_particles} particles reached a point "
            f"where the model's log density or its gradient is not finite (particle {index}: "
            f"{where}). The particles were not moved. Check the model there (a scale that "
            "reaches 0, a log of 0), or lower the optimizer's learning rate."
        )
