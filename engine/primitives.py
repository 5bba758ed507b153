"""The primitives a model is written with: ``sample``, ``param``, ``plate``, ``factor``, ...

Each primitive turns its call into a message and sends it through the handler stack. With no
handler active they take a fast path: ``sample`` just draws (or returns ``obs``), ``param`` just
reads the param store.

>>> import torch, engine, engine.distributions as dist
>>> engine.sample("x", dist.Normal(0.0, 1.0)).shape
torch.Size([])
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from engine.argument_checks import check_name, check_sample_fn
from engine.distributions import Delta, Unit
from engine.errors import ArgumentError, ModuleError, ShapeError, fmt_shape
from engine.observation_checks import check_observed_site

# clear_param_store lives with the store; Pyro users also import it from pyro.primitives.
from engine.params import clear_param_store as clear_param_store
from engine.params import get_param_store, param_with_module_name
from engine.poutine.handlers import lift
from engine.poutine.plate_messenger import PlateMessenger
from engine.runtime import apply_stack, handlers_active, new_message


def sample(
    name: str,
    fn: Callable,
    *args: Any,
    obs: torch.Tensor | None = None,
    obs_mask: torch.Tensor | None = None,
    infer: dict[str, Any] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Draw from ``fn`` at a site called ``name``, or observe ``obs`` there.

    ``obs_mask`` (a bool tensor over the batch) observes only where it is True; the other entries
    become a latent site ``f"{name}_unobserved"`` that inference imputes.

    ``name`` must be a string and ``fn`` a distribution (any callable that draws is accepted);
    ``infer`` a dict such as ``{"enumerate": "parallel"}``.

    >>> import engine.distributions as dist
    >>> sample("z", dist.Bernoulli(1.0))
    tensor(1.)
    """
    check_name(name, "sample site")
    check_sample_fn(name, fn)
    if infer is not None and not isinstance(infer, dict):
        raise ArgumentError(
            f"Site {name!r}: infer= takes a dict of options, got the {type(infer).__name__} "
            f"{infer!r}. Fix: e.g. infer={{'enumerate': 'parallel'}}."
        )
    if obs_mask is not None:
        return _sample_partially_observed(name, fn, obs, obs_mask, infer)
    if not handlers_active():
        if obs is None:
            return fn(*args, **kwargs)
        _warn_observed_outside_inference(name)
        return obs
    infer = dict(infer) if infer else None
    # infer={"is_observed": False} with obs=... gives a latent site a starting value instead of
    # observing it (a reparameterizer passes an initial value on to its auxiliary site so).
    is_observed = bool(infer.pop("is_observed")) if infer and "is_observed" in infer else None
    msg = new_message(
        "sample",
        name,
        fn,
        args,
        kwargs,
        value=obs,
        is_observed=obs is not None if is_observed is None else is_observed and obs is not None,
        infer=infer,
    )
    apply_stack(msg)
    if msg["is_observed"]:
        check_observed_site(msg)
    return msg["value"]


def _warn_observed_outside_inference(name: str) -> None:
    # With no handler nothing scores the observation: the value just comes back. Pyro warns here
    # (a RuntimeWarning), and a user who forgot to wrap the model in an inference should hear it.
    warnings.warn(
        f"Site {name!r}: observing a value outside of any inference does nothing but return it "
        "(no handler scores it). Run the model under an inference (SVI, MCMC, poutine.trace) "
        "to condition on it.",
        RuntimeWarning,
        stacklevel=3,
    )


def _sample_partially_observed(name, fn, obs, obs_mask, infer) -> torch.Tensor:
    if obs is None:
        raise ArgumentError(
            f"Site '{name}': obs_mask needs obs (the values where the mask is True)"
        )
    if not isinstance(obs_mask, torch.Tensor) or obs_mask.dtype != torch.bool:
        got = obs_mask.dtype if isinstance(obs_mask, torch.Tensor) else type(obs_mask).__name__
        raise ArgumentError(
            f"Site '{name}': obs_mask must be a bool tensor, got {got}. Fix: e.g. "
            "obs_mask=~torch.isnan(data)."
        )
    event_mask = obs_mask.reshape(obs_mask.shape + (1,) * len(fn.event_shape))
    imputed = sample(f"{name}_unobserved", fn.mask(~obs_mask), infer=infer)
    # Entries the mask hides may hold anything (NaN placeholders): give the observed site the
    # imputed values there, so validation only ever judges real observations.
    filled = torch.where(event_mask, obs, imputed)
    sample(f"{name}_observed", fn.mask(obs_mask), obs=filled, infer=infer)
    return deterministic(name, filled, len(fn.event_shape))


