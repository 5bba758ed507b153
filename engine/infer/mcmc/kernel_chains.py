"""Running a user's :class:`~engine.infer.mcmc.mcmc_kernel.MCMCKernel` (one that only speaks
the one-chain protocol) for several chains: one chain after another, in this process.

Each chain: ``initial_params`` (the chain's slice of the MCMC's, when given), ``setup``, warm-up
and sampling calls of ``sample``, ``end_warmup`` in between, then ``diagnostics`` and
``cleanup``. The kept draws are unconstrained; each site with an entry in ``transforms`` (from
the MCMC, else the kernel's own ``transforms``) is mapped back onto its support.

>>> import torch
>>> from engine.infer.mcmc.mcmc_kernel import MCMCKernel
>>> class Counter(MCMCKernel):  # each draw is the last plus one
...     initial_params = {"n": torch.tensor(0.0)}
...     def sample(self, params):
...         return {"n": params["n"] + 1}
>>> run = run_kernel_chains(Counter(), num_chains=2, warmup_steps=3, num_samples=2,
...                         args=(), kwargs={})
>>> run.samples["n"].tolist(), len(run.diagnostics)
([[4.0, 5.0], [4.0, 5.0]], 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from engine.errors import MCMCError
from engine.infer.mcmc.mcmc_kernel import MCMCKernel, Params


@dataclass
class KernelChains:
    """What the chains drew: ``samples`` ``{name: (chains, draws, *shape)}`` on the sites'
    supports, each chain's ``diagnostics()``, and whether a KeyboardInterrupt ended the run
    early (``interrupted``; the draws before it are kept, cut to what every chain reached)."""

    samples: dict[str, torch.Tensor]
    diagnostics: list[dict[str, Any]]
    interrupted: bool = False


def _chain_start(initial_params: Params | None, chain: int, num_chains: int) -> Params | None:
    """The MCMC's ``initial_params`` for one chain: a value with a leading dim of
    ``num_chains`` gives each chain its row; any other value is shared."""
    if initial_params is None:
        return None
    start = {}
    for name, value in initial_params.items():
        value = torch.as_tensor(value)
        per_chain = num_chains > 1 and value.dim() > 0 and value.shape[0] == num_chains
        start[name] = value[chain] if per_chain else value
    return start


def run_kernel_chains(
    kernel: MCMCKernel,
    num_chains: int,
    warmup_steps: int,
    num_samples: int,
    args: tuple,
    kwargs: dict[str, Any],
    initial_params: Params | None = None,
    transforms: dict[str, Any] | None = None,
    hook_fn: Callable | None = None,
    on_draw: Callable[[int, int, Params], None] | None = None,
) -> KernelChains:
    """Run ``kernel`` for ``num_chains`` chains of ``warmup_steps + num_samples`` iterations
    each (see the module docstring). With ``on_draw``, each sampling-phase draw goes to
    ``on_draw(chain, draw, values)`` (on the sites' supports) instead of being kept, and
    ``samples`` is empty."""
    chains: list[list[Params]] = []
    diagnostics: list[dict[str, Any]] = []
    interrupted = False
    for chain in range(num_chains):
        kept: list[Params] = []
        chains.append(kept)
        start = _chain_start(initial_params, chain, num_chains)
        if start is not None:
            kernel.initial_params = start
        kernel.setup(warmup_steps, *args, **kwargs)
        params = kernel.initial_params
        if params is None:
            raise MCMCError(
                f"{type(kernel).__name__} has no initial_params after setup: give "
                "MCMC(..., initial_params={...}) or set them in the kernel's setup."
            )
        try:
            for iteration in range(warmup_steps + num_samples):
                params = kernel.sample(params)
                warmup = iteration < warmup_steps
                if not warmup and on_draw is not None:
                    draw = {name: torch.as_tensor(v) for name, v in params.items()}
                    on_draw(chain, iteration - warmup_steps, _mapped(draw, kernel, transforms))
                elif not warmup:
                    kept.append({name: torch.as_tensor(v).clone() for name, v in params.items()})
                if hook_fn is not None:
                    stage_iteration = iteration if warmup else iteration - warmup_steps
                    hook_fn(kernel, params, "Warmup" if warmup else "Sample", stage_iteration)
                if iteration + 1 == warmup_steps:
                    kernel.end_warmup()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            diagnostics.append(kernel.diagnostics())
            kernel.cleanup()
        if interrupted:
            break
    if on_draw is not None:
        return KernelChains({}, diagnostics, interrupted)
    return KernelChains(_stacked(chains, _transforms(kernel, transforms)), diagnostics, interrupted)


def _transforms(kernel: MCMCKernel, transforms: dict[str, Any] | None) -> dict[str, Any]:
    """The MCMC's ``transforms``, else the kernel's own (set by its ``setup``), else none."""
    if transforms is None:
        transforms = getattr(kernel, "transforms", None) or {}
    return transforms


def _mapped(draw: Params, kernel: MCMCKernel, transforms: dict[str, Any] | None) -> Params:
    """One draw with each site that has a transform mapped back onto its support."""
    transforms = _transforms(kernel, transforms)
    return {
        name: transforms[name].inv(value) if name in transforms else value
        for name, value in draw.items()
    }


def _stacked(chains: list[list[Params]], transforms: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``{name: (chains, draws, *shape)}`` from each chain's list of draws, cut to the draws
    every chain reached, each site mapped by ``transforms[name].inv`` when it has one."""
    draws = min(len(kept) for kept in chains)
    if draws == 0:
        return {}
    samples = {}
    for name in chains[0][0]:
        value = torch.stack([torch.stack([d[name] for d in kept[:draws]]) for kept in chains])
        samples[name] = transforms[name].inv(value) if name in transforms else value
    return samples


__all__ = ["KernelChains", "run_kernel_chains"]
