"""``SMCFilter``: sequential Monte Carlo filtering (a particle filter) of a state-space model.

The model and the guide are objects with two methods, ``init(state, ...)`` and
``step(state, ...)``. Each filtering step runs the guide's method (the proposal) and then the
model's, both once and vectorised over all particles (under a plate of ``num_particles`` left of
their own plates), weights each particle by ``p / q`` of what was drawn and observed, and
resamples the particles (systematically) when the weights have become too uneven. Whatever the
next step needs of the past lives in ``state``, an :class:`SMCState`: one tensor per key, with
the particles along its leading dim. The model writes it; the guide only reads it.

>>> import torch, engine as pyro, engine.distributions as dist
>>> class Walk:  # a random walk seen through noise
...     def init(self, state):
...         state["x"] = pyro.sample("x_init", dist.Normal(0.0, 1.0))
...     def step(self, state, y):
...         state["x"] = pyro.sample("x", dist.Normal(state["x"], 1.0))
...         pyro.sample("y", dist.Normal(state["x"], 0.5), obs=y)
>>> class Blind:  # proposes each move from the walk's own law (a "bootstrap" filter)
...     def init(self, state):
...         pyro.sample("x_init", dist.Normal(0.0, 1.0))
...     def step(self, state, y):
...         pyro.sample("x", dist.Normal(state["x"], 1.0))
>>> smc = SMCFilter(Walk(), Blind(), num_particles=500, max_plate_nesting=0)
>>> smc.init()
>>> for y in [0.3, 0.9, 1.4]:
...     smc.step(torch.tensor(y))
>>> smc.get_empirical()["x"].mean.shape
torch.Size([])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from engine.argument_checks import as_count
from engine.distributions import Empirical
from engine.errors import (
    ArgumentError,
    NonFiniteError,
    ShapeError,
    SMCFailed,
    SMCStateError,
    fmt_shape,
)
from engine.infer.importance import particle_log_weights

__all__ = ["SMCFailed", "SMCFilter", "SMCState", "SMCStateError", "systematic_resample"]


def systematic_resample(probs: torch.Tensor) -> torch.Tensor:
    """Systematic resampling: ``N`` indices into the last dim of ``probs`` (..., N), index ``i``
    appearing ``N * probs[i]`` times on average and never less than ``floor(N * probs[i])``
    times. One uniform offset ``u`` per row places ``N`` evenly spaced points ``(u + j) / N`` on
    the cumulative probabilities, which is unbiased and has far less variance than ``N``
    independent draws. Each row of ``probs`` must be nonnegative with a positive sum (it need
    not sum to one); an index of probability 0 is never drawn.

    >>> systematic_resample(torch.tensor([0.5, 0.0, 0.25, 0.25])).tolist()
    [0, 0, 2, 3]
    """
    n = probs.shape[-1]
    cumulative = probs.cumsum(-1)
    cumulative = (cumulative / cumulative[..., -1:]).contiguous()
    offset = torch.rand((*probs.shape[:-1], 1), dtype=probs.dtype, device=probs.device)
    steps = torch.arange(n, dtype=probs.dtype, device=probs.device)
    points = ((steps + offset) / n).expand(probs.shape).contiguous()
    # right=True: the first index whose cumulative probability is *above* the point, so a
    # point never lands on an index of probability 0 (whose cumulative equals its neighbour's).
    indices = torch.searchsorted(cumulative, points, right=True)
    return indices.clamp_(max=n - 1)  # a point at 1 - eps past a cumsum rounded below 1


class SMCState(dict):
    """The particles' state: a dict of tensors, each holding one value per particle along its
    leading dim, and the particles' normalised log weights (:attr:`log_weights`). Keys may be
    any hashable; values must be tensors whose leading dim is ``num_particles`` (a value that
    is the same for all particles is expanded to it first).

    >>> state = SMCState(3)
    >>> state["x"] = torch.zeros(3, 2)
    >>> try:
    ...     state["y"] = torch.zeros(2)
    ... except ShapeError as error:
    ...     print(str(error)[:44])
    SMCState: state['y'] has shape (2,), but its
    """

    def __init__(self, num_particles: int):
        super().__init__()
        self._num_particles = num_particles
        self._log_weights = torch.full((num_particles,), -math.log(num_particles))
        self._reader: str | None = None  # who may only read the state now (the guide)

    @property
    def num_particles(self) -> int:
        """How many particles the state holds."""
        return self._num_particles

    @property
    def log_weights(self) -> torch.Tensor:
        """The particles' log weights, normalised (their ``logsumexp`` is 0)."""
        return self._log_weights

    def __setitem__(self, key: Any, value: torch.Tensor) -> None:
        if self._reader is not None:
            raise SMCStateError(
                f"SMCState: the {self._reader} set state[{key!r}], but a guide may only read "
                "the state. Write the state in the model's method (the model runs on the "
                "guide's draws right after it, so it sees the same values)."
            )
        if not isinstance(value, torch.Tensor):
            raise ArgumentError(
                f"SMCState: state[{key!r}] must be a tensor with one value per particle along "
                f"its leading dim, not a {type(value).__name__}. Keep Python values (a time "
                "index, a constant) on the model object instead of in the state."
            )
        if value.dim() == 0 or value.shape[0] != self._num_particles:
            raise ShapeError(
                f"SMCState: state[{key!r}] has shape {fmt_shape(value.shape)}, but its leading "
                f"dim must hold the {self._num_particles} particles. Store values computed from "
                "the sample sites of this step (they carry the particle dim), or expand a value "
                f"shared by all particles: value.expand({self._num_particles}, ...)."
            )
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        if self._reader is not None:
            raise SMCStateError(
                f"SMCState: the {self._reader} deleted state[{key!r}], but a guide may only "
                "read the state. Change the state in the model's method."
            )
        super().__delitem__(key)

    def read_only(self, reader: str, fn: Callable) -> Callable:
        """``fn`` run with the state read-only: a write raises :class:`SMCStateError`
        naming ``reader``.

        >>> state = SMCState(2)
        >>> def guide():
        ...     state["x"] = torch.zeros(2)
        >>> try:
        ...     state.read_only("guide", guide)()
        ... except SMCStateError as error:
        ...     print(str(error)[:41])
        SMCState: the guide set state['x'], but a
        """

        @functools.wraps(fn)
        def reading(*args: Any, **kwargs: Any) -> Any:
            self._reader = reader
            try:
                return fn(*args, **kwargs)
            finally:
                self._reader = None

        return reading

    def update(self, other: Mapping | Iterable = (), /, **kwargs: torch.Tensor) -> None:
        """``dict.update``, every value checked as ``state[key] = value`` checks it."""
        for key, value in dict(other, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: torch.Tensor | None = None) -> torch.Tensor:
        """``dict.setdefault``, a new value checked as ``state[key] = value`` checks it."""
        if key not in self:
            self[key] = default
        return self[key]


