"""``StreamingMCMC``: MCMC that keeps running statistics of the draws instead of the draws, for
runs whose draws would not fit in memory (a long run of a big model, on a GPU).

Each chain gets its own copy of ``statistics`` (any object of the streaming protocol of
:mod:`~engine.infer.mcmc.running_stats`; by default count, mean and variance of every site),
fed each sampling-phase draw of every latent and deterministic site. Beside them the run keeps
each chain's running mean and variance over the first and the second half of its draws (and
the middle draw of an odd count), all the split Gelman-Rubin R-hat needs:
:meth:`StreamingMCMC.diagnostics` and :meth:`StreamingMCMC.summary` report it. The effective
sample size needs the whole series, so it is not available here.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer.mcmc import NUTS
>>> def model():
...     engine.sample("x", dist.Normal(1.0, 2.0))
>>> mcmc = StreamingMCMC(NUTS(model), num_samples=300, warmup_steps=100, num_chains=2)
>>> mcmc.run()
>>> stats = mcmc.get_statistics(group_by_chain=False)["x"]
>>> stats["count"], abs(float(stats["mean"]) - 1.0) < 0.6
(600, True)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from engine.errors import MCMCError
from engine.infer.mcmc.diagnostics import MIN_DRAWS, format_summary, gelman_rubin
from engine.infer.mcmc.mcmc import MCMC, _Recording
from engine.infer.mcmc.mcmc_kernel import MCMCKernel
from engine.infer.mcmc.running_stats import CountMeanVarianceStats, StatsOfDict, StreamingStats


class StreamingMCMC(MCMC):
    """:class:`~engine.infer.mcmc.MCMC` with the draws folded into ``statistics`` as they come
    (Pyro's arguments; see the module docstring). ``get_statistics()`` gives them;
    ``diagnostics()`` gives each site's split R-hat and each chain's divergences, acceptance
    rate and the rest; ``summary()`` prints mean, sd and R-hat. Whatever needs the draws
    themselves (``get_samples``, ``to_arviz``, ``plot``) is refused: use ``MCMC`` for those."""

    _keeps_draws = False

    def __init__(
        self,
        kernel: MCMCKernel,
        num_samples: int,
        warmup_steps: int | None = None,
        initial_params: dict[str, torch.Tensor] | None = None,
        statistics: StreamingStats | None = None,
        num_chains: int = 1,
        hook_fn: Any = None,
        disable_progbar: bool = False,
        disable_validation: bool = True,
        transforms: Any = None,
        save_params: list[str] | None = None,
    ):
        super().__init__(
            kernel,
            num_samples,
            warmup_steps=warmup_steps,
            initial_params=initial_params,
            num_chains=num_chains,
            hook_fn=hook_fn,
            disable_progbar=disable_progbar,
            disable_validation=disable_validation,
            transforms=transforms,
            save_params=save_params,
        )
        if statistics is None:
            statistics = StatsOfDict(default=CountMeanVarianceStats)
        for method in ("update", "merge", "get"):
            if not callable(getattr(statistics, method, None)):
                raise TypeError(
                    f"statistics must have update, merge and get (e.g. StatsOfDict from "
                    f"engine.infer.mcmc.running_stats), got {type(statistics).__name__}"
                )
        self.statistics = statistics
        self._fresh_statistics()

    def _fresh_statistics(self) -> None:
        chains = range(self.num_chains)
        self._chain_stats = [copy.deepcopy(self.statistics) for _ in chains]
        # Each chain's moments over its first half, its middle draw (of an odd count) and its
        # second half: the halves give the split R-hat, all three the pooled moments.
        self._parts = [
            [StatsOfDict(default=CountMeanVarianceStats) for _ in range(3)] for _ in chains
        ]
        self._count = [0] * self.num_chains

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Warm up, then fold ``num_samples`` draws per chain into the statistics."""
        self._fresh_statistics()
        super().run(*args, **kwargs)

    def run_in_background(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`run` in a thread (see :meth:`MCMC.run_in_background`)."""
        self._fresh_statistics()
        super().run_in_background(*args, **kwargs)

    # -- feeding the statistics ----------------------------------------------------------------

    def _take(self, chain: int, draw: int, values: dict[str, torch.Tensor]) -> None:
        """Fold one chain's draw (site values by name) into its statistics."""
        values = self._saved(values)
        self._chain_stats[chain].update(values)
        half = self.num_samples // 2
        part = 0 if draw < half else 2 if draw >= self.num_samples - half else 1
        self._parts[chain][part].update(values)
        self._count[chain] += 1

    def _keep(self, recording: _Recording, step_stats: dict[str, torch.Tensor]) -> None:
        values = self.kernel.site_values(self.kernel.z)
        for chain in range(self.num_chains):
            self._take(chain, recording.kept, {name: v[chain] for name, v in values.items()})
        recording.keep(self.kernel.z, step_stats)

    def _draw_sink(self) -> Callable[[int, int, dict[str, torch.Tensor]], None]:
        return self._take

    def _streamed(self) -> int:
        return min(self._count)

    # -- results -------------------------------------------------------------------------------

    def get_statistics(self, group_by_chain: bool = True) -> dict[Any, Any]:
        """The statistics: by ``(chain, name)`` with ``group_by_chain``, else the chains merged,
        by name."""
        self._check_ran()
        if group_by_chain:
            return {
                (chain, name): value
                for chain, stats in enumerate(self._chain_stats)
                for name, value in stats.get().items()
            }
        merged = self._chain_stats[0]
        for stats in self._chain_stats[1:]:
            merged = merged.merge(stats)
        return dict(merged.get())

    def _site_diagnostics(self) -> dict[str, dict[str, torch.Tensor]]:
        """Each site's split Gelman-Rubin R-hat, from the halves' running moments (NaN with
        fewer than four draws per chain)."""
        halves = [parts[i].get() for parts in self._parts for i in (0, 2)]
        result = {}
        for name in halves[0]:
            moments = [half[name] for half in halves]
            count = min(m["count"] for m in moments)
            if count < MIN_DRAWS // 2:
                shape = moments[0]["mean"].shape if "mean" in moments[0] else ()
                result[name] = {"r_hat": torch.full(shape, float("nan"), dtype=torch.float64)}
                continue
            means = torch.stack([m["mean"] for m in moments]).double()
            variances = torch.stack([m["variance"] for m in moments]).double()
            result[name] = {"r_hat": gelman_rubin(count, means, variances)}
        return result

    def summary(self, prob: float = 0.9) -> dict[str, dict[str, torch.Tensor]]:
        """Print (and return) each site's mean, sd and split R-hat over all chains (quantiles
        and the ESS need the draws: not available here). ``prob`` is accepted as in
        :meth:`MCMC.summary` and unused."""
        self._check_ran()
        parts = [part for chain in self._parts for part in chain]
        pooled = parts[0]
        for part in parts[1:]:
            pooled = pooled.merge(part)
        r_hat = self._site_diagnostics()
        table = {
            name: {
                "mean": moments["mean"].double(),
                "std": moments["variance"].double().sqrt(),
                "r_hat": r_hat[name]["r_hat"],
            }
            for name, moments in pooled.get().items()
        }
        print(format_summary(table))
        if "diverging" in self._stats:
            print(f"\nNumber of divergences: {int(self._stats['diverging'].sum())}")
        return table

    def _site_samples(self) -> dict[str, torch.Tensor]:
        raise MCMCError(
            "StreamingMCMC keeps running statistics, not draws: use get_statistics(), "
            "diagnostics() or summary(), or run MCMC to keep the draws."
        )


__all__ = ["StreamingMCMC"]