def param(
    name: str,
    init_tensor: torch.Tensor | float | Callable[[], torch.Tensor] | None = None,
    constraint: torch.distributions.constraints.Constraint | None = None,
    event_dim: int | None = None,
) -> torch.Tensor:
    """Read (or create, from ``init_tensor``) the learnable parameter ``name`` in the param store.

    ``constraint`` defaults to real for a new parameter; for an existing one, a constraint that
    differs from the stored one is an error. ``init_tensor`` may be a function, called only when
    the parameter is created. ``name`` must be a string.

    >>> import engine
    >>> engine.clear_param_store()
    >>> param("w", torch.zeros(2))
    tensor([0., 0.], requires_grad=True)
    """
    check_name(name, "param")
    store = get_param_store()
    if not handlers_active():
        return store.get_param(name, init_tensor, constraint, event_dim)
    msg = new_message(
        "param", name, store.get_param, (name, init_tensor, constraint), {"event_dim": event_dim}
    )
    return apply_stack(msg)["value"]


plate = PlateMessenger


@contextmanager
def plate_stack(prefix: str, sizes: Sequence[int], rightmost_dim: int = -1) -> Iterator[None]:
    """Enter one plate per entry of ``sizes``, so a site inside has batch shape ``sizes``.

    ``sizes`` reads left to right like a shape: its last entry gets dim ``rightmost_dim``, the
    one before it ``rightmost_dim - 1``, and so on. The plates are named ``f"{prefix}_{i}"``
    with ``i`` counted from the rightmost (``prefix_0`` is the plate at ``rightmost_dim``).

    >>> import engine.distributions as dist
    >>> from engine import poutine
    >>> with poutine.trace() as tracer, plate_stack("grid", (2, 3)):
    ...     sample("z", dist.Normal(0.0, 1.0)).shape
    torch.Size([2, 3])
    >>> [(f.name, f.size, f.dim) for f in tracer.trace.nodes["z"]["cond_indep_stack"]]
    [('grid_0', 3, -1), ('grid_1', 2, -2)]
    """
    if rightmost_dim >= 0:
        raise ArgumentError(
            f"plate_stack({prefix!r}, ...): rightmost_dim must be negative (a batch dim counted "
            f"from the right), got {rightmost_dim}. Fix: e.g. rightmost_dim=-1."
        )
    with ExitStack() as stack:
        for offset, size in enumerate(reversed(tuple(sizes))):
            stack.enter_context(plate(f"{prefix}_{offset}", size, dim=rightmost_dim - offset))
        yield


def subsample(data: torch.Tensor, event_dim: int) -> torch.Tensor:
    """Index ``data`` with the mini-batch of every active subsampled plate that spans it.

    >>> data = torch.arange(10.0)
    >>> with plate("data", 10, subsample_size=3):
    ...     subsample(data, event_dim=0).shape
    torch.Size([3])
    """
    if not handlers_active():
        return data
    msg = new_message("subsample", None, None, kwargs={"event_dim": event_dim}, value=data)
    msg["done"] = True
    return apply_stack(msg)["value"]


def deterministic(name: str, value: torch.Tensor, event_dim: int | None = None) -> torch.Tensor:
    """Record a value computed from other sites, so traces and ``Predictive`` report it.

    >>> deterministic("double", torch.tensor(2.0) * 2)
    tensor(4.)
    """
    if not isinstance(value, torch.Tensor):
        raise ArgumentError(
            f"deterministic({name!r}, ...) records a tensor, got the {type(value).__name__} "
            f"{value!r}. Fix: wrap it, e.g. torch.as_tensor(value)."
        )
    if not handlers_active():
        return value
    event_dim = value.dim() if event_dim is None else event_dim
    delta = Delta(value, event_dim=event_dim).mask(False)
    return sample(name, delta, obs=value, infer={"_deterministic": True})


