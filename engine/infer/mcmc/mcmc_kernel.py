"""``MCMCKernel``: the protocol every transition kernel speaks to :class:`~engine.infer.mcmc.MCMC`
(Pyro's ``pyro.infer.mcmc.mcmc_kernel.MCMCKernel``).

A kernel works on one chain in *unconstrained* space: ``setup(warmup_steps, *model_args,
**model_kwargs)`` prepares a run, ``initial_params`` is the point it starts from (a dict of
unconstrained values, settable), and ``sample(params)`` (or calling the kernel) returns the next
point given the current one. The optional hooks ``end_warmup``, ``cleanup``, ``logging`` and
``diagnostics`` do nothing by default. A kernel written this way runs under ``MCMC`` one chain
after another; ``HMC``, ``NUTS`` and ``RandomWalkKernel`` also speak a batched protocol of their
own (:class:`~engine.infer.mcmc.batched_kernel.BatchedKernel`) and run all chains at once.

>>> import torch
>>> class Coin(MCMCKernel):  # an independence sampler: each draw ignores the last
...     initial_params = {"x": torch.tensor(0.0)}
...     def sample(self, params):
...         return {"x": torch.randn(())}
>>> kernel = Coin()
>>> sorted(kernel(kernel.initial_params)), kernel.diagnostics(), kernel.logging()
(['x'], {}, None)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

Params = dict[str, torch.Tensor]


class MCMCKernel(ABC):
    """The base of transition kernels (see the module docstring)."""

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:  # noqa: B027 (optional hook)
        """Prepare a run of ``warmup_steps`` warm-up iterations for the model arguments
        ``args``/``kwargs`` (nothing by default)."""

    def cleanup(self) -> None:  # noqa: B027 (optional hook)
        """Release what a run held, once it has ended (nothing by default)."""

    def end_warmup(self) -> None:  # noqa: B027 (optional hook)
        """Told once warm-up is over (nothing by default)."""

    def logging(self) -> Any:
        """A short status for a progress display (``None`` by default)."""
        return None

    def diagnostics(self) -> dict[str, Any]:
        """Statistics of the run so far, by name (empty by default)."""
        return {}

    @property
    def initial_params(self) -> Params | None:
        """The unconstrained point the run starts from."""
        raise NotImplementedError(f"{type(self).__name__} does not define initial_params")

    @initial_params.setter
    def initial_params(self, params: Params) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot be given initial_params")

    @abstractmethod
    def sample(self, params: Params) -> Params:
        """The next unconstrained point of the chain, given the current one ``params``."""

    def __call__(self, params: Params) -> Params:
        """The same as :meth:`sample`."""
        return self.sample(params)


__all__ = ["MCMCKernel"]
