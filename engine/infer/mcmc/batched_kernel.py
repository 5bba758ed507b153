"""``BatchedKernel``: a kernel that moves every chain at once, and speaks Pyro's one-chain
:class:`~engine.infer.mcmc.mcmc_kernel.MCMCKernel` protocol on top of that.

The :class:`~engine.infer.mcmc.MCMC` driver uses the batched side: ``setup_chains(num_chains,
num_warmup, model_args, model_kwargs, initial_params)`` once, then ``step_chains(iteration,
warmup)`` per iteration, which moves the chains' positions ``z`` (C, D) over the flat
unconstrained layout of ``potential`` and returns per-chain statistics. A subclass defines
those two, ``z`` and ``_move_to`` (put the chains at given points).

Code written for Pyro's kernels drives a kernel by hand, one chain: ``kernel.initial_params =
{...}``, ``kernel.setup(warmup_steps, *model_args)``, then ``params = kernel(params)`` per
iteration (``clear_cache()`` in between is allowed and costs nothing extra here). That side runs
the batched one with a single chain; the first ``warmup_steps`` calls adapt, as in Pyro.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer.mcmc import NUTS
>>> def model():
...     engine.sample("x", dist.LogNormal(0.0, 1.0))
>>> kernel = NUTS(model)
>>> kernel.setup(5)
>>> params = kernel.initial_params
>>> for _ in range(10):
...     params = kernel(params)
>>> sorted(params), params["x"].shape, sorted(kernel.diagnostics())
(['x'], torch.Size([]), ['acceptance rate', 'divergences'])
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch.distributions.transforms import Transform

from engine.errors import MCMCError
from engine.infer.mcmc.flat_layout import FlatLayout
from engine.infer.mcmc.mcmc_kernel import MCMCKernel, Params
from engine.infer.mcmc.potential import Potential


class BatchedKernel(MCMCKernel):
    """The base of kernels that move all chains at once (see the module docstring)."""

    potential: FlatLayout | None = None
    _initial_params: Params | None = None
    _transforms: dict[str, Transform] | None = None

    # -- the batched protocol (the MCMC driver's) --------------------------------------------

    def setup_chains(
        self,
        num_chains: int,
        num_warmup: int,
        model_args: tuple = (),
        model_kwargs: dict[str, Any] | None = None,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Build the potential and place ``num_chains`` chains for a run with ``num_warmup``
        warm-up iterations."""
        raise NotImplementedError

    def step_chains(self, iteration: int, warmup: bool) -> dict[str, torch.Tensor]:
        """One transition of every chain; per-chain statistics, each of shape (C,)."""
        raise NotImplementedError

    @property
    def z(self) -> torch.Tensor:
        """Every chain's current unconstrained position (C, D)."""
        raise NotImplementedError

    def _move_to(self, z: torch.Tensor) -> None:
        """Put the chains at the unconstrained points ``z`` (C, D)."""
        raise NotImplementedError

    # -- helpers of setup_chains -------------------------------------------------------------

    def _model_potential(self, model_args: tuple, model_kwargs: dict[str, Any] | None) -> Potential:
        """The potential of ``self.model`` on these arguments, placed by ``self.init_strategy``
        (for subclasses that hold ``model``, ``init_strategy`` and ``max_plate_nesting``)."""
        return Potential(
            self.model,
            model_args,
            model_kwargs,
            init_strategy=self.init_strategy,
            max_plate_nesting=self.max_plate_nesting,
        )

    def _starting_points(
        self, num_chains: int, initial_params: dict[str, torch.Tensor] | None
    ) -> torch.Tensor:
        """Every chain's first unconstrained point (C, D): ``initial_params`` where given, else
        the potential's own initial points."""
        if initial_params is not None:
            return self.potential.points_from_values(initial_params, num_chains)
        return self.potential.initial_points(num_chains)

    def site_values(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The latent sites on their supports (and the deterministic sites) at draws ``z``
        (B, D): ``{name: (B, *shape)}``."""
        return self.potential.site_values(z)

    # -- Pyro's one-chain protocol -----------------------------------------------------------

    @property
    def initial_params(self) -> Params | None:
        """The unconstrained starting point: set it before ``setup`` to choose it; after
        ``setup`` it is the point the chain starts from."""
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params: Params | None) -> None:
        self._initial_params = params

    @property
    def transforms(self) -> dict[str, Transform] | None:
        """After ``setup``, each latent site's map from its support to unconstrained space
        (empty for a ``potential_fn``, whose values are unconstrained already); None before."""
        if self._transforms is None and self.potential is not None:
            transforms = getattr(self.potential, "transforms", None)
            self._transforms = transforms() if transforms is not None else {}
        return self._transforms

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        """Prepare one chain for ``warmup_steps`` warm-up calls of :meth:`sample`, from
        ``initial_params`` when set (else from the kernel's ``init_strategy``)."""
        self._transforms = None
        self.setup_chains(1, warmup_steps, args, kwargs, self._initial_params)
        self._initial_params = self._params_at(self.z)
        self._calls = 0
        self._warmup_steps = warmup_steps
        self._divergences: list[int] = []
        self._accept_sum = 0.0
        self._last_stats: dict[str, torch.Tensor] = {}
        self._fresh = True

    def clear_cache(self) -> None:
        """Forget the energy kept for the current point: the next :meth:`sample` evaluates the
        point it is given afresh."""
        self._fresh = False

    def sample(self, params: Params) -> Params:
        """One transition of the chain from the unconstrained point ``params``; the first
        ``warmup_steps`` calls after ``setup`` adapt (step size, mass matrix)."""
        if not hasattr(self, "_calls"):
            raise MCMCError(
                f"{type(self).__name__}.sample(params) needs kernel.setup(warmup_steps, "
                "*model_args) first (MCMC(kernel, ...).run(...) does both)."
            )
        z = self.potential.points_from_values(params, 1) if not self._same_point(params) else None
        if z is not None:
            self._move_to(z)
        self._fresh = True
        warmup = self._calls < self._warmup_steps
        stats = self.step_chains(self._calls, warmup)
        self._calls += 1
        self._last_stats = stats
        self._accept_sum += float(stats["accept_prob"][0])
        if not warmup and bool(stats["diverging"][0]):
            self._divergences.append(self._calls - self._warmup_steps - 1)
        return self._params_at(self.z)

    def _same_point(self, params: Params) -> bool:
        """Whether ``params`` is the chain's current point, whose energy is kept."""
        if not self._fresh:
            return False
        current = self.potential.unconstrained_sites(self.z[0])
        if set(params) != set(current):
            return False
        return all(
            torch.equal(torch.as_tensor(params[name], dtype=value.dtype), value)
            for name, value in current.items()
        )

    def _params_at(self, z: torch.Tensor) -> Params:
        return {
            name: value[0].clone() for name, value in self.potential.unconstrained_sites(z).items()
        }

    def diagnostics(self) -> dict[str, Any]:
        """The sampling-phase iterations that diverged (counted from 0) and the mean acceptance
        statistic of every call so far."""
        calls = getattr(self, "_calls", 0)
        return {
            "divergences": list(getattr(self, "_divergences", [])),
            "acceptance rate": self._accept_sum / calls if calls else float("nan"),
        }

    def logging(self) -> OrderedDict[str, str]:
        """The current step size and mean acceptance statistic, formatted for a progress bar."""
        stats = getattr(self, "_last_stats", {})
        step = float(stats["step_size"][0]) if "step_size" in stats else float("nan")
        return OrderedDict(
            [
                ("step size", f"{step:.2e}"),
                ("acc. prob", f"{self.diagnostics()['acceptance rate']:.3f}"),
            ]
        )


__all__ = ["BatchedKernel"]