def factor(name: str, log_factor: torch.Tensor, *, has_rsample: bool | None = None) -> None:
    """Add ``log_factor`` to the model's log density (an observed site with no value).

    Outside any inference nothing scores the factor: it warns (a ``RuntimeWarning``), as an
    observed ``sample`` does there.

    >>> from engine import poutine
    >>> def model():
    ...     factor("penalty", torch.tensor(-1.0))
    >>> poutine.trace(model).get_trace().log_prob_sum()
    tensor(-1.)
    """
    if not handlers_active():
        _warn_observed_outside_inference(name)
        return
    unit = Unit(log_factor, has_rsample=has_rsample)
    sample(name, unit, obs=unit.sample(), infer={"is_auxiliary": True})


def module(name: str, nn_module: torch.nn.Module, update_module_params: bool = False):
    """Register every parameter of ``nn_module`` in the param store as ``f"{name}$$${param}"``.

    The store then holds the module's own tensors, so an optimizer over the store trains the
    module (frozen parameters, ``requires_grad=False``, are left out). When the store already
    holds values under those names (after ``load``, or from a module built by an earlier run of
    a notebook cell), ``update_module_params=True`` copies them into the module first; otherwise
    the module's current values win. Either way the stale tensors are dropped from the store, so
    the optimizer never trains a module nobody uses.

    Under a handler that gives a param another value (``lift`` draws it from a prior,
    ``substitute`` or ``condition`` fix it), ``update_module_params=True`` also puts that value
    in the module in place of its parameter, so the module computes with the draw (this is how
    :func:`random_module` samples a network).

    >>> net = torch.nn.Linear(2, 1)
    >>> module("net", net) is net
    True
    """
    store = get_param_store()
    for param_name, module_param in list(nn_module.named_parameters()):
        if not module_param.requires_grad:
            continue  # frozen: nothing to learn, so nothing for the store to hold
        full_name = param_with_module_name(name, param_name)
        if full_name in store:
            stored = store[full_name]
            if stored.unconstrained() is not module_param:
                if update_module_params:
                    _copy_into(module_param, stored, param_name)
                del store[full_name]
        value = param(full_name, module_param)
        if update_module_params and value is not module_param:
            _replace_parameter(nn_module, param_name, value)
    return nn_module


def _replace_parameter(nn_module: torch.nn.Module, param_name: str, value: torch.Tensor) -> None:
    """Put ``value`` (a plain tensor, e.g. a draw) where the parameter ``param_name`` was."""
    owner_path, _, attribute = param_name.rpartition(".")
    owner = nn_module.get_submodule(owner_path) if owner_path else nn_module
    delattr(owner, attribute)
    setattr(owner, attribute, value)


def random_module(
    name: str, nn_module: torch.nn.Module, prior: Any
) -> Callable[[], torch.nn.Module]:
    """Deprecated, as in Pyro: a function that returns a copy of ``nn_module`` whose parameters
    are drawn from ``prior`` (a distribution, a stochastic function, or a dict of them by
    parameter name, as for :func:`engine.poutine.lift`). Prefer :class:`engine.nn.PyroModule`
    with :class:`engine.nn.PyroSample` priors.

    >>> import warnings, engine.distributions as dist
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", FutureWarning)
    ...     draw = random_module("net", torch.nn.Linear(3, 1), dist.Normal(100.0, 1e-3))
    >>> bool((draw().weight - 100.0).abs().max() < 0.1)
    True
    """
    warnings.warn(
        "random_module is deprecated, as in Pyro: build a Bayesian network with "
        "engine.nn.PyroModule and PyroSample priors instead.",
        FutureWarning,
        stacklevel=2,
    )
    if not isinstance(nn_module, torch.nn.Module):
        raise ModuleError(
            f"random_module('{name}', ...) needs a torch.nn.Module, got {type(nn_module).__name__}."
        )
    lifted_module = lift(module, prior=prior)

    def draw_module() -> torch.nn.Module:
        return lifted_module(name, copy.deepcopy(nn_module), update_module_params=True)

    return draw_module


def _copy_into(module_param: torch.Tensor, stored: torch.Tensor, param_name: str) -> None:
    if module_param.shape != stored.shape:
        raise ShapeError(
            f"module parameter '{param_name}' has shape {fmt_shape(module_param.shape)} but the "
            f"param store holds shape {fmt_shape(stored.shape)}: the stored parameters belong "
            "to another architecture. Clear the param store or build the module to match."
        )
    with torch.no_grad():
        module_param.copy_(stored)