class SMCFilter:
    """Sequential importance resampling of a state-space model with a proposal ``guide``.

    ``model`` and ``guide`` are objects with methods ``init(state, *args, **kwargs)`` and
    ``step(state, *args, **kwargs)``, called by :meth:`init` and :meth:`step` of the filter
    with the same arguments and the filter's :attr:`state`. Every sample site must be
    vectorisable: the methods run once per filtering step under a plate of ``num_particles`` at
    dim ``-1 - max_plate_nesting`` (``max_plate_nesting``: how many plates they nest). A model
    site the guide does not sample is drawn from the model's own prior, and cancels from the
    weights.

    The guide may only read ``state`` (a write raises :class:`~engine.errors.SMCStateError`),
    and should sample only latent sites: it is the proposal.

    After each step the weights are renormalised; when their effective sample size
    ``1 / sum(w ** 2)`` falls below ``ess_threshold * num_particles`` the particles are
    resampled systematically (every state tensor along its leading dim) and their weights made
    equal. The filter runs without autograd. A step that raises leaves :attr:`state` as it was
    (the model and guide objects' own attributes are theirs to keep).

    Keep ``state`` of a fixed size (overwrite ``state["z"]`` each step rather than adding a key
    per step): every key is resampled at every resampling.

    >>> import torch, engine as pyro, engine.distributions as dist
    >>> class Constant:  # one unknown level, observed step after step
    ...     def init(self, state):
    ...         state["level"] = pyro.sample("level", dist.Normal(0.0, 10.0))
    ...     def step(self, state, y):
    ...         pyro.sample("y", dist.Normal(state["level"], 1.0), obs=y)
    >>> class Proposal:
    ...     def init(self, state):
    ...         pyro.sample("level", dist.Normal(0.0, 10.0))
    ...     def step(self, state, y):
    ...         pass
    >>> _ = torch.manual_seed(0)
    >>> smc = SMCFilter(Constant(), Proposal(), num_particles=2000, max_plate_nesting=0)
    >>> smc.init()
    >>> for y in [4.8, 5.3, 5.1, 4.9]:
    ...     smc.step(torch.tensor(y))
    >>> abs(smc.get_empirical()["level"].mean.item() - 5.0) < 0.2  # posterior mean 5.02
    True
    """

    def __init__(
        self,
        model: Any,
        guide: Any,
        num_particles: int,
        max_plate_nesting: int,
        *,
        ess_threshold: float = 0.5,
    ):
        for role, obj in (("model", model), ("guide", guide)):
            missing = [m for m in ("init", "step") if not callable(getattr(obj, m, None))]
            if missing:
                raise ArgumentError(
                    f"SMCFilter: the {role} ({type(obj).__name__}) has no method "
                    f"{' or '.join(missing)}. The model and the guide are objects with methods "
                    "init(state, ...) and step(state, ...), not plain functions."
                )
        self.model = model
        self.guide = guide
        self.num_particles = as_count(
            num_particles,
            "SMCFilter: num_particles",
            minimum=1,
            fix="It is the number of particles, e.g. SMCFilter(model, guide, 1000, 0).",
        )
        self.max_plate_nesting = as_count(
            max_plate_nesting,
            "SMCFilter: max_plate_nesting",
            minimum=0,
            fix="It is how many plates the model and guide nest, e.g. 0 without plates.",
        )
        threshold = float(ess_threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ArgumentError(
                f"SMCFilter: ess_threshold={ess_threshold} must lie in [0, 1]: the particles are "
                "resampled when their effective sample size falls below ess_threshold * "
                "num_particles (0 never resamples, 1 resamples at every step)."
            )
        self.ess_threshold = threshold
        self.state = SMCState(self.num_particles)
        self._started = False

    def init(self, *args: Any, **kwargs: Any) -> None:
        """Start filtering: a fresh :attr:`state`, filled by ``model.init(state, *args,
        **kwargs)`` on the draws of ``guide.init``, and weighted."""
        self.state = SMCState(self.num_particles)
        self._advance(self.model.init, self.guide.init, "init", args, kwargs)
        self._started = True

    def step(self, *args: Any, **kwargs: Any) -> None:
        """One filtering step: ``guide.step`` proposes, ``model.step`` (with its observations
        in ``args``/``kwargs``) weights, and the particles are resampled if their weights
        have become too uneven."""
        if not self._started:
            raise ArgumentError(
                "SMCFilter.step was called before SMCFilter.init: call smc.init(...) once "
                "first, so that the particles get their initial state."
            )
        self._advance(self.model.step, self.guide.step, "step", args, kwargs)

    def get_empirical(self) -> dict[Any, Empirical]:
        """The weighted particles of every state tensor, as ``{key: Empirical}`` (the filtering
        distribution of each state value, given the data so far)."""
        return {key: Empirical(value, self.state.log_weights) for key, value in self.state.items()}

    def _advance(
        self, model_fn: Callable, guide_fn: Callable, method: str, args: tuple, kwargs: dict
    ) -> None:
        state = self.state
        saved = (dict(state), state.log_weights)
        try:
            with torch.no_grad():
                log_weights, _, _ = particle_log_weights(
                    model_fn,
                    state.read_only(f"guide's {method}", guide_fn),
                    (state, *args),
                    kwargs,
                    self.num_particles,
                    self.max_plate_nesting,
                    f"SMCFilter.{method}",
                )
                self._reweight(log_weights, method)
                self._resample_if_uneven()
        except BaseException:
            dict.clear(state)
            dict.update(state, saved[0])
            state._log_weights = saved[1]
            raise

    def _reweight(self, log_weights: torch.Tensor, method: str) -> None:
        nan = log_weights.isnan()
        if bool(nan.any()):
            raise NonFiniteError(
                f"SMCFilter.{method}: the log weight of {int(nan.sum())} of "
                f"{self.num_particles} particles is NaN: a distribution got invalid parameters "
                "there (a scale of 0 or below, a probability outside [0, 1], ...), or an "
                "observation is NaN. Check the model's and the guide's sites."
            )
        if bool((log_weights == math.inf).any()):
            raise NonFiniteError(
                f"SMCFilter.{method}: a particle got an infinite weight: a density of the "
                "model is infinite at a proposed value (a point mass scored by a continuous "
                "density, or the guide's density is 0 where it proposed). Check the sites "
                "of this step."
            )
        total = self.state.log_weights.to(log_weights) + log_weights
        normaliser = torch.logsumexp(total, 0)
        if normaliser == -math.inf:
            raise SMCFailed(
                f"SMCFilter.{method}: no particle has a nonzero weight any more: the proposals "
                "all fell where the model has probability 0, or the data are impossible under "
                "every particle. Make the guide's proposal cover the model's support, or use "
                "more particles."
            )
        self.state._log_weights = total - normaliser

    def _resample_if_uneven(self) -> None:
        probs = self.state.log_weights.exp()
        ess = 1.0 / probs.square().sum()
        if bool(ess < self.ess_threshold * self.num_particles):
            index = systematic_resample(probs)
            for key, value in list(self.state.items()):
                dict.__setitem__(self.state, key, value[index.to(value.device)])
            self.state._log_weights = torch.full_like(probs, -math.log(self.num_particles))
