"""``MCMC``: run a Hamiltonian kernel for warm-up and sampling, keep the draws, diagnose them.

Every chain runs in this one process, batched along a leading dim of each tensor (never one
process per chain: multiprocessing hangs in notebooks). Each iteration is reported through
``mcmc.progress`` (see :mod:`engine.infer.progress`) with per-chain phase, step size, tree depth,
divergences and acceptance, and a last event says how the run ended (phase ``"done"``,
``"stopped"`` or ``"failed"``). A KeyboardInterrupt (the notebook's stop button) ends the run
cleanly between iterations: the draws made so far are kept, and ``mcmc.interrupted`` is set.
A run is not resumed afterwards: ``run`` again starts a new one from warm-up (as in Pyro); until
then ``get_samples()``, ``summary()`` and the rest use the draws kept.

>>> import torch, engine, engine.distributions as dist
>>> from engine.infer.mcmc import NUTS
>>> def model(data):
...     mu = engine.sample("mu", dist.Normal(0.0, 10.0))
...     with engine.plate("data", len(data)):
...         engine.sample("obs", dist.Normal(mu, 1.0), obs=data)
>>> mcmc = MCMC(NUTS(model), num_samples=200, warmup_steps=100, num_chains=2)
>>> mcmc.run(torch.tensor([0.5, 1.5, 1.0]))
>>> mcmc.get_samples()["mu"].shape, mcmc.get_samples(group_by_chain=True)["mu"].shape
(torch.Size([400]), torch.Size([2, 200]))
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.errors import MCMCError
from engine.infer.mcmc.batched_kernel import BatchedKernel
from engine.infer.mcmc.diagnostics import format_summary, summary
from engine.infer.mcmc.kernel_chains import run_kernel_chains
from engine.infer.mcmc.mcmc_kernel import MCMCKernel
from engine.infer.mcmc.util import select_samples
from engine.infer.progress import Progress, ProgressEvent
from engine.interrupts import deferred_interrupt
from engine.poutine.handlers import block

# Per-iteration statistics kept for every draw, under ArviZ's sample_stats names.
_STAT_NAMES = {
    "accept_prob": "acceptance_rate",
    "diverging": "diverging",
    "step_size": "step_size",
    "tree_depth": "tree_depth",
    "num_steps": "n_steps",
    "energy": "energy",
    "lp": "lp",
}

# How many draws are pushed through the model at once to compute the recorded site values.
_SITE_VALUES_BATCH = 1024


@dataclass
class _Recording:
    """What a run has recorded so far: the unconstrained draws ``(chains, num_samples, D)``, of
    which the first ``kept`` are filled, each statistic of :data:`_STAT_NAMES` in one
    ``(chains, num_samples, ...)`` tensor allocated at its first draw (lists of small tensors
    would hold about 2 KB per draw until the run ends), and per chain the leapfrog steps of all
    iterations and the divergences of the sampling phase (warm-up divergences are expected
    while the step size settles).

    >>> recording = _Recording.for_run(torch.zeros(2, 3), num_samples=5)
    >>> recording.keep(torch.ones(2, 3), {"diverging": torch.tensor([True, False])})
    >>> recording.kept, recording.divergences.tolist(), recording.stats["diverging"].shape
    (1, [1, 0], torch.Size([2, 5]))
    """

    draws: torch.Tensor
    divergences: torch.Tensor
    leapfrog_steps: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    kept: int = 0

    num_samples: int = 0
    keep_draws: bool = True

    @classmethod
    def for_run(cls, z: torch.Tensor, num_samples: int, keep_draws: bool = True) -> _Recording:
        """An empty recording for chains now at ``z`` (chains, D); with ``keep_draws=False``
        only the per-draw statistics are kept, not the draws."""
        chains = z.shape[0]
        divergences = torch.zeros(chains, dtype=torch.long, device=z.device)
        return cls(
            draws=z.new_empty((chains, num_samples if keep_draws else 0, z.shape[-1])),
            divergences=divergences,
            leapfrog_steps=torch.zeros_like(divergences),
            num_samples=num_samples,
            keep_draws=keep_draws,
        )

    def keep(self, z: torch.Tensor, step_stats: dict[str, torch.Tensor]) -> None:
        """Record a sampling-phase iteration: the chains' points ``z`` and their statistics."""
        self.divergences = self.divergences + step_stats["diverging"].long()
        if self.keep_draws:
            self.draws[:, self.kept] = z
        for name in _STAT_NAMES:
            if name in step_stats:
                value = torch.as_tensor(step_stats[name])
                if name not in self.stats:
                    shape = (self.draws.shape[0], self.num_samples, *value.shape[1:])
                    self.stats[name] = value.new_empty(shape)
                self.stats[name][:, self.kept] = value
        self.kept += 1


