"""``HMC``: Hamiltonian Monte Carlo with a fixed trajectory length, for every chain at once.

The kernel owns what every Hamiltonian sampler shares: the potential (built from the model, or
given as ``potential_fn``), one mass matrix and one step size per chain, the warm-up adaptation
(:mod:`~engine.infer.mcmc.adaptation`), and the Metropolis correction. :class:`NUTS` replaces the
fixed-length trajectory by a tree that stops at a U-turn. The :class:`~engine.infer.mcmc.MCMC`
driver calls :meth:`HMC.setup_chains` once and :meth:`HMC.step_chains` per iteration; Pyro's
one-chain kernel protocol (``setup``, ``sample``, ``initial_params``) comes from
:class:`~engine.infer.mcmc.batched_kernel.BatchedKernel`.

>>> import engine, engine.distributions as dist
>>> def model():
...     engine.sample("x", dist.Normal(0.0, 1.0))
>>> HMC(model, step_size=0.2, num_steps=5).trajectory_length  # num_steps * step_size
1.0
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from engine.distributions.validation import trusted_run
from engine.errors import MCMCError
from engine.infer.autoguide.initialization import init_to_uniform
from engine.infer.compiler_warnings import torch_compiler_warnings_ignored
from engine.infer.mcmc.adaptation import WarmupAdapter
from engine.infer.mcmc.adapted_mass import ChainAdapters, mass_matrix_shape
from engine.infer.mcmc.batched_kernel import BatchedKernel
from engine.infer.mcmc.block_mass_matrix import BlockMassMatrix
from engine.infer.mcmc.flat_layout import FlatLayout
from engine.infer.mcmc.integrator import leapfrog
from engine.infer.mcmc.keyed_mass import KeyedMass
from engine.infer.mcmc.mass_matrix import MassMatrix
from engine.infer.mcmc.state import ChainPoint, HMCState, PhasePoint, where_chains
from engine.infer.mcmc.step_size import find_reasonable_step_size
from engine.infer.mcmc.user_potential import UserPotential
from engine.runtime import Message


class HMC(BatchedKernel):
    """Hamiltonian Monte Carlo (Pyro's arguments and their order).

    Each iteration integrates ``trajectory_length`` (2π by default, ``num_steps * step_size``
    when ``num_steps`` is given) in ``max(1, int(trajectory_length / step_size))`` leapfrog steps,
    so the length stays fixed while warm-up adapts the step size, as in Pyro. Warm-up adapts the
    step size by dual averaging toward ``target_accept_prob`` (kept within ``min_stepsize`` and
    ``max_stepsize``) and a diagonal (``full_mass=True``: dense) mass matrix in Stan's windows.
    ``full_mass`` may also be a list of tuples of site names: each tuple is a block whose sites
    share a dense mass matrix, and every other site gets a diagonal one (the estimated
    covariance is kept inside the blocks and on the diagonal, zero elsewhere);
    :attr:`inverse_mass_matrix` gives the adapted matrices by block. A mass-matrix adapter
    (the attribute :attr:`mass_matrix_adapter` as in Pyro, or the keyword of that name, e.g.
    :class:`~engine.infer.mcmc.ArrowheadMassMatrix`) may take over the mass matrix and its
    warm-up estimate.
    ``jit_compile=True`` compiles the leapfrog step and its gradient with ``torch.compile``
    (``jit_options`` are its keyword arguments): seconds once, then much faster steps. A
    transition whose energy error exceeds ``max_delta_energy`` is counted as divergent.
    With ``potential_fn``, ``transforms`` (site name to the map from its support to
    unconstrained space, as ``initialize_model`` returns them) maps each site's draws back.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     engine.sample("x", dist.Normal(0.0, 1.0))
    >>> HMC(model, step_size=0.1, num_steps=5).trajectory_length
    0.5
    """

    def __init__(
        self,
        model: Callable | None = None,
        potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
        step_size: float | None = 1.0,
        trajectory_length: float | None = None,
        num_steps: int | None = None,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool = True,
        full_mass: bool | list[tuple[str, ...]] = False,
        transforms: Any = None,
        max_plate_nesting: int | None = None,
        jit_compile: bool = False,
        jit_options: dict[str, Any] | None = None,
        ignore_jit_warnings: bool = False,
        target_accept_prob: float = 0.8,
        init_strategy: Callable[[Message], torch.Tensor] = init_to_uniform,
        *,
        min_stepsize: float = 1e-10,
        max_stepsize: float = 1e10,
        max_delta_energy: float = 1000.0,
        mass_matrix_adapter: Any = None,
    ):
        if (model is None) == (potential_fn is None):
            raise ValueError("give exactly one of model and potential_fn")
        if transforms is not None and model is not None:
            raise ValueError(
                "transforms= with a model is not supported: the model's supports give the "
                "transforms. (With potential_fn they map the draws back, as in Pyro.)"
            )
        self.user_transforms = transforms
        if not isinstance(full_mass, bool) and not (
            isinstance(full_mass, (list, tuple))
            and all(
                isinstance(block, (list, tuple)) and all(isinstance(n, str) for n in block)
                for block in full_mass
            )
        ):
            raise ValueError(
                f"full_mass must be True, False, or a list of tuples of site names (blocks with "
                f"a dense mass matrix each), got {full_mass!r}"
            )
        if not 0 < target_accept_prob < 1:
            raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob}")
        self.model = model
        self.potential_fn = potential_fn
        # None means the default, 1 (Pyro's reading): the search of setup adapts it from there.
        step_size = 1.0 if step_size is None else float(step_size)
        self.initial_step_size = step_size
        if num_steps is not None:
            self.trajectory_length = num_steps * step_size
        elif trajectory_length is not None:
            self.trajectory_length = trajectory_length
        else:
            self.trajectory_length = 2 * math.pi
        self.min_stepsize, self.max_stepsize = min_stepsize, max_stepsize
        self.adapt_step_size = adapt_step_size
        self.adapt_mass_matrix = adapt_mass_matrix
        self.full_mass = full_mass
        self.mass_matrix_adapter = mass_matrix_adapter
        self.max_plate_nesting = max_plate_nesting
        self.jit_compile = jit_compile
        self.jit_options = dict(jit_options or {})
        self.target_accept_prob = target_accept_prob
        self.init_strategy = init_strategy
        self.max_delta_energy = max_delta_energy
        self.potential: FlatLayout | None = None
        self.state: HMCState | None = None  # made by setup
        self._chain_adapters: ChainAdapters | None = None  # made by setup, with an adapter

    # -- set-up ------------------------------------------------------------------------------

    def setup_chains(
        self,
        num_chains: int,
        num_warmup: int,
        model_args: tuple = (),
        model_kwargs: dict[str, Any] | None = None,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Build the potential, place every chain, and find a first step size (the
        :class:`~engine.infer.mcmc.MCMC` driver calls this from ``run``; Pyro's one-chain
        ``setup(warmup_steps, *model_args)`` calls it with one chain)."""
        if self.model is not None:
            self.potential = self._model_potential(model_args, model_kwargs)
        else:
            if initial_params is None:
                raise ValueError("HMC/NUTS with potential_fn needs MCMC(..., initial_params=...)")
            self.potential = UserPotential(
                self.potential_fn, initial_params, num_chains, self.user_transforms
            )
        potential = self.potential
        if num_chains > 1 and self.model is not None and not potential.batched:
            warnings.warn(
                f"The {num_chains} chains run one after another: the model cannot score them in "
                "one run, neither with an extra leading dim nor under torch.func.vmap (it "
                "probably branches on a value, e.g. `if x > 0:`; torch.where batches).",
                RuntimeWarning,
                stacklevel=3,
            )
        z = self._starting_points(num_chains, initial_params)
        options = {"dtype": z.dtype, "device": z.device}
        self._chain_adapters = self._adapted_mass(num_chains, **options)
        if self._chain_adapters is None:
            mass = MassMatrix(num_chains, potential.num_latent, self._dense, **options)
        else:
            mass = self._chain_adapters.mass
        with trusted_run():
            energy, grad = potential.energy_and_grad(z)
        self.state = HMCState(
            point=ChainPoint(z, energy, grad),
            step_size=torch.full((num_chains,), self.initial_step_size, **options),
            mass=mass,
            adapter=WarmupAdapter(
                num_warmup,
                num_chains,
                potential.num_latent,
                adapt_step_size=self.adapt_step_size,
                adapt_mass_matrix=self.adapt_mass_matrix,
                # With an adapter, the adapter estimates; the schedule only says when.
                dense_mass=self._dense and self._chain_adapters is None,
                target_accept_prob=self.target_accept_prob,
                **options,
            ),
        )
        self._make_step_functions()
        if self.adapt_step_size and num_warmup > 0:
            with trusted_run():
                self._restart_step_size()

    # Read-only views of the state, for the driver, live views and hooks (Pyro's ``hook_fn``
    # receives the kernel).

    @property
    def z(self) -> torch.Tensor:
        """Every chain's current unconstrained position (C, D)."""
        return self.state.point.z

    @property
    def step_size(self) -> torch.Tensor:
        """Every chain's current step size (C,)."""
        return self.state.step_size

    @property
    def mass(self) -> MassMatrix | KeyedMass:
        """The chains' mass matrices (a :class:`KeyedMass` when an adapter sets them)."""
        return self.state.mass

    @property
    def _dense(self) -> bool:
        return self.full_mass is True

    @property
    def mass_matrix_adapter(self) -> Any:
        """The mass-matrix adapter (Pyro's): an object with ``configure``, ``update``,
        ``end_adaptation`` and ``inverse_mass_matrix``, such as
        :class:`~engine.infer.mcmc.BlockMassMatrix` or
        :class:`~engine.infer.mcmc.ArrowheadMassMatrix`. Setting one (before ``MCMC.run``)
        lets it set the mass matrix: the kernel configures it with the blocks ``full_mass``
        asks for, feeds it each draw and the potential's gradient there in the windows of
        warm-up, closes each window with its ``end_adaptation``, and moves with its inverse
        mass matrix. With several chains it follows the first and copies of it the others.

        None (the default with ``full_mass`` True or False) leaves the mass matrix to the
        kernel's own batched adaptation, the same estimate for the same layout; with a list of
        blocks the default is a :class:`~engine.infer.mcmc.BlockMassMatrix`.

        >>> import engine, engine.distributions as dist
        >>> from engine.infer.mcmc import HMC, ArrowheadMassMatrix
        >>> kernel = HMC(lambda: engine.sample("x", dist.Normal(0.0, 1.0)))
        >>> kernel.mass_matrix_adapter is None
        True
        >>> kernel.mass_matrix_adapter = ArrowheadMassMatrix()
        >>> type(kernel.mass_matrix_adapter).__name__
        'ArrowheadMassMatrix'
        """
        return self._mass_matrix_adapter

    @mass_matrix_adapter.setter
    def mass_matrix_adapter(self, adapter: Any) -> None:
        if adapter is None:
            adapter = None if isinstance(self.full_mass, bool) else BlockMassMatrix()
        else:
            needed = ("configure", "update", "end_adaptation", "inverse_mass_matrix")
            missing = [name for name in needed if not hasattr(adapter, name)]
            if missing:
                raise MCMCError(
                    f"mass_matrix_adapter must be a mass-matrix adapter such as BlockMassMatrix() "
                    f"or ArrowheadMassMatrix(); {type(adapter).__name__} has no "
                    f"{', '.join(missing)}."
                )
        self._mass_matrix_adapter = adapter

    def _site_ranges(self) -> dict[str, range]:
        """Each latent site's coordinates of the flat vector."""
        return {
            slot.name: range(slot.offset, slot.offset + slot.size) for slot in self.potential.slots
        }

    def _adapted_mass(
        self, num_chains: int, dtype: torch.dtype, device: torch.device
    ) -> ChainAdapters | None:
        """The chains' adapters and the mass they set, when an adapter sets the mass matrix
        (None: the kernel's own)."""
        ranges = self._site_ranges()
        shapes = mass_matrix_shape(self.full_mass, {name: len(r) for name, r in ranges.items()})
        if self._mass_matrix_adapter is None or not ranges:
            return None
        return ChainAdapters(
            self._mass_matrix_adapter,
            shapes,
            ranges,
            num_chains,
            self.adapt_mass_matrix,
            dtype=dtype,
            device=device,
        )

    @property
    def inverse_mass_matrix(self) -> dict[tuple[str, ...], torch.Tensor]:
        """The inverse mass matrix by block of sites (Pyro's keys, Pyro's order): one block of
        all sites, their names sorted, with ``full_mass`` True (a matrix) or False (a vector:
        the diagonal); with blocks, each block's matrix, then the diagonal of the other sites
        (sorted); with an adapter, the adapter's keys. With one chain the values have no chain
        dim; with several, a leading one."""
        if self.state is None:
            raise MCMCError("inverse_mass_matrix exists once the kernel is set up (MCMC.run)")
        if self._chain_adapters is not None:
            by_key = self._chain_adapters.inverse_mass_matrix()
        else:
            inverse = self.mass.inverse
            ranges = self._site_ranges()
            block = tuple(sorted(ranges))
            index = torch.tensor([i for name in block for i in ranges[name]], device=inverse.device)
            if self._dense:
                by_key = {block: inverse[:, index.unsqueeze(-1), index]} if block else {}
            else:
                by_key = {block: inverse[:, index]} if block else {}
        return {key: value[0] if value.shape[0] == 1 else value for key, value in by_key.items()}

    def _move_to(self, z: torch.Tensor) -> None:
        """Put the chains at ``z`` (C, D), with the energy and gradient there."""
        with trusted_run():
            energy, grad = self.potential.energy_and_grad(z)
        self.state = self.state._replace(point=ChainPoint(z, energy, grad))

    def _make_step_functions(self) -> None:
        """The potential's energy and gradient, and the masked leapfrog step of a trajectory.
        With ``jit_compile`` the step is compiled, gradient included: ``torch.func`` computes
        the gradient inside the compiled code, so no autograd tape is kept at run time."""
        energy = self.potential.energy
        if self.jit_compile:

            def energy_and_total(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                value = energy(z)
                return value.sum(), value

            value_and_grad = torch.func.grad_and_value(energy_and_total, has_aux=True)

            def energy_and_grad(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                grad, (_, value) = value_and_grad(z)
                return value, grad

        else:
            energy_and_grad = self.potential.energy_and_grad
        self._energy_and_grad = energy_and_grad
        step = functools.partial(masked_leapfrog, energy_and_grad, self.mass)
        self._masked_leapfrog = self._compiled(step)

    def _compiled(self, fn: Callable) -> Callable:
        return torch.compile(fn, **self.jit_options) if self.jit_compile else fn

    def _restart_step_size(self) -> None:
        state = self.state
        step_size = find_reasonable_step_size(
            # A handful of single steps: the eager gradient, not the compiled step's.
            self.potential.energy_and_grad,
            state.mass,
            state.point.z,
            state.point.energy,
            state.point.grad,
            state.step_size,
        )
        self._set_step_size(step_size)
        self.state.adapter.restart_step_size(self.state.step_size)

    def _set_step_size(self, step_size: torch.Tensor) -> None:
        """Every chain's next step size, kept within ``min_stepsize`` and ``max_stepsize``."""
        clamped = step_size.clamp(self.min_stepsize, self.max_stepsize)
        self.state = self.state._replace(step_size=clamped)

    # -- one iteration -----------------------------------------------------------------------

    def step_chains(self, iteration: int, warmup: bool) -> dict[str, torch.Tensor]:
        """One transition of every chain; returns per-chain statistics (each of shape (C,)).

        The sampler only proposes unconstrained points, so distributions skip their value
        checks here (``trusted_run``): a bad region shows up as a divergence instead."""
        with trusted_run(), self._compiled_stance(iteration):
            stats = self._transition()
            stats["step_size"] = self.state.step_size.clone()
            stats["lp"] = -self.state.point.energy
            if warmup:
                self._adapt(iteration, stats["accept_prob"])
        return stats

    def _compiled_stance(self, iteration: int) -> contextlib.AbstractContextManager:
        """After the first iteration has compiled the step, skip re-checking torch.compile's
        guards on every call (about a quarter of a compiled leapfrog step's cost): within one
        run the model, its data, the shapes and the handlers cannot change."""
        if self.jit_compile and iteration > 0:
            return torch.compiler.set_stance(skip_guard_eval_unsafe=True)
        if self.jit_compile:
            return torch_compiler_warnings_ignored()
        return contextlib.nullcontext()

    def _adapt(self, iteration: int, accept_prob: torch.Tensor) -> None:
        adapter = self.state.adapter
        new_step = adapter.step_size_after(accept_prob)
        if new_step is not None:
            self._set_step_size(new_step)
        if self._chain_adapters is None:
            inverse_mass = adapter.collect(iteration, self.state.point.z)
            if inverse_mass is not None:
                self.state.mass.set_inverse(inverse_mass)
        else:
            inverse_mass = self._adapt_by_adapters(iteration)
        if inverse_mass is not None and self.adapt_step_size:
            self._restart_step_size()
        if iteration + 1 == adapter.num_warmup:
            final = adapter.final_step_size()
            if final is not None:
                self._set_step_size(final)

    def _adapt_by_adapters(self, iteration: int) -> dict | None:
        """Warm-up with mass-matrix adapters: feed them in a window, close it at its end;
        returns the new inverse mass by key when a window closes, else None."""
        schedule, point = self.state.adapter, self.state.point
        if schedule.in_window(iteration):
            sites = self.potential.unconstrained_sites
            self._chain_adapters.update(sites(point.z), sites(point.grad))
        if schedule.closes_window(iteration):
            self._chain_adapters.end_window()
            return self._chain_adapters.inverse_mass_matrix()
        return None

    def _transition(self) -> dict[str, torch.Tensor]:
        """One fixed-length trajectory per chain and its Metropolis correction; the chains that
        accept move to the trajectory's end."""
        state = self.state
        mass, step_size, current = state.mass, state.step_size, state.point
        momentum = mass.sample_momentum()
        start_energy = current.energy + mass.kinetic_energy(momentum)
        steps = (self.trajectory_length / step_size).floor().clamp(min=1).long()
        end = PhasePoint(current.z, momentum, current.energy, current.grad)
        for i in range(int(steps.max())):
            end = self._masked_leapfrog(end, step_size, i < steps)
        end_energy = end.energy + mass.kinetic_energy(end.momentum)
        delta = torch.nan_to_num(end_energy - start_energy, nan=math.inf)
        accept_prob = (-delta).clamp(max=0.0).exp()
        accepted = torch.rand_like(accept_prob) < accept_prob
        proposal = ChainPoint(end.z, end.energy, end.grad)
        self.state = state._replace(point=where_chains(accepted, proposal, current))
        return {
            "accept_prob": accept_prob,
            "diverging": delta > self.max_delta_energy,
            "num_steps": steps,
            "energy": torch.where(accepted, end_energy, start_energy),
        }


def masked_leapfrog(
    energy_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    mass: MassMatrix,
    point: PhasePoint,
    step_size: torch.Tensor,
    moving: torch.Tensor,
) -> PhasePoint:
    """A leapfrog step from ``point`` for the ``moving`` chains; the others keep their point.

    >>> def quadratic(z):
    ...     return 0.5 * (z * z).sum(-1), z
    >>> z = torch.ones(2, 1)
    >>> point = PhasePoint(z, torch.zeros(2, 1), torch.full((2,), 0.5), z)
    >>> moved = masked_leapfrog(quadratic, MassMatrix(2, 1, False), point, torch.full((2,), 0.1),
    ...                         torch.tensor([True, False]))
    >>> moved.z.flatten().tolist()  # the second chain did not move
    [0.9950000047683716, 1.0]
    """
    z, momentum, _, grad = point
    moved = PhasePoint(*leapfrog(energy_and_grad, mass, z, momentum, grad, step_size))
    return where_chains(moving, moved, point)