class MCMC:
    """Markov chain Monte Carlo with a :class:`~engine.infer.mcmc.HMC`, ``NUTS`` or
    ``RandomWalkKernel`` kernel, or any :class:`~engine.infer.mcmc.mcmc_kernel.MCMCKernel`.

    ``warmup_steps`` defaults to ``num_samples``; ``initial_params`` are unconstrained starting
    values (each site's unconstrained shape, or with a leading dim of ``num_chains``). Pyro's
    ``mp_context``, ``chain_method`` and ``disable_progbar`` are accepted for compatibility and
    change nothing: chains never run in separate processes (Pyro starts one process per chain
    there, which hangs in notebooks and cannot share a live view), so there is no
    multiprocessing context to choose. The built-in kernels move every chain at once, batched
    in this process; a kernel that only speaks the one-chain ``MCMCKernel`` protocol runs its
    chains one after another. Progress goes to ``mcmc.progress``.
    ``transforms`` (site name to the map from its support to unconstrained space) is used with
    such a one-chain kernel, to map its draws back; the built-in kernels take the maps from the
    model's supports and refuse it. ``save_params`` (a list of site names) keeps only those
    sites in ``get_samples``, ``summary``, ``diagnostics`` and ``to_arviz``.
    ``disable_validation`` too: the sampler always runs the model once with every check when it
    sets up (the run that lays out its sites), and computes every later density without value
    checks (a proposal outside a support is a rejected move, not an error), whatever it says.
    """

    def __init__(
        self,
        kernel: MCMCKernel,
        num_samples: int,
        warmup_steps: int | None = None,
        initial_params: dict[str, torch.Tensor] | None = None,
        num_chains: int = 1,
        hook_fn: Any = None,
        mp_context: Any = None,
        disable_progbar: bool = False,
        disable_validation: bool = True,
        transforms: Any = None,
        save_params: list[str] | None = None,
        chain_method: Any = None,
    ):
        if not isinstance(kernel, MCMCKernel):
            raise TypeError(
                f"kernel must be an MCMCKernel (HMC, NUTS, RandomWalkKernel, or a subclass of "
                f"engine.infer.mcmc.mcmc_kernel.MCMCKernel), got {type(kernel).__name__}"
            )
        for name, value in (("num_samples", num_samples), ("num_chains", num_chains)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        warmup_steps = num_samples if warmup_steps is None else warmup_steps
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        if transforms is not None and isinstance(kernel, BatchedKernel):
            raise ValueError(
                f"transforms= is not supported with {type(kernel).__name__}: the model's supports "
                "give them"
            )
        self.transforms = transforms
        self.save_params = None if save_params is None else list(save_params)
        self.kernel = kernel
        self.num_samples = num_samples
        self.warmup_steps = warmup_steps
        self.num_chains = num_chains
        self.initial_params = initial_params
        self.hook_fn = hook_fn
        self.progress = Progress()
        self.interrupted = False
        self._draws: torch.Tensor | None = None
        self._stop = threading.Event()
        self._live: tuple[torch.Tensor, int] | None = None
        self._background: threading.Thread | None = None
        self._background_error: BaseException | None = None
        # Set when the background run has ended. Waiting is done on this, never on
        # Thread.join: in Python 3.11 a KeyboardInterrupt landing in join() marks the thread as
        # ended while it still runs, and the results would be read before the run wrote them.
        self._finished = threading.Event()
        self._stats: dict[str, torch.Tensor] = {}
        self._samples: dict[str, torch.Tensor] | None = None
        # Each chain's kernel.diagnostics(), for a kernel of the one-chain protocol.
        self._kernel_diagnostics: list[dict[str, Any]] = []

    # -- running -----------------------------------------------------------------------------

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Warm up, then draw ``num_samples`` per chain from the model given ``args``/``kwargs``.

        Whatever ends the run early (the stop button, an error) keeps the draws made so far; a
        KeyboardInterrupt ends it quietly (with a warning), anything else is raised after.

        The model's runs are the sampler's own: handlers around the call (an outer
        ``poutine.trace``) do not see their sites, as in Pyro."""
        self._stop.clear()
        with block():
            if not isinstance(self.kernel, BatchedKernel):
                self._run_one_chain_kernel(args, kwargs)
                return
            self._setup(args, kwargs)
            self._sample()

    def _setup(self, args: tuple, kwargs: dict[str, Any]) -> None:
        self.kernel.setup_chains(
            self.num_chains, self.warmup_steps, args, kwargs, self.initial_params
        )

    def _run_one_chain_kernel(self, args: tuple, kwargs: dict[str, Any]) -> None:
        """A kernel of the one-chain protocol: its chains one after another (see
        :mod:`~engine.infer.mcmc.kernel_chains`); the draws are kept as they come."""
        self.interrupted = False
        run = run_kernel_chains(
            self.kernel,
            self.num_chains,
            self.warmup_steps,
            self.num_samples,
            args,
            kwargs,
            initial_params=self.initial_params,
            transforms=self.transforms,
            hook_fn=self.hook_fn,
            on_draw=self._draw_sink(),
        )
        self._draws = None
        self._stats = {}
        self._kernel_diagnostics = run.diagnostics
        self._samples = self._saved(run.samples) if run.samples else {}
        self.interrupted = run.interrupted
        if run.interrupted:
            warnings.warn(
                "MCMC interrupted; the draws so far are kept.", RuntimeWarning, stacklevel=3
            )
        if self.progress.active:
            kept = next(iter(run.samples.values())).shape[1] if run.samples else self._streamed()
            info = {
                "phase": "stopped" if run.interrupted else "done",
                "kept": kept,
                "num_chains": self.num_chains,
                "error": "",
            }
            self.progress.emit(ProgressEvent("mcmc", kept + self.warmup_steps, info=info))

    # What a subclass that keeps statistics instead of draws (StreamingMCMC) changes.
    _keeps_draws = True

    def _draw_sink(self) -> Callable[[int, int, dict[str, torch.Tensor]], None] | None:
        """For a one-chain kernel: where each draw goes instead of being kept (None: kept)."""
        return None

    def _streamed(self) -> int:
        """How many draws per chain went to the sink of :meth:`_draw_sink`."""
        return 0

    def _keep(self, recording: _Recording, step_stats: dict[str, torch.Tensor]) -> None:
        """Record a sampling-phase iteration of the batched kernel."""
        recording.keep(self.kernel.z, step_stats)

    def _sample(self) -> None:
        """Record the run's iterations; whatever ends them, finish: keep what was recorded and
        say how the run ended."""
        recording = _Recording.for_run(self.kernel.z, self.num_samples, self._keeps_draws)
        ended = "failed"  # what the final progress event says, unless the loop gets further
        failure = ""
        self.interrupted = False
        try:
            self._record(recording)
            ended = "done"
        except KeyboardInterrupt:
            ended = "stopped"
            self.interrupted = True
            warnings.warn(
                f"MCMC interrupted after {recording.kept} of {self.num_samples} draws per chain; "
                "the draws so far are kept.",
                RuntimeWarning,
                stacklevel=2,
            )
        except BaseException as error:
            failure = f"{type(error).__name__}: {error}"
            raise
        finally:
            self._finish(recording, ended, failure)

    def _record(self, recording: _Recording) -> None:
        """Warm-up and sampling: each iteration's draw and statistics go into ``recording``,
        and to the hook and the progress listeners."""
        kernel = self.kernel
        started = time.perf_counter()
        for iteration in range(self.warmup_steps + self.num_samples):
            if self._stop.is_set():
                raise KeyboardInterrupt  # request_stop(): end as the stop button does
            warmup = iteration < self.warmup_steps
            step_stats = kernel.step_chains(iteration, warmup)
            recording.leapfrog_steps = recording.leapfrog_steps + step_stats["num_steps"]
            if not warmup:
                self._keep(recording, step_stats)
                self._live = (recording.draws, recording.kept)
            if self.hook_fn is not None:
                # Pyro's hook: the current unconstrained values, the stage, and the iteration
                # counted within that stage. One chain: each site's own shape, as in Pyro;
                # several: a leading chain dim (they move together here).
                params = kernel.potential.unconstrained_sites(kernel.z)
                if self.num_chains == 1:
                    params = {name: value[0] for name, value in params.items()}
                stage_iteration = iteration if warmup else iteration - self.warmup_steps
                self.hook_fn(kernel, params, "Warmup" if warmup else "Sample", stage_iteration)
            if self.progress.active:
                self._report(iteration, warmup, step_stats, recording.divergences, started)

    def _finish(self, recording: _Recording, ended: str, failure: str) -> None:
        """Keep the whole draws of ``recording`` as the run's results and send the last
        progress event (phase ``ended``; ``failure`` names the error of a failed run)."""
        # Kept whole even when the stop button is pressed again right now.
        with deferred_interrupt():
            kept = recording.kept
            self.num_leapfrog_steps = recording.leapfrog_steps  # per chain, warm-up and sampling
            self._draws = recording.draws[:, :kept]
            # An interruption can land between a draw's statistics: keep whole draws only.
            self._stats = {
                _STAT_NAMES[name]: values[:, :kept]
                for name, values in recording.stats.items()
                if kept
            }
            self._samples = None
            self._kernel_diagnostics = []
            if self.progress.active:
                info = {
                    "phase": ended,
                    "kept": kept,
                    "num_chains": self.num_chains,
                    "error": failure,
                }
                self.progress.emit(ProgressEvent("mcmc", kept + self.warmup_steps, info=info))
            self._live = None

    def run_in_background(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`run` with the sampling in a thread, so the caller (a notebook) stays free: a
        live view's Stop button can then reach :meth:`request_stop`. The set-up (building the
        potential, placing the chains) happens here, so a broken model raises at once; the
        results (``get_samples`` and the rest) wait for the run to end, and an error during
        sampling is raised there."""
        if self.running:
            raise RuntimeError("this MCMC is already running")
        self._stop.clear()
        one_chain_kernel = not isinstance(self.kernel, BatchedKernel)
        if not one_chain_kernel:
            with block():
                self._setup(args, kwargs)
        finished = threading.Event()

        def target() -> None:
            try:
                if one_chain_kernel:  # its setup is per chain, inside the run
                    self._run_one_chain_kernel(args, kwargs)
                else:
                    self._sample()
            except BaseException as error:  # handed to whoever asks for the results
                self._background_error = error
            finally:
                finished.set()

        self._background_error = None
        self._draws = None
        self._samples = None
        self._finished = finished
        self._background = threading.Thread(target=target, daemon=True)
        self._background.start()

    @property
    def running(self) -> bool:
        """Whether a background run is still going."""
        return self._background is not None and not self._finished.is_set()

    def wait(self) -> None:
        """Wait for a background run to end (an interrupt while waiting stops the run, and the
        draws so far are kept); raises what the run raised."""
        if self._background is None:
            return
        try:
            self._finished.wait()
        except KeyboardInterrupt:
            self.request_stop()
            self._finished.wait()
        error, self._background_error = self._background_error, None
        if error is not None:
            raise error

    def request_stop(self) -> None:
        """Ask a run (in another thread) to stop after its current iteration; the draws so far
        are kept, as with a KeyboardInterrupt."""
        self._stop.set()

    def draws_so_far(self) -> torch.Tensor | None:
        """During a run, the unconstrained draws kept so far, ``(chains, draws, D)`` (a view:
        copy what you keep); None between runs."""
        live = self._live
        return None if live is None else live[0][:, : live[1]]

    def _report(
        self,
        iteration: int,
        warmup: bool,
        step_stats: dict[str, torch.Tensor],
        divergences: torch.Tensor,
        started: float,
    ) -> None:
        chains = {
            "step_size": step_stats["step_size"].tolist(),
            "accept_prob": step_stats["accept_prob"].tolist(),
            "divergences": divergences.tolist(),
            "num_steps": step_stats["num_steps"].tolist(),
            "lp": step_stats["lp"].tolist(),
        }
        if "tree_depth" in step_stats:
            chains["tree_depth"] = step_stats["tree_depth"].tolist()
        info = {
            "phase": "warmup" if warmup else "sample",
            "num_warmup": self.warmup_steps,
            "num_samples": self.num_samples,
            "num_chains": self.num_chains,
            "elapsed_s": time.perf_counter() - started,
            "chains": chains,
        }
        params = None
        if self.progress.wants_params:  # the current point of every chain, for live traces
            params = {
                name: value.detach()
                for name, value in self.kernel.site_values(self.kernel.z).items()
            }
        self.progress.emit(ProgressEvent("mcmc", iteration + 1, params=params, info=info))

    def _site_samples(self) -> dict[str, torch.Tensor]:
        """Every latent and deterministic site per draw, ``(chains, draws, *shape)`` (computed
        once, from the kept unconstrained draws)."""
        if self._samples is None:
            self._samples = self._saved(self._per_draw(self.kernel.site_values))
        return self._samples

    def _saved(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The sites of ``save_params`` (all when it is None)."""
        if self.save_params is None:
            return samples
        unknown = [name for name in self.save_params if name not in samples]
        if unknown:
            raise MCMCError(
                f"save_params names {unknown}, which the run has no draws of; its sites are "
                f"{list(samples)}."
            )
        return {name: samples[name] for name in self.save_params}

    def _per_draw(
        self, method: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """``method`` (unconstrained points (B, D) to ``{name: (B, *shape)}``) at every kept
        draw, pushed through in batches: ``{name: (chains, draws, *shape)}``."""
        chains, num = self._draws.shape[:2]
        if num == 0:  # stopped during warm-up: no draws, but every value with its shape
            shapes = method(self.kernel.z[:1])
            return {
                name: value.new_empty((chains, 0, *value.shape[1:]))
                for name, value in shapes.items()
            }
        flat = self._draws.reshape(chains * num, -1)
        pieces = [
            method(flat[start : start + _SITE_VALUES_BATCH])
            for start in range(0, len(flat), _SITE_VALUES_BATCH)
        ]
        return {
            name: torch.cat([piece[name] for piece in pieces]).reshape(
                chains, num, *pieces[0][name].shape[1:]
            )
            for name in pieces[0]
        }

    # -- results -----------------------------------------------------------------------------

    def get_samples(
        self, num_samples: int | None = None, group_by_chain: bool = False
    ) -> dict[str, torch.Tensor]:
        """The draws of every latent and deterministic site: ``(chains, draws, *shape)`` with
        ``group_by_chain=True``, else chains concatenated, ``(chains * draws, *shape)``.
        ``num_samples`` resamples that many draws at random with replacement (from the pool,
        or within each chain with ``group_by_chain``), as Pyro does; see
        :func:`~engine.infer.mcmc.util.select_samples`."""
        self._check_ran()
        return dict(select_samples(self._site_samples(), num_samples, group_by_chain))

    def summary(self, prob: float = 0.9) -> dict[str, dict[str, torch.Tensor]]:
        """Print (and return) mean, sd, median, the ``prob`` interval, bulk and tail ESS and
        R-hat of every site, plus the number of divergences."""
        self._check_ran()
        table = summary(self._site_samples(), prob=prob)
        print(format_summary(table))
        if "diverging" in self._stats:
            print(f"\nNumber of divergences: {int(self._stats['diverging'].sum())}")
        return table

    def diagnostics(self) -> dict[str, Any]:
        """Per site ``{"n_eff", "r_hat"}``; per chain: divergences (draw indices), acceptance
        rate, step size and mean tree depth of the sampling phase."""
        self._check_ran()
        return {**self._site_diagnostics(), **self._chain_diagnostics()}

    def _site_diagnostics(self) -> dict[str, dict[str, torch.Tensor]]:
        table = summary(self._site_samples())
        return {
            name: {"n_eff": stats["ess_bulk"], "r_hat": stats["r_hat"]}
            for name, stats in table.items()
        }

    def _chain_diagnostics(self) -> dict[str, Any]:
        """Per chain: divergences, acceptance rate, step size, tree depth, and a one-chain
        kernel's own ``diagnostics()``."""
        result: dict[str, Any] = {}
        stats = self._stats
        per_chain = range(self.num_chains)
        if "diverging" in stats:
            result["divergences"] = {
                f"chain {c}": stats["diverging"][c].nonzero().flatten().tolist() for c in per_chain
            }
        if "acceptance_rate" in stats:
            result["acceptance rate"] = {
                f"chain {c}": stats["acceptance_rate"][c].mean().item() for c in per_chain
            }
        if "step_size" in stats:
            result["step size"] = {
                f"chain {c}": stats["step_size"][c, -1].item() for c in per_chain
            }
        if "tree_depth" in stats:
            result["tree depth"] = {
                f"chain {c}": stats["tree_depth"][c].float().mean().item() for c in per_chain
            }
        # A one-chain kernel's own diagnostics(), per chain, as Pyro gathers them.
        for c, chain_diagnostics in enumerate(self._kernel_diagnostics):
            for name, value in chain_diagnostics.items():
                result.setdefault(name, {})[f"chain {c}"] = value
        return result

    def to_arviz(self, log_likelihood: bool = True) -> Any:
        """An ArviZ ``InferenceData`` (needs arviz) with the groups ``posterior`` (every latent
        and deterministic site), ``sample_stats`` (``diverging``, ``step_size``, ``tree_depth``,
        ``n_steps``, ``energy``, ``acceptance_rate``, ``lp``), and, for a model with data,
        ``observed_data`` and ``log_likelihood``: each data site's log density per observation
        at every draw, found by running the model at each draw (all draws of a batch in one run
        when the model batches). So ``az.loo`` and ``az.compare`` work on it (with several data
        sites, ``az.loo(idata, var_name=...)`` picks one). Dims that come from a plate carry the
        plate's name. ``log_likelihood=False`` skips that replay of the model."""
        from engine.infer.mcmc.arviz_bridge import to_inference_data

        self._check_ran()
        potential = self.kernel.potential
        observed = getattr(potential, "observed", {})  # none for a potential_fn
        dims = {name: list(names) for name, names in getattr(potential, "site_dims", {}).items()}
        pointwise = None
        if observed and log_likelihood:
            pointwise = self._per_draw(potential.log_likelihoods)
            left_out = [name for name in observed if name not in pointwise]
            if left_out:
                warnings.warn(
                    f"No pointwise log-likelihood for {', '.join(map(repr, left_out))}: its "
                    "density depends on an enumerated discrete site, so it has no value per "
                    "draw of the continuous sites alone.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return to_inference_data(
            posterior=self._site_samples(),
            sample_stats=self._stats,
            observed_data={name: site.value for name, site in observed.items()} or None,
            log_likelihood=pointwise or None,
            dims={**dims, **{name: list(site.dims) for name, site in observed.items()}},
        )

    def plot(self, max_per_site: int = 4, max_rows: int = 12, bins: int | None = None) -> Any:
        """A matplotlib ``Figure``: for each latent site's first ``max_per_site`` elements
        (``max_rows`` rows in all), each chain's marginal density and the rank plot, which is
        flat when the chains mix (see :mod:`engine.infer.mcmc.plots`). Needs matplotlib; for
        ArviZ's plots, ``az.plot_trace(mcmc.to_arviz())``."""
        from engine.infer.mcmc.plots import plot_chains

        self._check_ran()
        samples = self._site_samples()
        potential = getattr(self.kernel, "potential", None)
        names = [slot.name for slot in potential.slots] if potential is not None else samples
        latent = {name: samples[name] for name in names if name in samples}
        return plot_chains(latent, max_per_site=max_per_site, max_rows=max_rows, bins=bins)

    def _check_ran(self) -> None:
        self.wait()
        if self._draws is None and self._samples is None:
            raise RuntimeError("MCMC has no draws yet: call mcmc.run(*model_args) first")
